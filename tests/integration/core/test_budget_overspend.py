"""Acceptance: no overspend under concurrency, and no stuck reservation after a crash.

4 processes x 250 concurrent tracked calls against the provider simulator share one hard
budget of about half what all calls would cost, on SQLite, Redis and PostgreSQL. Each process
is a fresh interpreter running ``WORKER`` below.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

MODEL = "gpt-4o-mini"
MAX_TOKENS = 40
MESSAGES = [{"role": "user", "content": "Say something short."}]
# Replies of 10, 20, 30 and 35 words (one token each in the simulator's count).
REPLIES = [" ".join(["word"] * n) for n in (10, 20, 30, 35)]
PROCESSES = 4
CALLS = 250


# The worker runs in a fresh interpreter (``python -c WORKER ...``) and imports only asyncio
# and aipowertools.core: no pytest, no HTTP client library, no litellm (prices come from the
# parent's catalog), so four of them start fast on a busy machine.
WORKER = r"""
import asyncio, json, sys
from urllib.parse import urlsplit

from aipowertools.core import CostTracker, Usage
from aipowertools.core.errors import BudgetExceededError


async def post(url, payload):
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    body = json.dumps(payload).encode()
    head = (
        f"POST {parts.path}/chat/completions HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    writer.write(head.encode() + body)
    await writer.drain()
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    status = data.split(b" ", 2)[1]
    assert status == b"200", data[:300]
    return json.loads(data.partition(b"\r\n\r\n")[2])


async def calls(store, ns, budget, n, sim_url, prices, model, max_tokens, messages):
    worst, per_input, per_output = prices
    tracker = CostTracker(
        budget_usd=budget, store=store, namespace=ns, budget_period="total", reserve_wait_s=60.0
    )
    payload = {"model": model, "messages": messages, "max_tokens": max_tokens}

    async def one():
        try:
            async with tracker.track_call(
                task_name="load", model=model, provider="openai", estimate_usd=worst
            ) as span:
                body = await post(sim_url, payload)
                usage = Usage.from_any(body)
                price = usage.input_tokens * per_input + usage.output_tokens * per_output
                span.record(body, cost_usd=price)
        except BudgetExceededError:
            return 0
        return 1

    done = await asyncio.gather(*(one() for _ in range(n)))
    tracker.close()
    return {"ok": sum(done), "refused": n - sum(done)}


async def hold(store, ns, budget, ttl, model):
    tracker = CostTracker(
        budget_usd=budget, store=store, namespace=ns, budget_period="total", reservation_ttl_s=ttl
    )
    async with tracker.track_call(model=model, estimate_usd=budget * 0.9):
        print("reserved", flush=True)
        await asyncio.sleep(60)  # killed with SIGKILL long before this ends


args = json.loads(sys.argv[1])
if args.pop("mode") == "calls":
    print(json.dumps(asyncio.run(calls(**args))))
else:
    asyncio.run(hold(**args))
"""


@pytest.fixture(scope="module")
def worker_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for workers: bytecode cached in a temp dir, warmed once.

    Where PYTHONDONTWRITEBYTECODE is set, every fresh interpreter would compile its imports
    from source (seconds each on a busy machine); caching them outside the tree avoids that.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(tmp_path_factory.mktemp("pycache"))
    warm = "import aipowertools.core, redis, redis.asyncio, psycopg, psycopg_pool"
    subprocess.run([sys.executable, "-c", warm], env=env, check=True, timeout=120)
    return env


def _spawn(env: dict[str, str], **args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, json.dumps(args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.fixture(params=["sqlite", "redis", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/ledger.db"
    else:
        yield request.getfixturevalue({"redis": "redis_url"}.get(request.param, "postgres_url"))


def _prices() -> tuple[float, float, float, float]:
    """Worst-case estimate and mean actual cost of one call, and USD per input/output token."""
    from aipowertools.core import Usage, cost, count_tokens, estimate_cost

    worst = estimate_cost(MESSAGES, MODEL, MAX_TOKENS)
    prompt = count_tokens(MESSAGES, MODEL).tokens
    actual = [
        cost(Usage(input_tokens=prompt, output_tokens=len(r.split())), MODEL) for r in REPLIES
    ]
    per_input = cost(Usage(input_tokens=1_000_000), MODEL) / 1e6
    per_output = cost(Usage(output_tokens=1_000_000), MODEL) / 1e6
    return worst, sum(actual) / len(actual), per_input, per_output


@pytest.fixture(scope="module")
def prices() -> tuple[float, float, float, float]:
    return _prices()


def test_no_overspend_with_4_processes_x_250_concurrent_calls(
    store: str, prices: tuple[float, float, float, float], worker_env: dict[str, str]
) -> None:
    from aipowertools.core import CostTracker
    from aipowertools.testing import SimModel, Simulator

    started = time.monotonic()
    worst, mean, per_input, per_output = prices

    budget = PROCESSES * CALLS * mean / 2
    ns = f"t{uuid.uuid4().hex[:12]}"
    with Simulator(models=[SimModel(MODEL, reply=REPLIES)]) as sim:
        procs = [
            _spawn(
                worker_env,
                mode="calls",
                store=store,
                ns=ns,
                budget=budget,
                n=CALLS,
                sim_url=sim.base_url("openai"),
                prices=[worst, per_input, per_output],
                model=MODEL,
                max_tokens=MAX_TOKENS,
                messages=MESSAGES,
            )
            for _ in range(PROCESSES)
        ]
        try:
            outs = [p.communicate(timeout=50) for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.communicate()
        for p, (_, err) in zip(procs, outs, strict=True):
            assert p.returncode == 0, err
        served = sim.stats().requests
    elapsed = time.monotonic() - started
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    ok = sum(r["ok"] for r in results)
    refused = sum(r["refused"] for r in results)
    tracker = CostTracker(store=store, namespace=ns, budget_usd=budget, budget_period="total")
    settled = tracker.total_usd()
    # Never over budget; at least 90 % of it usable; nothing left reserved.
    assert settled <= budget
    assert settled >= 0.9 * budget, (settled, budget, ok, refused)
    assert tracker.reserved_usd(period="total") == 0.0
    assert tracker.spent_usd(period="total") == pytest.approx(settled, abs=1e-9)
    # Every refused call was refused before the provider saw it.
    assert ok + refused == PROCESSES * CALLS
    assert refused > 0
    assert served == ok
    assert len(tracker.records()) == ok
    assert budget - settled < worst  # what is left is less than one more call's worst case
    print(
        f"{store.split(':')[0]}: {ok} calls settled ${settled:.6f} of ${budget:.6f} "
        f"in {elapsed:.1f} s"
    )
    tracker.close()


def test_killed_process_leaves_no_stuck_reservation_after_expiry(
    store: str, worker_env: dict[str, str]
) -> None:
    from aipowertools.core import CostTracker
    from aipowertools.core.errors import BudgetExceededError

    ns = f"t{uuid.uuid4().hex[:12]}"
    ttl = 4.0  # the checks while the dead process's hold lives must fit in it, under load too
    proc = _spawn(worker_env, mode="hold", store=store, ns=ns, budget=1.0, ttl=ttl, model=MODEL)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
    finally:
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=10)
    assert line.strip() == "reserved", err
    killed_at = time.time()
    tracker = CostTracker(store=store, namespace=ns, budget_usd=1.0, budget_period="total")
    assert tracker.reserved_usd(period="total") == pytest.approx(0.9)
    with pytest.raises(BudgetExceededError):
        tracker.reserve(0.5)
    time.sleep(max(0.0, killed_at + ttl + 0.1 - time.time()))
    res = tracker.reserve(0.5)  # the dead process's hold has expired and is swept
    assert tracker.reserved_usd(period="total") == pytest.approx(0.5)
    tracker.release(res)
    assert tracker.remaining_usd() == 1.0
    tracker.close()

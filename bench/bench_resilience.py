"""Shared rate limiting against the simulator's enforced limits: 0 429s at >= 95 % utilisation.

``python bench/bench_resilience.py [--duration 30] [--processes 4]`` starts the simulator with a
requests + tokens limit, then runs the same mixed-prompt load twice from N processes:

* ours: one ``RateLimiter`` on Redis shared by all processes, configured at the limit;
* peer: langchain-core's ``InMemoryRateLimiter``, one per process at 1/N of the limit.

Each run reports requests served, 429s and utilisation (achieved / allowed rate). The same
file is the worker (``--worker``) so the integration test can reuse it for a short run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
    "mu",
]


async def _worker(args: argparse.Namespace) -> dict[str, float]:
    import httpx

    rng = random.Random(args.seed)
    if args.mode == "ours":
        from aipowertools.resilience import AdaptiveConfig, Limit, RateLimiter

        period = args.window * (1 + args.margin)
        # `margin` pads the window (default 0: settle() after each answer already covers the
        # delay between our admission and the provider's arrival stamp).
        limiter = RateLimiter(
            limits=[Limit("requests", args.rpm, period), Limit("tokens", args.tpm, period)],
            store=args.redis,
            prefix=args.prefix,
            adaptive=AdaptiveConfig(header_period=args.window),
            max_sleep=0.2,
        )
    else:
        from langchain_core.rate_limiters import InMemoryRateLimiter

        peer = InMemoryRateLimiter(
            requests_per_second=args.rpm / args.window / args.processes,
            check_every_n_seconds=0.01,
            max_bucket_size=1,
        )
    ok = limited = errors = 0
    tokens_used = 0
    start_at = args.start_at
    if start_at <= 0:  # start-up done: tell the parent, which sends one start time to all
        print("ready", flush=True)
        start_at = float(sys.stdin.readline())
    await asyncio.sleep(max(0.0, start_at - time.time()))  # all workers start together
    deadline = time.monotonic() + args.duration
    async with httpx.AsyncClient(base_url=args.base_url, timeout=30) as client:

        async def one() -> None:
            nonlocal ok, limited, errors, tokens_used
            while time.monotonic() < deadline:
                words = rng.randint(5, 120)  # mixed prompt sizes
                prompt = " ".join(rng.choice(WORDS) for _ in range(words))
                estimate = words * 4 + 60  # generous upper bound, corrected after
                reservation = None
                if args.mode == "ours":
                    reservation = await limiter.acquire("sim", tokens=estimate)
                else:
                    await peer.aacquire()
                if time.monotonic() >= deadline:
                    if reservation is not None:
                        await reservation.arelease()
                    return
                resp = await client.post(
                    "/chat/completions",
                    json={
                        "model": "sim-limited",
                        "messages": [{"role": "user", "content": prompt}],
                        "max_tokens": 16,
                    },
                    headers={"Authorization": "Bearer sk-sim"},
                )
                if resp.status_code != 200:
                    if reservation is not None:
                        await reservation.asettle()
                    if resp.status_code == 429:
                        limited += 1
                        if reservation is not None:
                            await limiter.aobserve("sim", headers=dict(resp.headers))
                    else:
                        errors += 1
                    continue
                used = int(resp.json()["usage"]["total_tokens"])
                tokens_used += used
                ok += 1
                if reservation is not None:
                    # counts the request from its answer (covers the provider's arrival stamp)
                    # with its actual tokens
                    await reservation.asettle(used)

        await asyncio.gather(*(one() for _ in range(args.concurrency)))
    return {"ok": ok, "429": limited, "errors": errors, "tokens": tokens_used}


_SIM_SERVER = """
import json, sys
from aipowertools.testing import SimModel, Simulator
models = [
    SimModel(name, reply="ok ok ok ok", rpm=rpm, tpm=tpm, rate_window_s=window)
    for name, rpm, tpm, window in json.loads(sys.argv[1])
]
with Simulator(models=models) as sim:
    print(sim.base_url("openai"), flush=True)
    sys.stdin.read()  # serve until the parent closes our stdin
"""


@contextlib.contextmanager
def simulator_process(
    rpm: int = 0,
    tpm: int = 0,
    window: float = 1.0,
    name: str = "sim-limited",
    *,
    models: list[tuple[str, int, int, float]] | None = None,
) -> Iterator[str]:
    """Run the simulator in its own process (a traced or busy parent must not slow it down).

    ``models`` lists ``(name, rpm, tpm, window_s)``; by default the one model given by the
    other arguments.
    """
    spec = models if models is not None else [(name, rpm, tpm, window)]
    proc = subprocess.Popen(
        [sys.executable, "-c", _SIM_SERVER, json.dumps(spec)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        if not base_url:
            raise RuntimeError("the simulator process did not start")
        yield base_url
    finally:
        assert proc.stdin is not None
        assert proc.stdout is not None
        proc.stdin.close()
        proc.stdout.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()


def _warm_up(base_url: str) -> None:
    """One request first, so the simulator's tokenizer is loaded before the clock starts."""
    import httpx

    httpx.post(
        f"{base_url}/chat/completions",
        json={"model": "sim-limited", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": "Bearer sk-sim"},
        timeout=60,
    )


def run_load(
    *,
    base_url: str,
    redis_url: str,
    mode: str,
    duration: float,
    processes: int,
    rpm: int,
    tpm: int,
    window: float,
    concurrency: int = 8,
    margin: float = 0.0,
) -> dict[str, float]:
    """Run ``processes`` workers for ``duration`` seconds; sum their counts.

    Every worker reports "ready" once started; then all get the same start time, so a slow
    (loaded, traced) interpreter start-up neither shortens the run nor staggers the workers.
    """
    prefix = f"bench:{uuid.uuid4().hex}"
    _warm_up(base_url)
    warmed = time.time()  # the warm-up request counts in the provider's window until then
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--worker",
        "--mode",
        mode,
        "--base-url",
        base_url,
        "--redis",
        redis_url,
        "--prefix",
        prefix,
        "--duration",
        str(duration),
        "--processes",
        str(processes),
        "--rpm",
        str(rpm),
        "--tpm",
        str(tpm),
        "--window",
        str(window),
        "--concurrency",
        str(concurrency),
        "--margin",
        str(margin),
    ]
    procs = [
        subprocess.Popen(
            [*cmd, "--seed", str(i)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for i in range(processes)
    ]
    for proc in procs:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"a worker failed to start (exit code {proc.wait()})")
    start_at = f"{max(time.time() + 0.5, warmed + window + 0.1)}\n"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(start_at)
        proc.stdin.flush()
    totals = {"ok": 0.0, "429": 0.0, "errors": 0.0, "tokens": 0.0}
    for proc in procs:
        out, _ = proc.communicate(timeout=duration + 120)
        if proc.returncode != 0:
            raise RuntimeError(f"worker failed with exit code {proc.returncode}")
        for k, v in json.loads(out.strip().splitlines()[-1]).items():
            totals[k] += v
    allowed_requests = rpm * duration / window
    allowed_tokens = tpm * duration / window
    totals["utilisation"] = max(totals["ok"] / allowed_requests, totals["tokens"] / allowed_tokens)
    return totals


def _acquire_overhead(redis_url: str, measure: Any) -> Any:
    """Cost of one uncontended acquire + settle: memory and Redis vs InMemoryRateLimiter."""
    from langchain_core.rate_limiters import InMemoryRateLimiter

    from aipowertools.resilience import RateLimiter

    memory = RateLimiter(requests_per_second=1e9, tokens_per_minute=1e12)
    shared = RateLimiter(
        requests_per_second=1e9,
        tokens_per_minute=1e12,
        store=redis_url,
        prefix=f"bench:{uuid.uuid4().hex}",
    )
    peer = InMemoryRateLimiter(requests_per_second=1e9, max_bucket_size=1e9)

    def mem_call() -> None:
        memory.acquire_sync("k", tokens=100).settle(90)

    def redis_call() -> None:
        shared.acquire_sync("k", tokens=100).settle(90)

    mem, mem_runs = measure(mem_call, runs=5, number=2000)
    red, red_runs = measure(redis_call, runs=5, number=300)
    lc, lc_runs = measure(lambda: peer.acquire(), runs=5, number=2000)

    def results(result: Any) -> list[Any]:
        return [
            result(
                "acquire+settle, memory",
                "us",
                mem * 1e6,
                peer="InMemoryRateLimiter.acquire",
                peer_median=lc * 1e6,
                runs=[r * 1e6 for r in mem_runs],
                peer_runs=[r * 1e6 for r in lc_runs],
                notes="uncontended; requests + tokens limits, one key",
            ),
            result(
                "acquire+settle, Redis (2 round trips)",
                "us",
                red * 1e6,
                peer="InMemoryRateLimiter.acquire",
                peer_median=lc * 1e6,
                runs=[r * 1e6 for r in red_runs],
                notes="local Redis 7",
            ),
        ]

    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--mode", default="ours")
    parser.add_argument("--base-url", default="")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--prefix", default="bench")
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--rpm", type=int, default=100)
    parser.add_argument("--tpm", type=int, default=100 * 400)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--margin", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start-at", type=float, default=0.0)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(asyncio.run(_worker(args))))
        return

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _harness import Result, measure, write_results

    results = {}
    for mode in ("ours", "peer"):
        # a fresh simulator per run: both start from an empty provider window
        with simulator_process(args.rpm, args.tpm, args.window) as base_url:
            results[mode] = run_load(
                base_url=base_url,
                redis_url=args.redis,
                mode=mode,
                duration=args.duration,
                processes=args.processes,
                rpm=args.rpm,
                tpm=args.tpm,
                window=args.window,
                concurrency=args.concurrency,
                margin=args.margin,
            )
    overhead = _acquire_overhead(args.redis, measure)
    ours, peer = results["ours"], results["peer"]
    note = (
        f"{args.processes} processes x {args.concurrency} tasks, {args.duration:g} s, limit "
        f"{args.rpm} requests + {args.tpm} tokens per {args.window:g} s; peer: "
        "InMemoryRateLimiter per process at 1/N of the limit"
    )
    write_results(
        "resilience",
        [
            Result(
                "shared limiter utilisation",
                "%",
                ours["utilisation"] * 100,
                peer="InMemoryRateLimiter x N",
                peer_median=peer["utilisation"] * 100,
                target=">= 95 %",
                notes=note,
            ),
            Result(
                "429 answers",
                "count",
                ours["429"],
                peer="InMemoryRateLimiter x N",
                peer_median=peer["429"],
                target="0",
                notes=note,
            ),
            Result(
                "requests served",
                "count",
                ours["ok"],
                peer="InMemoryRateLimiter x N",
                peer_median=peer["ok"],
                notes=note,
            ),
            *overhead(Result),
        ],
    )


if __name__ == "__main__":
    main()

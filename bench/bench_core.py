"""CostTracker overhead and reserve+settle latency on every ledger backend.

``python bench/bench_core.py [--calls 200]`` measures, in one run:

* tracking overhead per call on SQLite (reserve the worst case, write the ledger record and
  settle, in ``track_call``), against an untracked call to the provider simulator made in the
  same run (a 100 ms simulated call by default, as in the target "<= 1 % of a 100 ms call,
  <= 0.5 ms absolute");
* the tracked and untracked simulator calls themselves (difference of medians);
* reserve + settle p50 on memory, SQLite, Redis and PostgreSQL (Redis / PostgreSQL at
  ``AIPOWERTOOLS_BENCH_REDIS_URL`` / ``AIPOWERTOOLS_BENCH_POSTGRES_URL``, default 127.0.0.1;
  skipped with a note when not answering). Keys and tables use a fresh namespace and are
  removed afterwards.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from _harness import Result, percentile, write_results

MODEL = "gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "Say hello."}]
REDIS_URL = os.environ.get("AIPOWERTOOLS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get(
    "AIPOWERTOOLS_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def _poster(base_url: str) -> Callable[[], dict[str, Any]]:
    """A keep-alive HTTP POST of one chat completion to the simulator."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    body = json.dumps({"model": MODEL, "messages": MESSAGES, "max_tokens": 20})
    headers = {"Content-Type": "application/json"}

    def post() -> dict[str, Any]:
        conn.request("POST", f"{parts.path}/chat/completions", body, headers)
        result: dict[str, Any] = json.loads(conn.getresponse().read())
        return result

    return post


def _timed(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def overhead(calls: int, call_ms: float) -> list[Result]:
    from aipowertools.core import CostTracker, Usage
    from aipowertools.testing import SimModel, Simulator

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tracker = CostTracker(budget_usd=1e6, store=f"sqlite:///{tmp}/ledger.db")
        usage = Usage(input_tokens=12, output_tokens=20)

        def tracking_only() -> None:
            with tracker.track_call(
                task_name="bench", model=MODEL, provider="openai", estimate_usd=1e-4
            ) as span:
                span.record(usage, cost_usd=2e-5)

        tracking_only()  # warm up (tables, statements)
        track = _timed(tracking_only, calls * 5)
        sim_model = SimModel(MODEL, reply="hello there", ttft_ms=call_ms)
        with Simulator(models=[sim_model]) as sim:
            post = _poster(sim.base_url("openai"))
            post()

            def tracked() -> None:
                with tracker.track_call(
                    task_name="bench", model=MODEL, provider="openai", estimate_usd=1e-4
                ) as span:
                    span.record(post(), cost_usd=2e-5)

            # Interleave so both see the same machine load.
            plain: list[float] = []
            wrapped: list[float] = []
            for _ in range(calls):
                plain += _timed(post, 1)
                wrapped += _timed(tracked, 1)
        tracker.close()
    plain_ms = statistics.median(plain) * 1e3
    results.append(
        Result(
            "tracking overhead per call (SQLite: reserve + record + settle)",
            "ms",
            statistics.median(track) * 1e3,
            peer=f"untracked simulator call ({call_ms:.0f} ms)",
            peer_median=plain_ms,
            target="<= 0.5 ms and <= 1 % of a 100 ms call",
            runs=[percentile(track, 50) * 1e3, percentile(track, 95) * 1e3],
            notes="runs = [p50, p95] of the tracking alone, no network",
        )
    )
    results.append(
        Result(
            f"tracked simulator call ({call_ms:.0f} ms), SQLite",
            "ms",
            statistics.median(wrapped) * 1e3,
            peer="the same call untracked",
            peer_median=plain_ms,
            notes=f"difference of medians {statistics.median(wrapped) * 1e3 - plain_ms:.3f} ms",
        )
    )
    return results


def _reserve_settle(store: str, calls: int) -> list[float]:
    from aipowertools.core import CostTracker

    ns = f"bench{uuid.uuid4().hex[:10]}"
    tracker = CostTracker(budget_usd=1e6, store=store, namespace=ns)
    try:

        def once() -> None:
            res = tracker.reserve(1e-4, model=MODEL, user="u", task="bench")
            tracker.settle(res, model=MODEL, provider="openai", cost_usd=2e-5)

        once()
        return _timed(once, calls)
    finally:
        tracker.close()
        _cleanup(store, ns)


def _cleanup(store: str, ns: str) -> None:
    if store.startswith("redis"):
        import redis

        client = redis.Redis.from_url(store)
        keys = list(client.scan_iter(f"aipt:{{{ns}}}:*", count=1000))
        for i in range(0, len(keys), 500):
            client.delete(*keys[i : i + 500])
        client.close()
    elif store.startswith("postgresql"):
        import psycopg

        with psycopg.connect(store, autocommit=True) as conn:
            for table in ("ledger", "buckets", "holds"):
                conn.execute(f"DROP TABLE IF EXISTS aipt_{ns}_{table}")


def reserve_settle(calls: int) -> list[Result]:
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        stores = {
            "memory": "memory://",
            "SQLite": f"sqlite:///{Path(tmp) / 'ledger.db'}",
            "Redis": REDIS_URL,
            "PostgreSQL": POSTGRES_URL,
        }
        for name, url in stores.items():
            try:
                times = _reserve_settle(url, calls)
            except Exception as exc:  # a server that is not running: say so, keep going
                print(f"[core] reserve+settle on {name} skipped: {exc}")
                continue
            results.append(
                Result(
                    f"reserve + settle p50 ({name})",
                    "ms",
                    percentile(times, 50) * 1e3,
                    runs=[percentile(times, 95) * 1e3, percentile(times, 99) * 1e3],
                    notes=f"{calls} sequential reserve+settle pairs; runs = [p95, p99]",
                )
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--call-ms", type=float, default=100.0)
    args = parser.parse_args()
    write_results("core", overhead(args.calls, args.call_ms) + reserve_settle(args.calls))


if __name__ == "__main__":
    main()

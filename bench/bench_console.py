"""The operator's side at scale: ``costs`` over 30 days, the dashboard's data request, and
free-text log search, with N ledger records and N log events in the embedded stores (SQLite)
and in PostgreSQL.

Targets (issue 15): ``costs`` for 30 days <= 2 s, a dashboard data request p95 <= 200 ms,
``logs`` free-text search <= 1 s, at N = 1,000,000. Loading a million rows twice per backend
takes minutes on a shared machine, so the default N is smaller; the full size is

    AIPOWERTOOLS_BENCH_ROWS=1000000 uv run python bench/bench_console.py

Also measured: how long after a new ledger record the dashboard's snapshot holds it (its
poller's fingerprint plus one rebuild), which is what bounds the page's refresh.
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Result, percentile, write_results

ROWS = int(os.environ.get("AIPOWERTOOLS_BENCH_ROWS", "200000"))
PG = os.environ.get(
    "AIPOWERTOOLS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
MODELS = [("openai", "gpt-4o-mini"), ("openai", "gpt-4o"), ("anthropic", "claude-sonnet"),
          ("ollama", "ollama/llama3")]  # fmt: skip
WORDS = ("request", "completed", "routing", "cache", "miss", "hit", "retry", "budget", "tool",
         "stream", "chunk", "token", "prompt", "summary", "agent", "step")  # fmt: skip


def ledger_rows(n: int, now: float) -> list[tuple[Any, ...]]:
    from aipowertools.core import LedgerRecord
    from aipowertools.core._ledger_sql import record_row

    rng = random.Random(1)
    rows = []
    for i in range(n):
        provider, model = MODELS[i % 4]
        rows.append(record_row(LedgerRecord(
            request_id=f"r{i}", ts=now - rng.random() * 30 * 86400, model=model,
            provider=provider, input_tokens=rng.randint(100, 4000),
            output_tokens=rng.randint(10, 800), cost_usd=rng.random() / 100,
            latency_ms=rng.uniform(50, 3000), status="error" if i % 50 == 0 else "ok",
            user=f"user{i % 200}", task=("chat", "code", "summarize")[i % 3], tags=("proj",),
        )))  # fmt: skip
    return rows


def log_events(n: int, now: float) -> list[dict[str, Any]]:
    rng = random.Random(2)
    events = []
    for i in range(n):
        level = "error" if i % 97 == 0 else "info"
        text = " ".join(rng.choice(WORDS) for _ in range(8))
        if i % 10_000 == 5:
            text += " upstream timeout"
        events.append({
            "ts": now - (n - i) * 30 * 86400 / n, "time": "", "level": level, "logger": "bench",
            "event": "llm_call" if level == "info" else "provider_error", "kind": "log",
            "message": text, "model": MODELS[i % 4][1], "user_id": f"user{i % 200}",
        })  # fmt: skip
    return events


def load_sqlite(home: Path, n: int, now: float) -> float:
    import sqlite3

    from aipowertools.callbacks import SQLiteSink
    from aipowertools.core import CostTracker
    from aipowertools.core._ledger_sql import INSERT_COLUMNS

    began = time.perf_counter()
    CostTracker(store=f"sqlite:///{home / 'ledger.db'}").close()
    with sqlite3.connect(home / "ledger.db") as db:
        marks = ", ".join("?" * len(INSERT_COLUMNS.split(", ")))
        for start in range(0, n, 100_000):
            db.executemany(
                f"INSERT INTO aipt_default_ledger ({INSERT_COLUMNS}) VALUES ({marks})",
                ledger_rows(min(100_000, n - start), now),
            )
            db.execute("UPDATE aipt_default_ledger SET request_id = request_id || ? "
                       "WHERE request_id NOT LIKE '%-%'", (f"-{start}",))  # fmt: skip
    sink = SQLiteSink(home / "events.db")
    events = log_events(n, now)
    for start in range(0, n, 20_000):
        sink.write(events[start : start + 20_000])
    sink.close()
    return time.perf_counter() - began


def load_postgres(url: str, n: int, now: float) -> float:
    import psycopg

    from aipowertools.callbacks import PostgresSink
    from aipowertools.callbacks._sinks import dumps
    from aipowertools.core import CostTracker
    from aipowertools.core._ledger_sql import INSERT_COLUMNS

    began = time.perf_counter()
    CostTracker(store=url).close()
    sink = PostgresSink(url)
    sink.write([])  # creates the table and its indexes
    sink.close()
    with psycopg.connect(url) as db:
        with db.cursor().copy(f"COPY aipt_default_ledger ({INSERT_COLUMNS}) FROM STDIN") as copy:
            for start in range(0, n, 100_000):
                for row in ledger_rows(min(100_000, n - start), now):
                    copy.write_row((f"{row[0]}-{start}", *row[1:]))
        with db.cursor().copy(
            "COPY aipowertools_events (ts, event_type, kind, level, logger, trace_id, data) "
            "FROM STDIN"
        ) as copy:
            for e in log_events(n, now):
                copy.write_row((e["ts"], e["event"], "log", e["level"], "bench", None, dumps(e)))
        db.execute("ANALYZE")
    return time.perf_counter() - began


def measure_backend(label: str, ledger: str, logs: str, results: list[Result]) -> None:
    from starlette.testclient import TestClient

    from aipowertools.console import Stores, create_app
    from aipowertools.console._dashboard import DashboardState
    from aipowertools.console._data import cost_summary
    from aipowertools.core import CostTracker, Usage

    stores = Stores.resolve(ledger, logs)
    tracker = stores.tracker()
    runs = []
    for _ in range(3):
        now = time.time()
        began = time.perf_counter()
        cost_summary(tracker, now - 30 * 86400, now, by=("provider", "model", "day"))
        runs.append(time.perf_counter() - began)
    tracker.close()
    results.append(Result(f"{label}: costs, 30 days ({ROWS:,} records)", "s",
                          statistics.median(runs), target="<= 2 s", runs=runs))  # fmt: skip

    state = DashboardState(stores, poll_s=3600)
    began = time.perf_counter()
    state.refresh(force=True)
    build = time.perf_counter() - began
    client = TestClient(create_app(state))
    samples = []
    for _ in range(200):
        began = time.perf_counter()
        assert client.get("/api/snapshot").status_code == 200
        samples.append(time.perf_counter() - began)
    results.append(Result(f"{label}: dashboard data request p95", "ms",
                          percentile(samples, 95) * 1e3, target="<= 200 ms",
                          notes=f"from the snapshot; {len(samples)} requests"))  # fmt: skip
    with CostTracker(store=ledger) as writer:
        writer.record(model="gpt-4o", usage=Usage(input_tokens=5, output_tokens=5),
                      cost_usd=0.01, request_id=uuid.uuid4().hex)  # fmt: skip
        began = time.perf_counter()
        assert state.refresh()
        fresh = time.perf_counter() - began
    state.stop()
    results.append(Result(f"{label}: new record -> dashboard snapshot", "s", fresh,
                          target="<= 2 s (page refresh)",
                          notes=f"fingerprint + rebuild; first build {build:.2f} s"))  # fmt: skip

    sink = stores.log_sink()
    runs = []
    for words in ("upstream timeout", "budget retry", "stream chunk token", "timeout"):
        began = time.perf_counter()
        hits = sink.search(text=words, levels=None, event_type=None, kind=None, start=None,
                           end=None, filters=None, after_id=None, limit=50,
                           newest_first=True)  # fmt: skip
        runs.append(time.perf_counter() - began)
        assert hits, words
    sink.close()
    results.append(Result(f"{label}: logs free-text search ({ROWS:,} events)", "s",
                          max(runs), target="<= 1 s",
                          notes="slowest of 4 queries, newest 50 matches", runs=runs))  # fmt: skip


def main() -> None:
    import psycopg

    results: list[Result] = []
    now = time.time()
    with tempfile.TemporaryDirectory(prefix="aipt-bench-console-") as tmp:
        home = Path(tmp)
        took = load_sqlite(home, ROWS, now)
        print(f"loaded {ROWS:,} ledger records and {ROWS:,} log events into SQLite in {took:.0f} s")
        measure_backend("sqlite", f"sqlite:///{home / 'ledger.db'}",
                        f"sqlite:///{home / 'events.db'}", results)  # fmt: skip
    name = f"aipt_bench_console_{uuid.uuid4().hex[:8]}"
    admin = PG
    try:
        with psycopg.connect(admin, autocommit=True) as db:
            db.execute(f"CREATE DATABASE {name}")
    except psycopg.OperationalError as exc:
        print(f"PostgreSQL not reachable ({exc}); measured SQLite only")
    else:
        url = admin.rsplit("/", 1)[0] + "/" + name
        try:
            took = load_postgres(url, ROWS, now)
            print(f"loaded {ROWS:,} records and events into PostgreSQL in {took:.0f} s")
            measure_backend("postgresql", url, url, results)
        finally:
            from aipowertools.core.stores import _close_all

            _close_all()
            with psycopg.connect(admin, autocommit=True) as db:
                db.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    write_results("console", results)


if __name__ == "__main__":
    main()

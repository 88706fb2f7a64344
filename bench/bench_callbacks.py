"""Callback handler overhead and event-query speed.

``python bench/bench_callbacks.py [--events 1000000] [--runs 7]`` measures, in one process:

* the time a LangChain ``invoke`` of an in-process chat model (no network, fixed usage) takes
  with no handler, with our ``CostCallbackHandler`` (memory ledger), with LangChain's own
  ``UsageMetadataCallbackHandler`` (the peer), with ``LoggingCallbackHandler`` and with both of
  ours; the overhead per call is the difference to "no handler" (target <= 0.2 ms for cost);
* the p50 time of ``StructuredLogger.query(event_type=..., start_time=day, end_time=day)`` on
  a SQLite store holding ``--events`` events (built once per run in a temporary directory,
  spread over 100 days and 20 event types; target <= 50 ms p50 at 1,000,000).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from _harness import Result, percentile, write_results


def _model() -> Any:
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessage
    from langchain_core.outputs import ChatGeneration, ChatResult

    class Instant(BaseChatModel):
        """A chat model that answers at once with fixed usage (no I/O)."""

        @property
        def _llm_type(self) -> str:
            return "instant"

        def _generate(self, messages, stop=None, run_manager=None, **kwargs):  # type: ignore[no-untyped-def]
            msg = AIMessage(
                content="ok",
                usage_metadata={"input_tokens": 12, "output_tokens": 3, "total_tokens": 15},
                response_metadata={"model_name": "gpt-4o-mini", "finish_reason": "stop"},
            )
            return ChatResult(generations=[ChatGeneration(message=msg)])

        @property
        def _identifying_params(self) -> dict[str, Any]:
            return {"model_name": "gpt-4o-mini"}

    return Instant(metadata={"ls_model_name": "gpt-4o-mini", "ls_provider": "openai"})


def bench_overhead(runs: int, number: int) -> list[Result]:
    from langchain_core.callbacks import UsageMetadataCallbackHandler

    from aipowertools.callbacks import StructuredLogger
    from aipowertools.callbacks.langchain import CostCallbackHandler, LoggingCallbackHandler
    from aipowertools.core import CostTracker

    model = _model()
    tracker = CostTracker(store="memory://")
    log = StructuredLogger("bench", store="memory://")
    configs: dict[str, Any] = {
        "none": lambda: None,
        "cost": lambda: [CostCallbackHandler(tracker)],
        "usage_metadata (LangChain)": lambda: [UsageMetadataCallbackHandler()],
        "logging": lambda: [LoggingCallbackHandler(log)],
        "cost+logging": lambda: [CostCallbackHandler(tracker), LoggingCallbackHandler(log)],
    }
    handlers = {name: make() for name, make in configs.items()}
    for cbs in handlers.values():  # warm up (imports, litellm price map, SQLite)
        for _ in range(50):
            model.invoke("warm up", config={"callbacks": cbs} if cbs else None)
    log.flush()
    # Many short rounds, configurations in a shuffled order inside each round: load changes on
    # a shared machine then hit every configuration alike, and the per-round difference to
    # "no handler" cancels most of it.
    samples: dict[str, list[float]] = {name: [] for name in configs}
    writes: list[float] = []  # the log writer's time per event, from the flush after a block
    order = list(handlers)
    rng = random.Random(0)
    for _ in range(runs):
        rng.shuffle(order)
        for name in order:
            cbs = handlers[name]
            cfg = {"callbacks": cbs} if cbs else None
            start = time.perf_counter()
            for _ in range(number):
                model.invoke("how much does this cost?", config=cfg)
            samples[name].append((time.perf_counter() - start) / number * 1e3)
            # Every block ends with its events written, outside the timed part: the writer
            # thread's backlog from one setup never lands in the next one's time (nor in the
            # "no handler" peer's). What writing costs is measured apart, just below.
            start = time.perf_counter()
            log.flush()
            if "logging" in name:
                writes.append((time.perf_counter() - start) / (2 * number) * 1e3)
    base = statistics.median(samples["none"])

    def overhead(name: str) -> tuple[float, list[float]]:
        runs_ms = [s - b for s, b in zip(samples[name], samples["none"], strict=True)]
        return statistics.median(runs_ms), runs_ms

    cost, cost_runs = overhead("cost")
    peer, peer_runs = overhead("usage_metadata (LangChain)")
    logging_o, logging_runs = overhead("logging")
    both, both_runs = overhead("cost+logging")
    records = len(list(tracker.records()))
    # How much of the cost handler's overhead is the ledger write itself (core's CostTracker).
    from aipowertools.core import Usage

    usage = Usage(input_tokens=12, output_tokens=3)
    ledger_runs = []
    for _ in range(10):
        start = time.perf_counter()
        for _ in range(200):
            tracker.record(model="gpt-4o-mini", usage=usage, provider="openai")
        ledger_runs.append((time.perf_counter() - start) / 200 * 1e3)
    tracker.close()
    log.close()
    note = f"invoke without handler: {base:.3f} ms; {records} ledger records written"
    return [
        Result("CostCallbackHandler overhead per call", "ms", cost, "UsageMetadataCallbackHandler",
               peer, "<= 0.2 ms", cost_runs, peer_runs, note),
        Result("CostTracker.record alone (memory store), per call", "ms",
               statistics.median(ledger_runs), None, None, None, ledger_runs, [],
               "the part of the cost handler's overhead spent in the core ledger"),
        Result("LoggingCallbackHandler overhead per call", "ms", logging_o, None, None, None,
               logging_runs, [], "2 events + 1 span (no-op tracer) per call; the events are "
               "written to the store by a background thread (next figure)"),
        Result("cost + logging handlers overhead per call", "ms", both, None, None, "<= 0.2 ms",
               both_runs),
        Result("log writer thread, per event (SQLite memory store)", "ms",
               statistics.median(writes), None, None, None, writes, [],
               "background time to write a buffered event, off the calling thread"),
    ]  # fmt: skip


def _build(path: Path, events: int) -> tuple[float, list[str]]:
    from aipowertools.callbacks import SQLiteSink

    sink = SQLiteSink(path)
    db = sink._db()
    types = [f"event_{i:02d}" for i in range(19)] + ["llm_call_started"]
    models = ["gpt-4o", "gpt-4o-mini", "claude-3-5-haiku", "llama3"]
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc).timestamp()
    rng = random.Random(0)
    t0 = time.perf_counter()
    db.execute("BEGIN")
    batch = []
    for i in range(events):
        ts = start + (i / events) * 100 * 86400
        etype = types[rng.randrange(len(types))]
        data = {
            "ts": ts, "event": etype, "kind": "log", "level": "info", "logger": "bench",
            "model": models[i % 4], "tokens": i % 2000, "user_id": f"u{i % 500}",
        }  # fmt: skip
        batch.append((ts, etype, "log", "info", "bench", None, json.dumps(data)))
        if len(batch) == 50_000:
            db.executemany(
                "INSERT INTO events(ts, event_type, kind, level, logger, trace_id, data) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                batch,
            )
            batch.clear()
    if batch:
        db.executemany(
            "INSERT INTO events(ts, event_type, kind, level, logger, trace_id, data) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            batch,
        )
    db.execute("COMMIT")
    db.execute("ANALYZE")
    sink.close()
    return time.perf_counter() - t0, types


def bench_query(events: int, queries: int) -> list[Result]:
    from aipowertools.callbacks import SQLiteSink, StructuredLogger

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.db"
        build_s, _ = _build(path, events)
        log = StructuredLogger("bench", store=SQLiteSink(path))
        rng = random.Random(1)
        days = [dt.date(2026, 1, 1) + dt.timedelta(days=d) for d in range(100)]
        by_type: list[float] = []
        by_field: list[float] = []
        found: list[int] = []
        for _ in range(queries):
            day = days[rng.randrange(100)].isoformat()
            t = time.perf_counter()
            found.append(
                len(log.query(event_type="llm_call_started", start_time=day, end_time=day))
            )
            by_type.append((time.perf_counter() - t) * 1e3)
            t = time.perf_counter()
            log.query(event_type="llm_call_started", start_time=day, end_time=day,
                      filters={"model": "gpt-4o"})  # fmt: skip
            by_field.append((time.perf_counter() - t) * 1e3)
        log.close()
        size_mb = path.stat().st_size / 1e6
    note = (
        f"{events:,} events, built in {build_s:.1f} s ({size_mb:.0f} MB); "
        f"~{statistics.median(found):.0f} events returned per query"
    )
    return [
        Result(f"query {events:,} events by type + day (p50)", "ms",
               percentile(by_type, 50), None, None, "<= 50 ms", by_type, [], note),
        Result(f"query {events:,} events by type + day + field (p50)", "ms",
               percentile(by_field, 50), None, None, None, by_field, [], note),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=60, help="rounds over all handler setups")
    parser.add_argument("--calls", type=int, default=25, help="calls per round and setup")
    parser.add_argument("--queries", type=int, default=50)
    args = parser.parse_args()
    results = bench_overhead(args.runs, args.calls)
    results += bench_query(args.events, args.queries)
    write_results("callbacks", results)


if __name__ == "__main__":
    main()

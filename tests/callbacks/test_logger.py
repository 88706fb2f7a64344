from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import io
import json
import logging
import re
import threading
import time

import pytest

from aipowertools.callbacks import (
    ConsoleSink,
    FileSink,
    Sink,
    SQLiteSink,
    StructuredLogger,
    get_context,
)
from aipowertools.core.errors import ConfigurationError


def test_seed_example_round_trip() -> None:
    log = StructuredLogger("my_module", store="memory://")
    log.set_context(user_id="user123", session_id="sess456", trace_id="trace789")
    log.info("llm_call_started", model="gpt-4o", tokens=1500, provider="openai")
    log.info("llm_call_started", model="claude", tokens=10, provider="anthropic")
    log.metric("code_generation_quality", value=0.85, tags={"model": "gpt-4o"})
    log.audit(
        "security_event", action="create_pr", resource="repo/x", actor="user123", result="success"
    )
    today = dt.datetime.now(dt.timezone.utc).date()
    events = log.query(
        event_type="llm_call_started",
        start_time=today.isoformat(),
        end_time=today.isoformat(),
        filters={"model": "gpt-4o"},
    )
    assert len(events) == 1
    e = events[0]
    assert (e["user_id"], e["session_id"], e["trace_id"], e["tokens"]) == (
        "user123",
        "sess456",
        "trace789",
        1500,
    )
    assert e["kind"] == "log"
    assert e["logger"] == "my_module"
    assert log.query(start_time="2020-01-01", end_time="2020-01-31") == []
    metric = log.query(kind="metric", filters={"tags.model": "gpt-4o"})
    assert [m["value"] for m in metric] == [0.85]
    assert [a["action"] for a in log.query(kind="audit")] == ["create_pr"]
    assert len(log.query(filters={"model": ["gpt-4o", "claude"]})) == 2
    assert len(log.query(limit=1)) == 1
    log.close()


def test_default_store_is_sqlite_in_data_dir(tmp_path) -> None:
    log = StructuredLogger("default_store")
    log.info("hello", n=1)
    assert [e["n"] for e in log.query(event_type="hello")] == [1]
    assert (tmp_path / "home" / "events.db").exists()


def test_store_env_and_bad_store(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("AIPOWERTOOLS_LOG_STORE", f"sqlite:///{tmp_path / 'x.db'}")
    log = StructuredLogger("env_store")
    log.info("hello")
    assert log.query(event_type="hello")
    assert (tmp_path / "x.db").exists()
    with pytest.raises(ConfigurationError, match="not queryable"):
        StructuredLogger("x", store="redis://localhost/0")
    with pytest.raises(ConfigurationError, match="no store"):
        StructuredLogger("x", store=None).query()
    with pytest.raises(ConfigurationError, match="Sink instances"):
        StructuredLogger("x", store=None, sinks=[object()])  # type: ignore[list-item]


def test_context_follows_tasks_and_threads() -> None:
    log = StructuredLogger("ctx", store="memory://")

    async def worker(n: int) -> None:
        log.set_context(task_no=n)
        await asyncio.sleep(0)
        log.info("in_task")

    async def main() -> None:
        log.set_context(request="r1")
        await asyncio.gather(worker(1), worker(2))

    asyncio.run(main())
    got = sorted((e["request"], e["task_no"]) for e in log.query(event_type="in_task"))
    assert got == [("r1", 1), ("r1", 2)]

    log.set_context(user_id="u9")
    ctx = contextvars.copy_context()
    t = threading.Thread(target=ctx.run, args=(log.info, "in_thread"))
    t.start()
    t.join()
    assert log.query(event_type="in_thread")[0]["user_id"] == "u9"
    with log.context(extra="yes"):
        log.info("inside")
    log.info("outside")
    assert "extra" in log.query(event_type="inside")[0]
    assert "extra" not in log.query(event_type="outside")[0]
    log.set_context(user_id=None)
    assert "user_id" not in get_context()


def test_trace_ids_from_otel_span_else_correlation_id() -> None:
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("t")
    log = StructuredLogger("trace", store="memory://")
    with tracer.start_as_current_span("op") as span:
        log.info("in_span")
    log.info("no_span")
    log.info("no_span")
    ctx = span.get_span_context()
    inside = log.query(event_type="in_span")[0]
    assert inside["trace_id"] == format(ctx.trace_id, "032x")
    assert inside["span_id"] == format(ctx.span_id, "016x")
    outside = log.query(event_type="no_span")
    assert outside[0]["trace_id"] is None
    assert outside[0]["correlation_id"] == outside[1]["correlation_id"]
    assert len(outside[0]["correlation_id"]) == 32


def test_levels_and_stdlib_integration(caplog) -> None:
    log = StructuredLogger("stdlib_mod", store="memory://", level="warning")
    with caplog.at_level(logging.INFO, logger="stdlib_mod"):
        log.info("quiet", a=1)
        log.error("boom", exc=ValueError("bad value"), b=2)
    assert [r.getMessage() for r in caplog.records] == [
        "quiet a=1",
        'boom b=2 error={"type":' + caplog.records[1].getMessage().split('error={"type":', 1)[1],
    ]
    assert [e["event"] for e in log.query()] == ["boom"]
    assert log.query()[0]["error"]["message"] == "bad value"
    log.audit("always_kept")  # audit ignores the level
    assert [e["event"] for e in log.query(kind="audit")] == ["always_kept"]
    with pytest.raises(ConfigurationError):
        log.log("loud", "x")
    with pytest.raises(ConfigurationError):
        StructuredLogger("x", store=None, level="verbose")
    with pytest.raises(ConfigurationError):
        log.metric("m", value="high")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        log.info("")


def test_stdlib_bridge_feeds_sinks() -> None:
    log = StructuredLogger("bridge", store="memory://")
    other = logging.getLogger("thirdparty.bridge")
    other.setLevel(logging.INFO)
    handler = log.handler()
    other.addHandler(handler)
    try:
        other.info("user %s logged in", "ann", extra={"ip": "10.0.0.1"})
    finally:
        other.removeHandler(handler)
    (event,) = log.query(event_type="user %s logged in")
    assert event["message"] == "user ann logged in"
    assert event["ip"] == "10.0.0.1"
    assert event["source_logger"] == "thirdparty.bridge"


def test_content_off_by_default_and_truncated_when_on() -> None:
    quiet = StructuredLogger("c1", store="memory://")
    quiet.info("llm_end", prompt="secret plans", completion="answer", model="m")
    (e,) = quiet.query()
    assert "prompt" not in e
    assert "completion" not in e
    assert e["model"] == "m"
    loud = StructuredLogger("c2", store="memory://", log_content=True, max_content_chars=5)
    loud.info("llm_end", prompt="0123456789", messages=[{"content": "abcdefgh"}])
    (e,) = loud.query()
    assert e["prompt"] == "01234…"
    assert e["messages"] == [{"content": "abcde…"}]


def test_console_json_and_human(tmp_path) -> None:
    buf = io.StringIO()
    log = StructuredLogger("console", store=None, sinks=[ConsoleSink(buf)])
    log.info("hello", n=1)
    log.flush()
    line = json.loads(buf.getvalue().splitlines()[0])
    assert line["event"] == "hello"
    assert line["n"] == 1

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Tty()
    log2 = StructuredLogger("console2", store=None, sinks=[ConsoleSink(tty)])
    log2.warning("hello", n=1, d={"a": 1})
    log2.flush()
    text = tty.getvalue()
    assert "WARNING" in text
    assert 'console2 hello n=1 d={"a":1}' in text
    assert not text.startswith("{")


def test_file_sink_rotates(tmp_path) -> None:
    path = tmp_path / "logs" / "app.jsonl"
    log = StructuredLogger(
        "file", store=None, sinks=[FileSink(path, max_bytes=2000, backup_count=2)]
    )
    for i in range(60):
        log.info("tick", i=i, pad="x" * 50)
        log.flush()
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == ["app.jsonl", "app.jsonl.1", "app.jsonl.2"]
    assert all(p.stat().st_size <= 2000 for p in path.parent.iterdir())
    last = json.loads(path.read_text().splitlines()[-1])
    assert last["i"] == 59
    with pytest.raises(ConfigurationError):
        FileSink(path, max_bytes=-1)
    nobackup = FileSink(tmp_path / "n.jsonl", max_bytes=10, backup_count=0)
    nobackup.write([{"event": "a" * 20}])
    nobackup.write([{"event": "b" * 20}])
    assert "b" * 20 in (tmp_path / "n.jsonl").read_text()
    assert "a" * 20 not in (tmp_path / "n.jsonl").read_text()


class Flaky(Sink):
    name = "flaky"

    def __init__(self) -> None:
        self.fail = True
        self.got: list[dict] = []

    def write(self, events) -> None:
        if self.fail:
            raise ConnectionError("sink down")
        self.got.extend(events)


def test_failing_sink_never_raises_buffers_and_counts_drops(caplog) -> None:
    flaky = Flaky()
    log = StructuredLogger("flaky", store=None, sinks=[flaky], max_buffer=5)
    with caplog.at_level(logging.WARNING, logger="aipowertools.callbacks"):
        for i in range(8):
            log.info("e", i=i)  # must not raise
        # The writer takes a batch after a 50 ms linger; on a loaded machine it may take the
        # first events before the last ones arrive, so *which* 3 are dropped may vary; how
        # many never does: 5 fit the buffer.
        eventually(lambda: log.stats()[0].failures >= 1 and log.stats()[0].dropped == 3)
        assert not log.flush(timeout=0.05)  # the sink still fails: nothing can be flushed
        (st,) = log.stats()
        assert "sink down" in (st.last_error or "")
        assert (st.dropped, st.pending) == (3, 5)
        flaky.fail = False
        assert log.flush(timeout=30)
    got = [e["i"] for e in flaky.got]
    assert len(got) == 5
    assert got == sorted(got)  # delivered in order
    (st,) = log.stats()
    assert (st.delivered, st.dropped, st.pending) == (5, 3, 0)
    reported = [
        int(m.group(1))
        for r in caplog.records
        if (m := re.search(r"dropped (\d+) event\(s\)", r.getMessage()))
    ]
    assert sum(reported) == 3
    log.close()
    log.info("after_close")
    assert log.stats()[0].dropped == 4


def test_close_counts_undeliverable_events_as_dropped() -> None:
    flaky = Flaky()
    log = StructuredLogger("flaky2", store=None, sinks=[flaky])
    log.info("a")
    log.info("b")
    log.close(timeout=0.2)
    st = log.stats()[0]
    assert st.dropped == 2
    assert st.pending == 0


def test_query_time_bounds_and_bad_filters(tmp_path) -> None:
    sink = SQLiteSink(tmp_path / "q.db")
    day = dt.datetime(2026, 1, 15, tzinfo=dt.timezone.utc).timestamp()
    sink.write(
        [
            {"ts": day, "event": "a", "kind": "log", "model": "m1", "ok": True},
            {"ts": day + 86400 * 10, "event": "a", "kind": "log", "model": "m2", "ok": False},
            {"ts": day + 86400 * 40, "event": "a", "kind": "log", "model": "m1"},
        ]
    )
    log = StructuredLogger("q", store=sink)
    jan = log.query(event_type="a", start_time="2026-01-01", end_time="2026-01-31")
    assert [e["model"] for e in jan] == ["m1", "m2"]
    assert len(log.query(start_time=dt.date(2026, 2, 1))) == 1
    assert len(log.query(end_time=dt.datetime(2026, 1, 15, 0, 0, 1))) == 1
    assert len(log.query(start_time=day + 1)) == 2
    assert len(log.query(start_time="2026-02-04T00:00:00Z")) == 1
    assert [e["model"] for e in log.query(filters={"ok": True})] == ["m1"]
    with pytest.raises(ConfigurationError, match="cannot read time bound"):
        log.query(start_time="last tuesday")
    with pytest.raises(ConfigurationError):
        log.query(start_time=True)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        log.query(start_time=[2026])  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="cannot filter"):
        log.query(filters={"model') OR 1=1 --": "x"})
    plan = (
        sink._db()
        .execute(
            "EXPLAIN QUERY PLAN SELECT data FROM events "
            "WHERE event_type = ? AND ts >= ? AND ts <= ?",
            ("a", 0, 1),
        )
        .fetchall()
    )
    assert "ix_events_type_ts" in str(plan)
    plan = (
        sink._db()
        .execute(
            "EXPLAIN QUERY PLAN SELECT data FROM events WHERE json_extract(data, '$.model') = ?",
            ("m1",),
        )
        .fetchall()
    )
    assert "ix_events_f_model" in str(plan)
    log.close()


def test_shared_default_store_is_one_writer(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    a = StructuredLogger("a", store=url)
    b = StructuredLogger("b", store=url)
    a.info("from_a")
    b.info("from_b")
    assert sorted(e["logger"] for e in a.query()) == ["a", "b"]
    assert a._store_pump is b._store_pump
    assert "sqlite" in repr(a)


def test_metric_summary() -> None:
    log = StructuredLogger("metrics", store="memory://")
    for v in range(1, 101):
        log.metric("latency", value=v, tags={"model": "a" if v <= 50 else "b"}, unit="ms")
    log.metric("other", value=1000)
    s = log.metric_summary("latency")
    assert (s["count"], s["min"], s["max"], s["sum"]) == (100, 1.0, 100.0, 5050.0)
    assert s["mean"] == 50.5
    assert s["p50"] in (50.0, 51.0)
    assert s["p95"] == 95.0
    assert log.metric_summary("latency", filters={"tags.model": "a"})["max"] == 50.0
    assert log.metric_summary("missing") == {
        "count": 0,
        "sum": 0.0,
        "mean": None,
        "min": None,
        "max": None,
        "p50": None,
        "p95": None,
    }
    assert log.query(kind="metric", limit=1)[0]["unit"] == "ms"


def test_events_logged_right_before_exit_are_written(tmp_path) -> None:
    import subprocess
    import sys

    path = tmp_path / "exit.jsonl"
    code = (
        "from aipowertools.callbacks import StructuredLogger, FileSink\n"
        f"log = StructuredLogger('exit', store=None, sinks=[FileSink({str(path)!r})])\n"
        "for i in range(200):\n"
        "    log.info('last_words', i=i)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert len(path.read_text().splitlines()) == 200


def test_idle_writer_thread_ends_and_restarts() -> None:

    from aipowertools.callbacks._pump import Pump

    got: list[dict] = []

    class Collect(Sink):
        def write(self, events) -> None:
            got.extend(events)

    pump = Pump(Collect(), idle_exit=0.05)
    pump.put({"event": "a"})
    assert pump.flush(30)
    eventually(lambda: pump._thread is None, "the idle writer thread exits")
    pump.put({"event": "b"})
    assert pump.flush(30)
    assert [e["event"] for e in got] == ["a", "b"]
    pump.close()


def test_wrong_arguments_are_typed_errors_saying_what_to_pass() -> None:
    with pytest.raises(ConfigurationError, match="logger name is a non-empty string"):
        StructuredLogger(5, store="memory://")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="max_buffer must be a whole number >= 1"):
        StructuredLogger("x", store="memory://", max_buffer=0)
    with pytest.raises(ConfigurationError, match="max_buffer must be a whole number"):
        StructuredLogger("x", store="memory://", max_buffer="10")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="max_content_chars must be"):
        StructuredLogger("x", store="memory://", max_content_chars=-1)
    log = StructuredLogger("x", store="memory://")
    with pytest.raises(ConfigurationError, match="tags must be a mapping"):
        log.metric("m", value=1.0, tags=["model"])  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="filters must be a mapping"):
        log.query(filters=["model"])  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="limit must be a whole number >= 0"):
        log.query(limit=-1)
    log.info("kept", n=1)
    assert [e["n"] for e in log.query(event_type="kept", limit=1)] == [1]
    log.close()


def eventually(condition, what: str = "condition") -> None:
    """Wait for an event the writer thread counts, never for an assumed number of seconds."""
    deadline = time.monotonic() + 30  # only a broken pump gets anywhere near this
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.005)

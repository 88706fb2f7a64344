"""The per-call path of the handlers: work shared between handlers, events assembled off the
calling thread, batched writes. Each test fails if the behaviour it names breaks."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from aipowertools.callbacks import StructuredLogger
from aipowertools.callbacks import langchain as lc
from aipowertools.callbacks._genai import Runs, RunState
from aipowertools.callbacks._logger import iso_time
from aipowertools.callbacks._pump import Deferred, Pump
from aipowertools.callbacks._sinks import Sink
from aipowertools.callbacks.langchain import CostCallbackHandler, LoggingCallbackHandler
from aipowertools.core import CostTracker


class Instant(BaseChatModel):
    """Answers at once with fixed usage."""

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


def _model() -> Instant:
    return Instant(metadata={"ls_model_name": "gpt-4o-mini", "ls_provider": "openai"})


class Collect(Sink):
    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []

    def write(self, events) -> None:  # type: ignore[no-untyped-def]
        self.batches.append(list(events))


def test_iso_time_matches_datetime_including_rounding_edges() -> None:
    base = 1_763_769_600  # a whole second
    values = [base, base + 0.5, base + 0.9999996, base + 0.0000004, base + 0.0000005,
              base + 0.0000015, 1e9 + 0.0000025, 0.25, time.time()]  # fmt: skip
    values += [base + i / 7919 for i in range(2000)]
    for ts in values:
        assert iso_time(ts) == dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat(), ts


def test_both_handlers_read_one_result_once(monkeypatch: pytest.MonkeyPatch) -> None:
    reads = []
    real = lc._read_result

    def counting(response):  # type: ignore[no-untyped-def]
        reads.append(response)
        return real(response)

    monkeypatch.setattr(lc, "_read_result", counting)
    tracker = CostTracker(store="memory://")
    log = StructuredLogger("hot_once", store="memory://")
    handlers = [CostCallbackHandler(tracker), LoggingCallbackHandler(log)]
    model = _model()
    for _ in range(3):
        model.invoke("hi", config={"callbacks": handlers})
    assert len(reads) == 3  # one read per call, not one per handler
    assert len(list(tracker.records())) == 3
    ends = log.query(event_type="chat_model_end")
    assert [(e["input_tokens"], e["output_tokens"]) for e in ends] == [(12, 3)] * 3
    assert all(e["finish_reasons"] == ["stop"] for e in ends)
    log.close()
    tracker.close()


def test_handler_events_are_assembled_on_the_writer_with_call_time_context() -> None:
    sink = Collect()
    log = StructuredLogger("hot_deferred", store=None, sinks=[sink])
    handler = LoggingCallbackHandler(log, spans=False)
    log._pumps[0]._linger = 30.0  # the writer holds off until flush(): nothing built before
    secret = "sk-" + "a" * 30
    log.set_context(user_id="u1")
    try:
        before = time.time()
        _model().invoke("hi", config={"callbacks": [handler], "tags": [f"key={secret}"]})
        after = time.time()
        pump = log._pumps[0]
        with pump._cond:  # not built yet: the caller only queued them
            queued = list(pump._buffer)
        assert len(queued) == 2
        assert all(type(e) is Deferred for e in queued)
    finally:
        log.clear_context()  # changed before the writer assembles: must not matter
    assert log.flush(5)
    events = [e for batch in sink.batches for e in batch]
    assert [e["event"] for e in events] == ["chat_model_start", "chat_model_end"]
    for e in events:
        assert e["user_id"] == "u1"
        assert before <= e["ts"] <= after
        assert e["time"] == dt.datetime.fromtimestamp(e["ts"], dt.timezone.utc).isoformat()
        assert secret not in repr(e)  # redacted before the sink saw it
        assert e["tags"] == ["key=[REDACTED]"]
        assert e["correlation_id"]
    log.close()


def test_handler_events_are_built_at_once_for_an_enabled_stdlib_logger(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = StructuredLogger("hot_stdlib", store="memory://")
    handler = LoggingCallbackHandler(log, spans=False)
    with caplog.at_level(logging.INFO, logger="hot_stdlib"):
        _model().invoke("hi", config={"callbacks": [handler]})
        records = [
            r.__dict__["aipowertools_event"] for r in caplog.records if r.name == "hot_stdlib"
        ]
    assert [r["event"] for r in records] == ["chat_model_start", "chat_model_end"]
    assert [e["event"] for e in log.query()] == ["chat_model_start", "chat_model_end"]
    log.close()


def test_error_events_keep_the_traceback_of_the_moment() -> None:
    log = StructuredLogger("hot_error", store="memory://")
    handler = LoggingCallbackHandler(log, spans=False)
    run = uuid.uuid4()
    handler.on_chat_model_start({}, [[]], run_id=run, invocation_params={"model": "m"})
    try:
        raise ValueError("boom api_key=abc123")
    except ValueError as exc:
        handler.on_llm_error(exc, run_id=run)
    (event,) = log.query(event_type="chat_model_error")
    assert event["error"]["message"] == "boom api_key=[REDACTED]"
    assert "abc123" not in event["error"]["traceback"]
    log.close()


def test_writer_batches_a_burst_and_flush_does_not_wait_for_the_linger() -> None:
    sink = Collect()
    pump = Pump(sink, linger=600.0)  # a flush that waited for the linger would time out
    for i in range(100):
        pump.put({"event": "e", "i": i})
    assert pump.flush(30)
    assert [e["i"] for b in sink.batches for e in b] == list(range(100))
    assert len(sink.batches) <= 2  # one write per burst, not one per event
    pump.close()


def test_close_does_not_wait_for_the_linger() -> None:
    sink = Collect()
    pump = Pump(sink, linger=600.0)  # a close that waited for the linger would drop "a"
    pump.put({"event": "a"})
    pump.close(timeout=30)
    assert [e["event"] for b in sink.batches for e in b] == ["a"]
    assert pump.stats().dropped == 0


def test_an_event_that_cannot_be_built_is_dropped_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = Collect()
    pump = Pump(sink)

    def broken() -> dict[str, Any]:
        raise RuntimeError("bug")

    pump.put({"event": "a"})
    pump.put(Deferred(broken, ()))
    pump.put(Deferred(lambda: {"event": "c"}, ()))
    with caplog.at_level(logging.WARNING, logger="aipowertools.callbacks"):
        assert pump.flush(5)
    assert [e["event"] for b in sink.batches for e in b] == ["a", "c"]
    st = pump.stats()
    assert (st.delivered, st.dropped, st.pending) == (2, 1, 0)
    assert "could not build an event" in caplog.text
    pump.close()


def test_deferred_event_is_built_once_for_every_sink() -> None:
    built = []
    lock = threading.Lock()

    def build() -> dict[str, Any]:
        with lock:
            built.append(1)
        return {"event": "x"}

    d = Deferred(build, ())
    assert d.resolve() is d.resolve()
    assert built == [1]


def test_runs_are_found_by_uuid_or_its_string() -> None:
    runs = Runs()
    rid = uuid.uuid4()
    runs.start(RunState(str(rid), "chat", "m", 0.0), rid)
    assert runs.get(rid) is runs.get(rid)
    assert runs.get(rid) is not None
    legacy = uuid.uuid4()
    runs.start(RunState(str(legacy), "chat", "m", 0.0))  # keyed by its string
    assert runs.get(legacy) is not None
    assert runs.pop(legacy) is not None
    assert runs.pop(rid) is not None
    assert runs.get(rid) is None
    assert len(runs) == 0


@pytest.mark.parametrize("limit", [2])
def test_runs_stay_bounded(limit: int) -> None:
    runs = Runs(limit=limit)
    ids = [uuid.uuid4() for _ in range(3)]
    for rid in ids:
        runs.start(RunState(str(rid), "chat", "m", 0.0), rid)
    assert len(runs) == limit
    assert runs.get(ids[0]) is None

"""Free-text search and level filters over the SQLite log store's own FTS5 index."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from aipowertools.callbacks import ConsoleSink, SQLiteSink, StructuredLogger
from aipowertools.callbacks._search import levels_from, words
from aipowertools.core.errors import ConfigurationError


@pytest.fixture
def log(tmp_path: Path) -> StructuredLogger:
    log = StructuredLogger("s", store=SQLiteSink(tmp_path / "e.db"))
    log.info("llm_call", message="The provider's rate-limit was hit", model="gpt-4o")
    log.warning("retry", reason="rate limited", attempt=2, nested={"why": "quota exceeded"})
    log.error("boom", error="connection reset by peer")
    log.audit("budget_changed", by="ann")
    yield log
    log.close()


def test_words_must_all_occur_in_any_string_field(log: StructuredLogger) -> None:
    assert [e["event"] for _, e in log.search("rate limit")] == ["llm_call"]
    assert [e["event"] for _, e in log.search("RATE", newest_first=False)] == ["llm_call", "retry"]
    assert [e["event"] for _, e in log.search("quota")] == ["retry"]  # nested strings too
    assert [e["event"] for _, e in log.search("budget_changed")] == ["budget_changed"]
    assert log.search("nowhere") == []


def test_levels_kinds_fields_and_paging(log: StructuredLogger) -> None:
    assert [e["event"] for _, e in log.search(level="warning")] == ["boom", "retry"]
    assert [e["event"] for _, e in log.search(kind="audit")] == ["budget_changed"]
    assert [e["event"] for _, e in log.search(filters={"attempt": 2})] == ["retry"]
    assert [e["event"] for _, e in log.search(filters={"model": ["gpt-4o", "x"]})] == ["llm_call"]
    assert [e["event"] for _, e in log.search(event_type="boom")] == ["boom"]
    hits = log.search(newest_first=False)
    ids = [i for i, _ in hits]
    assert ids == sorted(ids)
    assert [e["event"] for _, e in log.search(after_id=ids[1], newest_first=False)] == [
        "boom",
        "budget_changed",
    ]
    assert len(log.search(limit=1)) == 1
    assert log.search(start_time="2001-01-01", end_time="2001-01-02") == []


def test_events_written_before_the_index_existed_are_indexed(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    sink = SQLiteSink(path)
    sink.write([{"ts": 1.0, "event": "early", "kind": "log", "level": "info", "note": "legacy"}])
    sink.close()
    with sqlite3.connect(path) as db:  # a store from before the index: no FTS table
        db.execute("DROP TRIGGER events_fts_insert")
        db.execute("DROP TABLE events_fts")
        db.execute(
            "INSERT INTO events(ts, event_type, kind, level, logger, data) VALUES "
            "(2.0, 'older', 'log', 'info', 'x', '{\"event\": \"older\", \"note\": \"legacy\"}')"
        )
    reopened = SQLiteSink(path)
    hits = reopened.search(text="legacy", levels=None, event_type=None, kind=None, start=None,
                           end=None, filters=None, after_id=None, limit=None,
                           newest_first=False)  # fmt: skip
    assert [e["event"] for _, e in hits] == ["early", "older"]
    reopened.close()


def test_bad_search_input_is_a_configuration_error(log: StructuredLogger) -> None:
    with pytest.raises(ConfigurationError, match="no words"):
        log.search("!!!")
    with pytest.raises(ConfigurationError, match="unknown level"):
        log.search(level="loud")
    with pytest.raises(ConfigurationError, match="cannot filter on field"):
        log.search(filters={"a b": 1})
    with pytest.raises(ConfigurationError, match="whole number"):
        log.search(limit=-1)
    assert levels_from(None) is None
    assert levels_from("ERROR") == ["error", "critical"]
    assert words("rate-limit, hit!") == ["rate", "limit", "hit"]


def test_a_store_that_cannot_search(tmp_path: Path) -> None:
    import io

    from aipowertools.callbacks import QueryableSink

    class ListSink(QueryableSink):
        name = "list"

        def write(self, events: object) -> None:
            pass

    log = StructuredLogger("x", store=ListSink(), sinks=[ConsoleSink(io.StringIO())])
    with pytest.raises(ConfigurationError, match="cannot search text"):
        log.search("x")
    log.close()

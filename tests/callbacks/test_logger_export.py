"""``StructuredLogger.export``: the roadmap's ``exportLogs(format)``."""

from __future__ import annotations

import csv
import io
import json

import pytest

from aipowertools.callbacks import StructuredLogger, write_events
from aipowertools.core.errors import ConfigurationError


def make_logger() -> StructuredLogger:
    log = StructuredLogger("exporter", store="memory://")
    log.set_context(trace_id="t-1")
    log.info("llm_call", model="gpt-4o", tokens=12)
    log.warning("slow_call", model="claude", latency_ms=950.5)
    log.metric("quality", value=0.8, tags={"model": "gpt-4o"})
    return log


def test_export_json_lines_round_trips_the_stored_events() -> None:
    log = make_logger()
    lines = log.export("json").splitlines()
    assert [json.loads(line) for line in lines] == log.query()
    assert [json.loads(line)["event"] for line in lines] == ["llm_call", "slow_call", "quality"]
    only = log.export(event_type="slow_call")
    assert json.loads(only)["latency_ms"] == 950.5
    assert log.export(kind="audit") == ""
    log.close()


def test_export_csv_has_base_columns_and_a_fields_column() -> None:
    log = make_logger()
    rows = list(csv.DictReader(io.StringIO(log.export(format="csv", kind="log"))))
    assert [r["event"] for r in rows] == ["llm_call", "slow_call"]
    assert [r["level"] for r in rows] == ["info", "warning"]
    assert rows[0]["trace_id"] == "t-1"
    assert json.loads(rows[0]["fields"])["tokens"] == 12
    assert "ts" not in json.loads(rows[0]["fields"])
    assert len(list(csv.reader(io.StringIO(log.export("csv", limit=1))))) == 2  # header + 1
    log.close()


def test_unknown_format_is_a_configuration_error() -> None:
    log = make_logger()
    with pytest.raises(ConfigurationError, match="format must be 'json' or 'csv'"):
        log.export("xml")
    with pytest.raises(ConfigurationError, match="format must be"):
        write_events([], "yaml", io.StringIO())
    log.close()


def test_write_events_counts_what_it_wrote() -> None:
    out = io.StringIO()
    assert write_events([{"event": "a"}, {"event": "b"}], "json", out) == 2
    assert write_events([{"event": "a"}], "csv", io.StringIO()) == 1

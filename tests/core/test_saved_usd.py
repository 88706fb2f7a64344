"""The ledger's ``saved_usd``: a response-cache hit is a $0 call that reports what it saved."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from aipowertools.core import CostTracker, LedgerRecord
from aipowertools.core.errors import ConfigurationError


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_saved_usd_is_recorded_next_to_spend(kind: str, tmp_path: Path) -> None:
    store = "memory://" if kind == "memory" else f"sqlite:///{tmp_path / 'ledger.db'}"
    tracker = CostTracker(store=store)
    tracker.record(model="gpt-4o-mini", cost_usd=0.5, request_id="paid")
    tracker.record(model="gpt-4o-mini", cost_usd=0.0, saved_usd=0.5, request_id="hit")
    assert tracker.total_usd() == pytest.approx(0.5)
    assert tracker.saved_usd() == pytest.approx(0.5)
    hit = tracker.get_record("hit")
    assert hit is not None
    assert hit.cost_usd == 0.0
    assert hit.saved_usd == pytest.approx(0.5)
    assert tracker.get_record("paid").saved_usd == 0.0  # type: ignore[union-attr]
    assert LedgerRecord.from_dict(hit.to_dict()) == hit


def test_negative_saved_usd_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="saved_usd"):
        CostTracker(store="memory://").record(model="gpt-4o-mini", cost_usd=0, saved_usd=-1.0)


def test_a_ledger_written_before_saved_usd_gains_the_column(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute(
        """CREATE TABLE aipt_default_ledger (
        request_id TEXT PRIMARY KEY, ts REAL NOT NULL, model TEXT NOT NULL,
        provider TEXT, input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,
        cached_input_tokens INTEGER NOT NULL, cache_creation_tokens INTEGER NOT NULL,
        reasoning_tokens INTEGER NOT NULL, cost_usd REAL NOT NULL,
        cost_exact INTEGER NOT NULL, latency_ms REAL, status TEXT NOT NULL, task TEXT,
        user_id TEXT, session_id TEXT, tags TEXT NOT NULL, trace_id TEXT, day TEXT NOT NULL)"""
    )
    conn.execute(
        "INSERT INTO aipt_default_ledger VALUES "
        "('old', 1.0, 'gpt-4o-mini', 'openai', 1, 1, 0, 0, 0, 0.25, 1, NULL, 'ok', NULL, "
        "NULL, NULL, '[]', NULL, '1970-01-01')"
    )
    conn.commit()
    conn.close()
    tracker = CostTracker(store=f"sqlite:///{path}")
    old = tracker.get_record("old")
    assert old is not None
    assert old.saved_usd == 0.0
    assert old.cost_usd == 0.25
    tracker.record(model="gpt-4o-mini", cost_usd=0.0, saved_usd=0.25, request_id="new")
    assert tracker.saved_usd() == pytest.approx(0.25)

"""A billed call's cost is never lost when the ledger's store fails at settle time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aipowertools.core import CostTracker
from aipowertools.core._journal import SettleJournal
from aipowertools.core.errors import StoreUnavailableError


class Outage:
    """Wraps a ledger backend's write: raises StoreUnavailableError while ``down``."""

    def __init__(self, tracker: CostTracker) -> None:
        self.down = False
        self._write = tracker._backend.write
        tracker._backend.write = self  # type: ignore[method-assign]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.down:
            raise StoreUnavailableError("redis://:***@h/0", "connection refused")
        return self._write(*args, **kwargs)


@pytest.fixture
def tracker(tmp_path: Path) -> CostTracker:
    t = CostTracker(store="memory://", budget_usd=1.0)
    t._journal = SettleJournal(tmp_path / "journal" / "ledger.jsonl")
    return t


def test_settle_during_an_outage_is_journaled_and_replayed(
    tracker: CostTracker, caplog: pytest.LogCaptureFixture
) -> None:
    outage = Outage(tracker)
    res = tracker.reserve(0.5, request_id="call-1")
    outage.down = True
    # the provider answered: no error for the caller, the record waits in the journal
    assert tracker.settle(res, model="gpt-4o", cost_usd=0.2, tags=["p"]) is True
    assert tracker._journal is not None
    assert tracker._journal.pending() == 1
    assert "journaled" in caplog.text
    assert tracker.flush_journal() == 0  # still down: kept
    assert tracker._journal.pending() == 1
    outage.down = False
    tracker.record(model="gpt-4o", cost_usd=0.1, request_id="call-2")  # replays first
    assert tracker._journal.pending() == 0
    assert tracker.spent_usd() == pytest.approx(0.3)
    assert tracker.flush_journal() == 0


def test_replay_is_idempotent_and_keeps_unreadable_lines(tracker: CostTracker) -> None:
    outage = Outage(tracker)
    outage.down = True
    tracker.record(model="gpt-4o", cost_usd=0.2, request_id="same")
    tracker.record(model="gpt-4o", cost_usd=0.2, request_id="same")
    journal = tracker._journal
    assert journal is not None
    with open(journal.path, "a", encoding="utf-8") as fh:
        fh.write("{not json\n")
    outage.down = False
    assert tracker.flush_journal() == 2
    assert tracker.spent_usd() == pytest.approx(0.2)  # one request id, counted once
    assert journal.pending() == 0
    assert journal.path.with_suffix(".bad").read_text() == "{not json\n"


def test_without_a_journal_the_error_is_raised() -> None:
    t = CostTracker(store="memory://")
    assert t._journal is None
    outage = Outage(t)
    outage.down = True
    with pytest.raises(StoreUnavailableError):
        t.record(model="gpt-4o", cost_usd=0.1)
    assert t.flush_journal() == 0


def test_shared_stores_get_a_journal(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AIPOWERTOOLS_HOME", str(tmp_path))
    journal = SettleJournal.for_store("redis://h/0#default")
    assert journal.path.parent == tmp_path / "journal"
    assert not journal.has_pending()
    assert journal.pending() == 0

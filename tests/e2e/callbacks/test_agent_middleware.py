"""BudgetMiddleware and AgentLogMiddleware in a real ``create_agent`` tool loop (simulator)."""

from __future__ import annotations

from typing import Any

import pytest

from aipowertools.callbacks import StructuredLogger
from aipowertools.core import CostTracker
from aipowertools.core.errors import BudgetExceededError
from aipowertools.testing import SimModel, ToolCall

MODEL = "gpt-4o-mini"


def _model(sim: Any, **kw: Any) -> Any:
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        model=MODEL, base_url=sim.base_url("openai"), api_key="sk-sim", max_retries=0, **kw
    )


def _loop(sim: Any, calls: int = 1) -> None:
    script: list[Any] = [ToolCall("lookup", {"city": f"c{i}"}) for i in range(calls)]
    sim.add_model(SimModel(MODEL, reply=[*script, "All done."]))


def _config(thread: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_budget_settles_each_model_call_and_ends_the_agent_when_spent(
    llm_simulator, mode
) -> None:
    from langchain.agents import create_agent
    from langgraph.checkpoint.memory import InMemorySaver

    from aipowertools.callbacks.langchain import BudgetMiddleware

    _loop(llm_simulator, calls=2)
    tracker = CostTracker(budget_usd=1.0, store="memory://")

    def lookup(city: str) -> str:
        """Look a city up (another process spends the rest of the budget meanwhile)."""
        tracker.record(model=MODEL, cost_usd=1.0 - tracker.spent_usd(), request_id="other")
        return f"{city}: found"

    agent = create_agent(
        _model(llm_simulator, max_tokens=100),
        [lookup],
        middleware=[BudgetMiddleware(tracker)],
        checkpointer=InMemorySaver(),
    )
    inputs = {"messages": [{"role": "user", "content": "Look up two cities."}]}
    if mode == "sync":
        state = agent.invoke(inputs, _config("budget-t"))
    else:
        state = await agent.ainvoke(inputs, _config("budget-t"))
    last = state["messages"][-1]
    assert "budget for this agent is spent" in last.content
    assert last.response_metadata["budget_exceeded"] is True
    assert not last.tool_calls  # the agent ended there
    # one model call reached the provider; the second was refused before it was sent
    assert llm_simulator.stats().by_model[MODEL].requests == 1
    records = [r for r in tracker.records() if r.request_id != "other"]
    assert len(records) == 1
    assert records[0].session == "budget-t"
    assert records[0].input_tokens > 0
    assert records[0].cost_usd > 0
    assert tracker.reserved_usd() == 0  # nothing left held


def test_budget_raises_when_configured_and_releases_on_failure(llm_simulator) -> None:
    from langchain.agents import create_agent

    from aipowertools.callbacks.langchain import BudgetMiddleware

    _loop(llm_simulator)
    tracker = CostTracker(budget_usd=1e-9, store="memory://")
    agent = create_agent(
        _model(llm_simulator, max_tokens=100),
        [],
        middleware=[BudgetMiddleware(tracker, on_exhausted="raise")],
    )
    with pytest.raises(BudgetExceededError):
        agent.invoke({"messages": [{"role": "user", "content": "hi"}]})
    assert llm_simulator.stats().requests == 0

    roomy = CostTracker(budget_usd=10.0, store="memory://")
    llm_simulator.fail_next(MODEL, 1, "authentication")
    failing = create_agent(
        _model(llm_simulator, max_tokens=100), [], middleware=[BudgetMiddleware(roomy)]
    )
    with pytest.raises(Exception, match=r"401|[Aa]uthentication|invalid"):
        failing.invoke({"messages": [{"role": "user", "content": "hi"}]})
    assert roomy.reserved_usd() == 0  # the failed call's reservation was released
    assert roomy.records() == []


def test_budget_middleware_arguments() -> None:
    from aipowertools.callbacks.langchain import BudgetMiddleware
    from aipowertools.core.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="on_exhausted"):
        BudgetMiddleware(CostTracker(store="memory://"), on_exhausted="ignore")  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_agent_log_events_per_step_with_run_and_thread_ids(llm_simulator, mode) -> None:
    from langchain.agents import create_agent
    from langgraph.checkpoint.memory import InMemorySaver

    from aipowertools.callbacks.langchain import AgentLogMiddleware

    _loop(llm_simulator, calls=1)
    logger = StructuredLogger(f"agent-{mode}", store="memory://")
    tracker = CostTracker(store="memory://")

    def lookup(city: str) -> str:
        """Look a city up."""
        return f"{city}: found"

    middleware = AgentLogMiddleware(logger, cost_tracker=tracker, task="research")
    agent = create_agent(
        _model(llm_simulator), [lookup], middleware=[middleware], checkpointer=InMemorySaver()
    )
    inputs = {"messages": [{"role": "user", "content": "Look it up."}]}
    config: dict[str, Any] = {**_config("log-t"), "run_id": "0f" * 16}
    if mode == "sync":
        agent.invoke(inputs, config)
    else:
        await agent.ainvoke(inputs, config)
    events = logger.query()
    names = [e["event"] for e in events]
    assert names == [
        "agent_start", "agent_model_call", "agent_tool_call", "agent_model_call", "agent_end",
    ]  # fmt: skip
    assert {e["thread_id"] for e in events} == {"log-t"}
    run_ids = {e["agent_run_id"] for e in events}
    assert len(run_ids) == 1
    calls = [e for e in events if e["event"] == "agent_model_call"]
    assert calls[0]["tools_called"] == ["lookup"]
    assert calls[0]["model"].startswith(MODEL)
    assert all(c["input_tokens"] > 0 and c["cost_usd"] > 0 for c in calls)
    assert calls[0]["step"] < calls[1]["step"]
    tool = events[2]
    assert (tool["tool"], tool["status"]) == ("lookup", "success")
    end = events[-1]
    assert (end["model_calls"], end["tool_calls"]) == (2, 1)
    assert end["cost_usd"] == pytest.approx(sum(c["cost_usd"] for c in calls))
    records = tracker.records()
    assert len(records) == 2
    assert {r.session for r in records} == {"log-t"}
    assert {r.task for r in records} == {"research"}
    assert all(f"agent_run:{run_ids.pop()}" in r.tags for r in records[:1])


async def test_agent_log_errors_and_ledger_only(llm_simulator) -> None:
    from langchain.agents import create_agent

    from aipowertools.callbacks.langchain import AgentLogMiddleware
    from aipowertools.core.errors import ConfigurationError

    with pytest.raises(ConfigurationError):
        AgentLogMiddleware()
    llm_simulator.add_model(SimModel(MODEL, reply=ToolCall("lookup", {"city": "x"})))
    logger = StructuredLogger("agent-errors", store="memory://")

    def lookup(city: str) -> str:
        """Always fails."""
        raise RuntimeError("lookup is down")

    agent = create_agent(_model(llm_simulator), [lookup], middleware=[AgentLogMiddleware(logger)])
    with pytest.raises(RuntimeError, match="lookup is down"):
        await agent.ainvoke({"messages": [{"role": "user", "content": "x"}]})
    with pytest.raises(RuntimeError, match="lookup is down"):
        agent.invoke({"messages": [{"role": "user", "content": "x"}]})
    assert [e["tool"] for e in logger.query("agent_tool_error")] == ["lookup", "lookup"]
    llm_simulator.fail_next(MODEL, 2, "authentication")
    with pytest.raises(Exception, match=r"401|[Aa]uthentication|invalid"):
        agent.invoke({"messages": [{"role": "user", "content": "x"}]})
    with pytest.raises(Exception, match=r"401|[Aa]uthentication|invalid"):
        await agent.ainvoke({"messages": [{"role": "user", "content": "x"}]})
    errors = logger.query("agent_model_error")
    assert len(errors) == 2
    assert [e["error_kind"] for e in errors] == ["authentication", "authentication"]

"""BudgetMiddleware and AgentLogMiddleware hooks called directly (edges the agent runs miss)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain.agents.middleware import ModelRequest, ModelResponse
from langchain.agents.middleware.types import ExtendedModelResponse
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from aipowertools.callbacks import StructuredLogger
from aipowertools.callbacks.langchain import (
    AgentLogMiddleware,
    BudgetMiddleware,
    _answer,
    _ledger_id,
    _model_name,
    _step,
)
from aipowertools.core import CostTracker
from aipowertools.core.errors import ConfigurationError


def request(model: Any = None) -> ModelRequest[Any]:
    return ModelRequest(
        model=model or GenericFakeChatModel(messages=iter(())),
        messages=[HumanMessage("hi")],
        system_message=SystemMessage("be brief"),
        state={"messages": []},
        runtime=None,
    )


def routed_answer(**meta: Any) -> ModelResponse[Any]:
    message = AIMessage(
        "ok",
        response_metadata={"request_id": "r-1", "cost_usd": 0.25, "deployment": "d", **meta},
        usage_metadata={"input_tokens": 10, "output_tokens": 5, "total_tokens": 15},
    )
    return ModelResponse(result=[message])


def test_helpers_outside_a_graph() -> None:
    assert _step(None) is None
    assert _answer(AIMessage("x")).content == "x"
    assert _answer(ExtendedModelResponse(model_response=routed_answer())).content == "ok"
    assert _answer(ModelResponse(result=[])) is None
    assert _model_name(object()) == "object"
    assert _ledger_id(None) is None
    assert _ledger_id(AIMessage("x")) is None


def test_budget_prices_unknown_models_by_estimate_and_settles_the_reported_cost() -> None:
    tracker = CostTracker(budget_usd=1.0, store="memory://")
    with pytest.raises(ConfigurationError, match="estimate_usd"):
        BudgetMiddleware(tracker, estimate_usd=-1)
    budget = BudgetMiddleware(tracker, estimate_usd=0.6, tags=["agents"])
    response = budget.wrap_model_call(request(), lambda r: routed_answer())
    assert isinstance(response, ModelResponse)
    (record,) = tracker.records()
    assert (record.request_id, record.cost_usd) == ("r-1", 0.25)
    assert record.model == "GenericFakeChatModel"
    # async: a third 0.6 estimate no longer fits next to 0.25 + 0.25 spent
    asyncio.run(budget.awrap_model_call(request(), _async(routed_answer(request_id="r-2"))))
    refused = asyncio.run(budget.awrap_model_call(request(), _async(routed_answer())))
    assert isinstance(refused, AIMessage)
    assert refused.response_metadata["budget_exceeded"] is True


def test_budget_estimates_usage_when_the_answer_has_none_and_releases_on_error() -> None:
    tracker = CostTracker(budget_usd=1.0, store="memory://")
    budget = BudgetMiddleware(tracker, estimate_usd=0.01)
    bare = ModelResponse(result=[AIMessage("no usage here")])
    budget.wrap_model_call(request(), lambda r: bare)
    (record,) = tracker.records()
    assert record.cost_exact is False
    assert record.output_tokens > 0

    async def boom(r: Any) -> Any:
        raise RuntimeError("provider down")

    with pytest.raises(RuntimeError):
        asyncio.run(budget.awrap_model_call(request(), boom))
    assert tracker.reserved_usd() == 0


def test_agent_log_without_usage_or_price() -> None:
    logger = StructuredLogger("units", store="memory://")
    tracker = CostTracker(store="memory://")
    middleware = AgentLogMiddleware(logger, cost_tracker=tracker)
    middleware.wrap_model_call(request(), lambda r: ModelResponse(result=[AIMessage("x")]))
    unknown = AIMessage(
        "y",
        response_metadata={"model_name": "no-such-model-anywhere"},
        usage_metadata={"input_tokens": 1, "output_tokens": 1, "total_tokens": 2},
    )
    middleware.wrap_model_call(request(), lambda r: ModelResponse(result=[unknown]))
    first, second = logger.query("agent_model_call")
    assert "input_tokens" not in first
    assert first["cost_usd"] is None
    assert second["cost_usd"] is None  # no made-up price for a model nobody prices
    assert tracker.records() == []  # nothing priced, nothing recorded as if it were


def _async(response: Any) -> Any:
    async def handler(r: Any) -> Any:
        return response

    return handler

"""Handler paths not reached by the simulator acceptance tests (completion LLMs, monitor,
router ledger keys, legacy agent events)."""

from __future__ import annotations

import uuid

import pytest
from langchain_core.language_models.fake import FakeListLLM
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, Generation, LLMResult
from langchain_core.runnables import RunnableLambda

from aipowertools.callbacks import StructuredLogger
from aipowertools.callbacks._genai import provider_name
from aipowertools.callbacks.langchain import CostCallbackHandler, LoggingCallbackHandler
from aipowertools.core import CostTracker, ProviderMonitor
from aipowertools.testing import SimModel


@pytest.fixture
def tracker():
    t = CostTracker(store="memory://")
    yield t
    t.close()


def test_completion_llm_without_usage_is_estimated(tracker, caplog) -> None:
    log = StructuredLogger("fake_llm", store="memory://")
    llm = FakeListLLM(responses=["four words of text"])
    handlers = [CostCallbackHandler(tracker), LoggingCallbackHandler(log)]
    llm.invoke("no model name", config={"callbacks": handlers})
    assert "could not record run" in caplog.text  # no model: nothing to price, said loudly
    assert list(tracker.records()) == []
    out = llm.invoke(
        "count these prompt words",
        config={"callbacks": handlers, "metadata": {"ls_model_name": "gpt-4o-mini"}},
    )
    assert out == "four words of text"
    (record,) = tracker.records()
    assert record.cost_exact is False
    assert record.output_tokens == 4
    assert record.input_tokens == 4
    end = log.query(event_type="llm_end")[-1]
    assert end["run_type"] == "llm"
    assert log.query(event_type="llm_start")


def test_llm_output_token_usage_and_router_ledger_key(tracker) -> None:
    handler = CostCallbackHandler(tracker)
    logging_handler = LoggingCallbackHandler(StructuredLogger("keys", store="memory://"))
    run = uuid.uuid4()
    for h in (handler, logging_handler):
        h.on_llm_start(
            {"id": ["langchain_openai", "llms", "OpenAI"]},
            ["hi"],
            run_id=run,
            invocation_params={"model_name": "gpt-4o-mini"},
        )
    result = LLMResult(
        generations=[[Generation(text="hello")]],
        llm_output={"token_usage": {"prompt_tokens": 11, "completion_tokens": 7}},
    )
    handler.on_llm_end(result, run_id=run)
    logging_handler.on_llm_end(result, run_id=run)
    (record,) = tracker.records()
    assert (record.input_tokens, record.output_tokens, record.cost_exact) == (11, 7, True)
    assert record.provider == "openai"

    # An answer from RouterChatModel is recorded under the router's own request id.
    run2 = uuid.uuid4()
    handler.on_chat_model_start({}, [[]], run_id=run2, invocation_params={"model": "gpt-4o-mini"})
    msg = AIMessage(
        content="routed",
        usage_metadata={"input_tokens": 3, "output_tokens": 2, "total_tokens": 5},
        response_metadata={
            "model_provider": "aipowertools-router",
            "request_id": "route-123",
            "model_name": "gpt-4o-mini",
            "cost_usd": 0.5,
        },
    )
    handler.on_llm_end(LLMResult(generations=[[ChatGeneration(message=msg)]]), run_id=run2)
    assert tracker.get_record("route-123") is not None
    # unknown runs and repeated ends are ignored
    handler.on_llm_end(LLMResult(generations=[[ChatGeneration(message=msg)]]), run_id=run2)
    handler.on_llm_error(RuntimeError("x"), run_id=uuid.uuid4())
    handler.on_llm_new_token("x", run_id=uuid.uuid4())
    assert len(list(tracker.records())) == 2


def test_cost_handler_feeds_provider_monitor(llm_simulator, tracker) -> None:
    from langchain_openai import ChatOpenAI

    llm_simulator.add_model(SimModel("gpt-4o-mini", reply="monitored reply"))
    monitor = ProviderMonitor()
    model = ChatOpenAI(
        model="gpt-4o-mini",
        base_url=llm_simulator.base_url("openai"),
        api_key="sk-test-not-a-real-key-000000",
        max_retries=0,
        stream_usage=True,
    )
    cfg = {"callbacks": [CostCallbackHandler(tracker, monitor=monitor)]}
    for _ in model.stream("hi", config=cfg):
        pass
    llm_simulator.fail_next("gpt-4o-mini", 1)
    with pytest.raises(Exception):  # noqa: B017 - the provider error itself
        model.invoke("hi", config=cfg)
    (name,) = monitor.deployments()
    assert name.startswith("openai/gpt-4o-mini")
    stats = monitor.stats(name)
    assert (stats.requests, stats.errors) == (2, 1)
    assert stats.ttft_p50_ms is not None
    assert stats.tokens_per_second
    assert stats.tokens_per_second > 0
    monitor.close()


def test_chain_and_retriever_errors_and_legacy_agent_events() -> None:
    from langchain_core.retrievers import BaseRetriever

    log = StructuredLogger("errs", store="memory://")
    handler = LoggingCallbackHandler(log, spans=False)

    def fail(_: object) -> None:
        raise KeyError("missing")

    with pytest.raises(KeyError):
        RunnableLambda(fail).invoke(1, config={"callbacks": [handler]})

    class Broken(BaseRetriever):
        def _get_relevant_documents(self, query, *, run_manager):
            raise LookupError("index offline")

    with pytest.raises(LookupError):
        Broken().invoke("q", config={"callbacks": [handler]})
    run = uuid.uuid4()

    class Action:
        tool = "search"

    handler.on_agent_action(Action(), run_id=run)
    handler.on_agent_finish(object(), run_id=run)
    assert log.query(event_type="chain_error")[0]["error"]["type"] == "builtins.KeyError"
    assert log.query(event_type="retriever_error")
    assert log.query(event_type="agent_action")[0]["tool"] == "search"
    assert log.query(event_type="agent_finish")
    # without a logger the handler only makes spans
    LoggingCallbackHandler().on_agent_finish(object(), run_id=run)


def test_provider_name_hints() -> None:
    assert provider_name(None, "langchain_anthropic.chat_models.ChatAnthropic") == "anthropic"
    assert provider_name("azure_openai") == "azure.ai.openai"
    assert provider_name("fireworks") == "fireworks"
    assert provider_name("", None) is None
    assert provider_name("some.module.Thing") is None


def test_handlers_refuse_a_missing_tracker_up_front() -> None:
    from aipowertools.callbacks.langchain import AsyncCostCallbackHandler
    from aipowertools.callbacks.llama_index import instrument
    from aipowertools.core.errors import ConfigurationError

    for handler in (CostCallbackHandler, AsyncCostCallbackHandler):
        with pytest.raises(ConfigurationError, match="needs a CostTracker"):
            handler(None)
    with pytest.raises(ConfigurationError, match=r"instrument\(tracker=...\) needs a CostTracker"):
        instrument(tracker="memory://")


@pytest.mark.parametrize("handler_cls", ["CostCallbackHandler"])
def test_an_intended_budget_refusal_is_not_logged_as_a_callback_error(
    handler_cls: str, caplog: pytest.LogCaptureFixture, llm_simulator
) -> None:
    import logging

    import httpx
    from langchain_openai import ChatOpenAI

    import aipowertools.callbacks.langchain as lc
    from aipowertools.core.errors import BudgetExceededError

    llm_simulator.add_model(SimModel("gpt-4o-mini", reply="never"))
    strict = CostTracker(budget_usd=1e-9, store="memory://")
    handler = getattr(lc, handler_cls)(strict)
    with httpx.Client() as client:
        model = ChatOpenAI(
            model="gpt-4o-mini",
            base_url=llm_simulator.base_url("openai"),
            api_key="sk-sim",
            max_retries=0,
            max_tokens=4000,
            http_client=client,
        )
        with (
            caplog.at_level(logging.WARNING, logger="langchain_core"),
            pytest.raises(BudgetExceededError),
        ):
            model.invoke("Write a long essay", config={"callbacks": [handler]})
    assert "Error in" not in caplog.text
    assert llm_simulator.stats().requests == 0
    # any other callback error is still LangChain's warning
    other = logging.LogRecord(
        "langchain_core.callbacks.manager", logging.WARNING, __file__, 1,
        "Error in %s.%s callback: %s", ("CostCallbackHandler", "on_llm_end", "ValueError()"),
        None,
    )  # fmt: skip
    assert lc._refusals_filter.filter(other) is True

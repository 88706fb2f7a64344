"""LoggingCallbackHandler through ChatOpenAI against the simulator: events and GenAI spans."""

from __future__ import annotations

import pytest
from langchain_core.prompts import ChatPromptTemplate
from langchain_openai import ChatOpenAI

from aipowertools.callbacks import StructuredLogger
from aipowertools.callbacks.langchain import LoggingCallbackHandler
from aipowertools.testing import SimModel


@pytest.fixture
def model(llm_simulator):
    llm_simulator.add_model(SimModel("gpt-4o-mini", reply="The answer is 42."))
    return ChatOpenAI(
        model="gpt-4o-mini",
        base_url=llm_simulator.base_url("openai"),
        api_key="sk-test-not-a-real-key-000000",
        stream_usage=True,
        max_retries=0,
        temperature=0.2,
    )


def _by_name(exporter):
    return {s.name: s for s in exporter.get_finished_spans()}


def test_chain_spans_are_parented_and_carry_genai_attributes(model, llm_simulator, spans) -> None:
    provider, exporter = spans
    log = StructuredLogger("lc", store="memory://")
    handler = LoggingCallbackHandler(log, tracer_provider=provider)
    chain = ChatPromptTemplate.from_messages([("user", "Question: {q}")]) | model
    tracer = provider.get_tracer("app")
    with tracer.start_as_current_span("request") as outer:
        chain.invoke({"q": "meaning of life?"}, config={"callbacks": [handler]})
    finished = exporter.get_finished_spans()
    chat = [s for s in finished if s.name == "chat gpt-4o-mini"]
    assert len(chat) == 1
    (span,) = chat
    seq = _by_name(exporter)["RunnableSequence"]
    assert span.parent.span_id == seq.context.span_id
    assert seq.parent.span_id == outer.get_span_context().span_id
    assert span.context.trace_id == outer.get_span_context().trace_id
    attrs = span.attributes
    assert llm_simulator.wait_idle()
    stats = llm_simulator.stats()
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.model"] == "gpt-4o-mini"
    assert attrs["gen_ai.request.temperature"] == 0.2
    assert attrs["gen_ai.response.model"]
    assert attrs["gen_ai.usage.input_tokens"] == stats.prompt_tokens
    assert attrs["gen_ai.usage.output_tokens"] == stats.completion_tokens
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert span.kind.name == "CLIENT"
    events = log.query()
    names = [e["event"] for e in events]
    assert names.count("chat_model_start") == 1
    assert names.count("chat_model_end") == 1
    assert names.count("chain_start") >= 2
    end = next(e for e in events if e["event"] == "chat_model_end")
    start = next(e for e in events if e["event"] == "chat_model_start")
    assert end["run_id"] == start["run_id"]
    assert end["parent_run_id"] is not None
    assert end["duration_ms"] > 0
    assert end["input_tokens"] == stats.prompt_tokens
    assert end["trace_id"] == format(span.context.trace_id, "032x")
    assert end["span_id"] == format(span.context.span_id, "016x")
    assert "messages" not in start  # content is off by default
    assert "completion" not in end


async def test_streaming_ttft_and_content_when_enabled(model, spans) -> None:
    provider, exporter = spans
    log = StructuredLogger("lc_stream", store="memory://", log_content=True, max_content_chars=8)
    handler = LoggingCallbackHandler(log, tracer_provider=provider)
    text = ""
    async for chunk in model.astream("hello there", config={"callbacks": [handler]}):
        text += str(chunk.content)
    assert text == "The answer is 42."
    (end,) = log.query(event_type="chat_model_end")
    assert end["streamed"] is True
    assert 0 < end["ttft_ms"] <= end["duration_ms"]
    assert end["completion"] == "The answ…"
    (start,) = log.query(event_type="chat_model_start")
    assert start["messages"][0][0]["content"] == "hello th…"
    (span,) = exporter.get_finished_spans()
    assert span.parent is None
    assert span.attributes["gen_ai.usage.output_tokens"] > 0


def test_error_events_and_span_status(llm_simulator, spans) -> None:
    provider, exporter = spans
    llm_simulator.add_model(SimModel("gpt-4o", reply="x"))
    llm_simulator.fail_next("gpt-4o", 1)
    model = ChatOpenAI(
        model="gpt-4o",
        base_url=llm_simulator.base_url("openai"),
        api_key="sk-test-not-a-real-key-000000",
        max_retries=0,
    )
    log = StructuredLogger("lc_err", store="memory://")
    with pytest.raises(Exception):  # noqa: B017 - whatever openai raises for a 5xx
        model.invoke(
            "hi", config={"callbacks": [LoggingCallbackHandler(log, tracer_provider=provider)]}
        )
    (err,) = log.query(event_type="chat_model_error")
    assert err["level"] == "error"
    assert err["error_kind"] in {"transient", "rate_limited"}
    assert "sk-test-not-a-real-key" not in str(err)
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code.name == "ERROR"
    assert span.attributes["error.type"]


def test_tools_retrievers_and_handler_on_model(model, spans) -> None:
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
    from langchain_core.tools import tool

    provider, exporter = spans
    log = StructuredLogger("lc_tools", store="memory://")
    handler = LoggingCallbackHandler(log, tracer_provider=provider)

    @tool
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    class Docs(BaseRetriever):
        def _get_relevant_documents(self, query, *, run_manager):
            return [Document(page_content="a"), Document(page_content="b")]

    assert add.invoke({"a": 1, "b": 2}, config={"callbacks": [handler]}) == 3
    assert len(Docs().invoke("q", config={"callbacks": [handler]})) == 2

    @tool
    def broken(x: int) -> int:
        """Always fails."""
        raise ValueError("nope")

    with pytest.raises(ValueError, match="nope"):
        broken.invoke({"x": 1}, config={"callbacks": [handler]})
    names = {s.name for s in exporter.get_finished_spans()}
    assert {"execute_tool add", "execute_tool broken", "retrieve Docs"} <= names
    tool_span = _by_name(exporter)["execute_tool add"]
    assert tool_span.attributes["gen_ai.tool.name"] == "add"
    assert [e["documents"] for e in log.query(event_type="retriever_end")] == [2]
    assert log.query(event_type="tool_error")[0]["error"]["message"] == "nope"
    # attached to the model itself: its span parents to the current span
    bound = model.with_config(callbacks=[handler])
    tracer = provider.get_tracer("app")
    with tracer.start_as_current_span("outer") as outer:
        bound.invoke("hi")
    chat = [s for s in exporter.get_finished_spans() if s.name.startswith("chat ")]
    assert chat[-1].parent.span_id == outer.get_span_context().span_id

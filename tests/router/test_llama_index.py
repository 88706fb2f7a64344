from __future__ import annotations

import pytest
from llama_index.core.base.llms.types import ChatMessage, MessageRole, ToolCallBlock
from llama_index.core.tools import FunctionTool

from aipowertools.core.errors import ConfigurationError
from aipowertools.router import LLMRouter
from aipowertools.router.llama_index import RouterLLM

from .conftest import Behaviour, FakeTransport, dep


def make(transport: FakeTransport) -> RouterLLM:
    router = LLMRouter(
        [
            dep("cheap", price=1e-7, quality=0.7, window=16_000),
            dep("big", price=1e-5, quality=0.95, tools=False),
        ],
        transport=transport,
        catalog={},
    )
    return RouterLLM(router=router)


def test_metadata_is_what_every_deployment_honours(transport: FakeTransport) -> None:
    md = make(transport).metadata
    assert md.context_window == 16_000
    assert md.num_output == -1  # like llama-index-llms-openai without max_tokens
    assert RouterLLM(router=make(transport).router, max_tokens=256).metadata.num_output == 256
    assert md.is_chat_model
    assert md.is_function_calling_model
    assert md.model_name == "aipowertools-router"


def test_chat_complete_and_raw(transport: FakeTransport) -> None:
    llm = make(transport)
    r = llm.chat(
        [
            ChatMessage(role=MessageRole.SYSTEM, content="s"),
            ChatMessage(role=MessageRole.USER, content="hi"),
        ]
    )
    assert r.message.content == "answer from cheap"
    assert r.raw["deployment"] == "cheap"
    assert r.raw["usage"]["total_tokens"] == 30
    assert r.raw["cost_usd"] > 0
    c = llm.complete("hi", required_quality=0.9)
    assert c.text == "answer from big"
    assert transport.messages[-1] == [{"role": "user", "content": "hi"}]


async def test_async_and_streams(transport: FakeTransport) -> None:
    llm = make(transport)
    assert (await llm.achat([ChatMessage(content="hi")])).message.content == "answer from cheap"
    assert (await llm.acomplete("hi")).text == "answer from cheap"
    deltas = [r.delta async for r in await llm.astream_chat([ChatMessage(content="hi")])]
    assert "".join(d or "" for d in deltas) == "answer from cheap "
    parts = [r async for r in await llm.astream_complete("hi")]
    assert parts[-1].text == "answer from cheap "
    assert parts[-1].raw["deployment"] == "cheap"


def test_sync_streams(transport: FakeTransport) -> None:
    llm = make(transport)
    parts = list(llm.stream_complete("hi"))
    assert parts[-1].text == "answer from cheap "
    chats = list(llm.stream_chat([ChatMessage(content="hi")]))
    assert chats[-1].raw["usage"]["output_tokens"] == 10


def get_weather(city: str) -> str:
    """Weather in a city."""
    return f"sunny in {city}"


def test_tool_calling(transport: FakeTransport) -> None:
    transport.behaviours["cheap"] = Behaviour(tool_call=True)
    llm = make(transport)
    tool = FunctionTool.from_defaults(get_weather)
    response = llm.chat_with_tools([tool], user_msg="weather in Paris?", tool_required=True)
    calls = llm.get_tool_calls_from_response(response)
    assert calls[0].tool_name == "get_weather"
    assert calls[0].tool_kwargs == {"city": "Paris"}
    assert transport.params[-1]["tool_choice"] == "required"
    # The tool result goes back with its call id; the assistant's call is replayed.
    history = [
        ChatMessage(content="weather?"),
        response.message,
        ChatMessage(
            role=MessageRole.TOOL, content="sunny", additional_kwargs={"tool_call_id": "call_1"}
        ),
    ]
    transport.behaviours["cheap"] = Behaviour()
    llm.chat(history)
    sent = transport.messages[-1]
    assert sent[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert sent[2] == {"role": "tool", "content": "sunny", "tool_call_id": "call_1"}
    with pytest.raises(ValueError, match="tool call"):
        llm.get_tool_calls_from_response(llm.chat([ChatMessage(content="x")]))
    assert (
        llm.get_tool_calls_from_response(
            llm.chat([ChatMessage(content="x")]), error_on_no_tool_call=False
        )
        == []
    )


def test_string_tool_kwargs_are_parsed(transport: FakeTransport) -> None:
    from llama_index.core.base.llms.types import ChatResponse

    llm = make(transport)
    msg = ChatMessage(
        role=MessageRole.ASSISTANT,
        blocks=[
            ToolCallBlock(tool_call_id="a", tool_name="f", tool_kwargs='{"x": 1}'),
            ToolCallBlock(tool_call_id="b", tool_name="g", tool_kwargs="{bad"),
        ],
    )
    calls = llm.get_tool_calls_from_response(ChatResponse(message=msg))
    assert [c.tool_kwargs for c in calls] == [{"x": 1}, {}]


def test_bad_router(transport: FakeTransport) -> None:
    with pytest.raises(ConfigurationError, match="LLMRouter"):
        RouterLLM(router="x")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="at least one"):
        RouterLLM(router=LLMRouter([], catalog={}))


def test_chat_engine_and_query_engine(transport: FakeTransport) -> None:
    from llama_index.core import Document, Settings, SummaryIndex
    from llama_index.core.chat_engine import SimpleChatEngine

    llm = make(transport)
    old = Settings._llm
    Settings.llm = llm
    try:
        # ChatMemoryBuffer: the default Memory opens an aiosqlite store LlamaIndex never closes.
        from llama_index.core.memory import ChatMemoryBuffer

        engine = SimpleChatEngine.from_defaults(memory=ChatMemoryBuffer.from_defaults())
        assert str(engine.chat("hello")) == "answer from cheap"
        assert str(engine.chat("again")) == "answer from cheap"
        assert len(transport.messages[-1]) >= 3  # the history went along
        index = SummaryIndex.from_documents([Document(text="The sky is blue.")])
        answer = index.as_query_engine().query("What colour is the sky?")
        assert str(answer) == "answer from cheap"
        assert "The sky is blue." in str(transport.messages[-1])
    finally:
        Settings._llm = old

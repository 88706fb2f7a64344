from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tools import tool
from langchain_tests.unit_tests import ChatModelUnitTests
from pydantic import BaseModel

from aipowertools.core.errors import ConfigurationError
from aipowertools.router import LLMRouter
from aipowertools.router.langchain import RouterChatModel, chat_model_deployment

from .conftest import Behaviour, FakeTransport, dep


def make_router(transport: FakeTransport | None = None) -> LLMRouter:
    return LLMRouter(
        [dep("cheap", price=1e-7, quality=0.7), dep("big", price=1e-5, quality=0.95)],
        transport=transport or FakeTransport(),
        catalog={},
    )


class TestRouterChatModelUnit(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return RouterChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"router": make_router()}

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return (
            {"AIPOWERTOOLS_ROUTER_MODELS": "openai/gpt-4o-mini, openai/gpt-4o"},
            {
                "catalog": {
                    m: {"input_cost_per_token": 1e-7, "output_cost_per_token": 4e-7}
                    for m in ("gpt-4o-mini", "gpt-4o")
                }
            },
            {"deployment_names": ["openai/gpt-4o-mini", "openai/gpt-4o"]},
        )


@pytest.fixture
def llm(transport: FakeTransport) -> RouterChatModel:
    return RouterChatModel(router=make_router(transport))


def test_invoke_metadata_and_usage(llm: RouterChatModel) -> None:
    msg = llm.invoke("hello")
    assert isinstance(msg, AIMessage)
    assert msg.content == "answer from cheap"
    assert msg.usage_metadata == {"input_tokens": 20, "output_tokens": 10, "total_tokens": 30}
    meta = msg.response_metadata
    assert meta["model_name"] == "openai/cheap"
    assert meta["deployment"] == "cheap"
    assert meta["provider"] == "openai"
    assert meta["cost_usd"] == pytest.approx(20 * 1e-7 + 10 * 4e-7)
    assert meta["latency_ms"] > 0
    assert meta["decision"]["deployment"] == "cheap"
    assert "cheapest" in meta["decision"]["explanation"]


async def test_ainvoke_with_routing_overrides(llm: RouterChatModel) -> None:
    msg = await llm.ainvoke([SystemMessage("sys"), HumanMessage("hi")], required_quality=0.9)
    assert msg.response_metadata["deployment"] == "big"
    bound = llm.bind(required_quality=0.9)
    assert (await bound.ainvoke("hi")).response_metadata["deployment"] == "big"


def test_batch_and_lcel(llm: RouterChatModel) -> None:
    chain = ChatPromptTemplate.from_messages([("human", "Q: {q}")]) | llm
    out = chain.batch([{"q": "a"}, {"q": "b"}, {"q": "c"}])
    assert [m.content for m in out] == ["answer from cheap"] * 3


def test_stream_usage_and_metadata(llm: RouterChatModel) -> None:
    chunks = list(llm.stream("hi"))
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    total = chunks[0]
    for c in chunks[1:]:
        total = total + c
    assert total.content == "answer from cheap "
    assert total.usage_metadata == {"input_tokens": 20, "output_tokens": 10, "total_tokens": 30}
    assert total.response_metadata["deployment"] == "cheap"
    assert total.response_metadata["cost_usd"] > 0


async def test_astream_failover_before_first_token(transport: FakeTransport) -> None:
    transport.behaviours["cheap"] = Behaviour(fail_rate=1.0)
    llm = RouterChatModel(router=make_router(transport))
    chunks = [c async for c in llm.astream("hi")]
    assert "".join(str(c.content) for c in chunks) == "answer from big "
    assert chunks[-1].response_metadata["deployment"] == "big"


@tool
def get_weather(city: str) -> str:
    """Weather in a city."""
    return f"sunny in {city}"


def test_bind_tools_and_tool_calls(transport: FakeTransport) -> None:
    transport.behaviours["cheap"] = Behaviour(tool_call=True)
    llm = RouterChatModel(router=make_router(transport))
    msg = llm.bind_tools([get_weather], tool_choice="any").invoke("weather in Paris?")
    assert msg.tool_calls == [
        {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1", "type": "tool_call"}
    ]
    sent = transport.params[-1]
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    assert sent["tool_choice"] == "required"
    streamed = list(llm.bind_tools([get_weather]).stream("weather?"))
    total = streamed[0]
    for c in streamed[1:]:
        total = total + c
    assert total.tool_calls[0]["args"] == {"city": "Paris"}


class Weather(BaseModel):
    city: str


def test_with_structured_output(transport: FakeTransport) -> None:
    transport.behaviours["cheap"] = Behaviour(tool_call=True, tool_name="Weather")
    llm = RouterChatModel(router=make_router(transport))
    out = llm.with_structured_output(Weather).invoke("where?")
    assert out == Weather(city="Paris")


def test_invalid_tool_arguments_are_reported(transport: FakeTransport) -> None:
    from aipowertools.router import Completion, ToolCall

    async def bad(d: Any, m: Any, p: Any) -> Completion:
        return Completion("", [ToolCall("c1", "f", "{not json")], 1, 1)

    transport.complete = bad  # type: ignore[method-assign]
    msg = RouterChatModel(router=make_router(transport)).invoke("x")
    assert msg.invalid_tool_calls[0]["name"] == "f"
    assert msg.tool_calls == []


def test_needs_router_or_models(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIPOWERTOOLS_ROUTER_MODELS", raising=False)
    with pytest.raises(ConfigurationError, match="AIPOWERTOOLS_ROUTER_MODELS"):
        RouterChatModel()
    with pytest.raises(ConfigurationError, match="must be an LLMRouter"):
        RouterChatModel(router="nope")


def test_ls_params(llm: RouterChatModel) -> None:
    params = llm._get_ls_params(stop=["x"], temperature=0.2, max_tokens=5)
    assert params == {
        "ls_provider": "aipowertools",
        "ls_model_name": "aipowertools-router",
        "ls_model_type": "chat",
        "ls_temperature": 0.2,
        "ls_max_tokens": 5,
        "ls_stop": ["x"],
    }


class _EchoModel(BaseChatModel):
    """A tiny LangChain model used as a deployment."""

    @property
    def _llm_type(self) -> str:
        return "echo"

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):  # type: ignore[no-untyped-def]
        from langchain_core.outputs import ChatGeneration, ChatResult

        text = f"echo: {messages[-1].content}"
        return ChatResult(
            generations=[
                ChatGeneration(
                    message=AIMessage(
                        text,
                        usage_metadata={"input_tokens": 3, "output_tokens": 2, "total_tokens": 5},
                    )
                )
            ]
        )


async def test_langchain_model_as_deployment() -> None:
    d = chat_model_deployment(
        _EchoModel(),
        name="echo",
        input_cost_per_token=1e-6,
        output_cost_per_token=2e-6,
        quality=0.6,
    )
    router = LLMRouter([d], catalog={})
    result = await router.route(task="ping")
    assert result.content == "echo: ping"
    assert result.cost == pytest.approx(3e-6 + 4e-6)
    stream = router.stream(task="pong")
    assert "".join([c.content async for c in stream]) == "echo: pong"
    assert stream.result is not None
    assert stream.result.output_tokens == 2


async def test_concurrent_ainvoke(llm: RouterChatModel) -> None:
    out = await asyncio.gather(*(llm.ainvoke(f"q{i}") for i in range(50)))
    assert len({m.response_metadata["request_id"] for m in out}) == 50


def test_create_agent_loop(transport: FakeTransport) -> None:
    from langchain.agents import create_agent

    from aipowertools.router import Completion, ToolCall

    async def scripted(d: Any, messages: Any, params: Any) -> Completion:
        transport.messages.append([dict(m) for m in messages])
        if messages[-1]["role"] == "tool":
            return Completion(f"It is {messages[-1]['content']}.", input_tokens=5, output_tokens=5)
        assert params["tools"][0]["function"]["name"] == "get_weather"
        return Completion("", [ToolCall("c1", "get_weather", '{"city": "Oslo"}')], 5, 5)

    transport.complete = scripted  # type: ignore[method-assign]
    agent = create_agent(RouterChatModel(router=make_router(transport)), tools=[get_weather])
    state = agent.invoke({"messages": [("user", "Weather in Oslo?")]})
    assert state["messages"][-1].content == "It is sunny in Oslo."
    assert [m.type for m in state["messages"]] == ["human", "ai", "tool", "ai"]
    assert state["messages"][-1].response_metadata["deployment"] == "cheap"

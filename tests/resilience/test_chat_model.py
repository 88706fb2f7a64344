"""ResilientChatModel and ResilientLLM's tool API with in-process fake models."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel, GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.rate_limiters import InMemoryRateLimiter
from langchain_core.runnables import RunnableLambda
from pydantic import BaseModel, Field

from aipowertools.core.errors import ConfigurationError, TransientProviderError
from aipowertools.resilience import RetryPolicy
from aipowertools.resilience.langchain import (
    ResilientChatModel,
    ResilientRunnable,
    model_key,
    with_resilience,
)

POLICY = RetryPolicy(max_attempts=2, base_delay=0.001)


class Answer(BaseModel):
    city: str


class Plain(BaseChatModel):
    """Generates only (no _stream); fails ``fail`` times first; records what it was sent."""

    fail: int = 0
    calls: int = 0
    seen: list[dict[str, Any]] = Field(default_factory=list)
    tool_call: bool = False

    @property
    def _llm_type(self) -> str:
        return "plain"

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        self.calls += 1
        self.seen.append(kw)
        if self.calls <= self.fail:
            raise TransientProviderError("503")
        calls = [{"name": "Answer", "args": {"city": "Oslo"}, "id": "c1"}] if self.tool_call else []
        message = AIMessage(
            "plain answer",
            tool_calls=calls,
            usage_metadata={"input_tokens": 3, "output_tokens": 2, "total_tokens": 5},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def bind_tools(self, tools: Any, **kw: Any) -> Any:
        return self.bind(tools=[getattr(t, "__name__", str(t)) for t in tools], **kw)


class Odd(Plain):
    def bind_tools(self, tools: Any, **kw: Any) -> Any:
        return RunnableLambda(lambda x: x)


def fake(*texts: str) -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=iter([AIMessage(t) for t in texts]))


def test_with_resilience_picks_the_chat_model_wrapper() -> None:
    model = with_resilience(fake("a"), retry=POLICY)
    assert isinstance(model, ResilientChatModel)
    assert model._llm_type == "generic-fake-chat-model"
    assert model._identifying_params == fake("a")._identifying_params
    mixed = with_resilience(fake("a"), fallbacks=[RunnableLambda(lambda x: x)])
    assert isinstance(mixed, ResilientRunnable)
    assert model_key(Plain()) == "Plain"


def test_construction_errors() -> None:
    with pytest.raises(ConfigurationError, match="wraps a LangChain chat model"):
        ResilientChatModel("gpt-4o")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="fallbacks of a ResilientChatModel"):
        ResilientChatModel(fake("a"), fallbacks=[RunnableLambda(lambda x: x)])  # type: ignore[list-item]
    with pytest.raises(ConfigurationError, match="timeout"):
        ResilientChatModel(fake("a"), timeout=0)


def test_fallback_and_inner_rate_limiter_sync_and_async() -> None:
    limiter = InMemoryRateLimiter(requests_per_second=1000, max_bucket_size=100)
    broken = Plain(fail=100, rate_limiter=limiter)
    model = ResilientChatModel(broken, retry=POLICY, fallbacks=[Plain()])
    assert model.invoke("hi").content == "plain answer"
    assert asyncio.run(model.ainvoke("hi")).content == "plain answer"
    assert broken.calls == 4  # two attempts per call on the primary
    with pytest.raises(TransientProviderError):
        ResilientChatModel(Plain(fail=100), retry=POLICY).invoke("hi")
    with pytest.raises(TransientProviderError):
        asyncio.run(ResilientChatModel(Plain(fail=100), retry=POLICY).ainvoke("hi"))


def test_models_without_streaming_stream_one_chunk_with_tool_calls() -> None:
    limiter = InMemoryRateLimiter(requests_per_second=1000, max_bucket_size=100)
    model = ResilientChatModel(Plain(tool_call=True, rate_limiter=limiter), retry=POLICY)
    chunks = list(model._stream([]))
    assert len(chunks) == 1
    assert chunks[0].message.tool_call_chunks[0]["name"] == "Answer"
    assert chunks[0].message.usage_metadata["total_tokens"] == 5

    async def collect() -> list[Any]:
        return [c async for c in model._astream([])]

    achunks = asyncio.run(collect())
    assert achunks[0].message.content == "plain answer"


def test_empty_streams_end_quietly() -> None:
    class Empty(Plain):
        def _stream(self, *a: Any, **kw: Any) -> Iterator[Any]:
            return iter(())

    model = ResilientChatModel(Empty())
    assert list(model._stream([])) == []

    async def collect() -> list[Any]:
        return [c async for c in model._astream([])]

    assert asyncio.run(collect()) == []


def test_bind_tools_formats_per_candidate_and_rejects_odd_bindings() -> None:
    primary, fallback = Plain(fail=100, seen=[]), Plain(seen=[])
    model = ResilientChatModel(primary, fallbacks=[fallback])
    bound = model.bind_tools([Answer], tool_choice="any")
    assert bound.invoke("hi").content == "plain answer"
    assert primary.seen[-1]["tools"] == ["Answer"]
    assert fallback.seen[-1] == {"tools": ["Answer"], "tool_choice": "any"}
    with pytest.raises(ConfigurationError, match="not a binding"):
        ResilientChatModel(Odd()).bind_tools([Answer])


def test_with_structured_output_uses_each_models_own_method() -> None:
    primary = Plain(fail=100, seen=[], tool_call=True)
    model = ResilientChatModel(primary, fallbacks=[Plain(seen=[], tool_call=True)])
    structured = model.with_structured_output(Answer)
    assert isinstance(structured, ResilientRunnable)
    assert structured.guard is model.guard
    assert structured.invoke("where?") == Answer(city="Oslo")


def test_resilient_llm_tool_api_needs_a_function_calling_llm() -> None:
    from llama_index.core.llms import MockLLM
    from llama_index.core.tools import FunctionTool
    from llama_index.llms.openai import OpenAI

    from aipowertools.resilience.llama_index import ResilientLLM

    def lookup(city: str) -> str:
        """Look a city up."""
        return city

    tool = FunctionTool.from_defaults(lookup)
    with pytest.raises(ConfigurationError, match="not a function-calling LLM"):
        ResilientLLM(MockLLM()).chat_with_tools([tool], user_msg="x")
    # preparing a tool call is the wrapped LLM's own formatting (no request is made)
    wrapped = ResilientLLM(OpenAI(model="gpt-4o-mini", api_key="sk-unit"))
    prepared = wrapped._prepare_chat_with_tools([tool], user_msg="x", tool_required=True)
    assert prepared["tools"][0]["function"]["name"] == "lookup"
    assert prepared["tool_choice"] == "required"

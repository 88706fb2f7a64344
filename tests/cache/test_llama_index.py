"""CachedLLM: the response cache in front of any LlamaIndex LLM."""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core.base.llms.types import ChatMessage, CompletionResponse
from llama_index.core.llms import MockLLM

from aipowertools.cache import LLMCache
from aipowertools.cache.llama_index import CachedLLM, _config
from aipowertools.core.errors import ConfigurationError


class CountingLLM(MockLLM):
    """MockLLM that counts the calls reaching it."""

    calls: int = 0

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        self.calls += 1
        return super().complete(prompt, formatted=formatted, **kwargs)

    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
        self.calls += 1
        return super().stream_complete(prompt, formatted=formatted, **kwargs)


def msgs(text: str) -> list[ChatMessage]:
    return [ChatMessage(role="user", content=text)]


def test_chat_and_complete_are_answered_once() -> None:
    inner = CountingLLM(max_tokens=4)
    llm = CachedLLM(inner, LLMCache("memory://"))
    first = llm.chat(msgs("hello there"))
    second = llm.chat(msgs("hello there"))
    assert second.message.content == first.message.content
    assert second.additional_kwargs["cache"] == "hit"
    assert inner.calls == 1  # MockLLM.chat goes through complete
    a = llm.complete("tell me")
    b = llm.complete("tell me")
    assert a.text == b.text
    assert b.additional_kwargs == {"cache": "hit"}
    assert llm.complete("tell me", formatted=True).additional_kwargs["cache"] == "miss"
    assert llm.metadata == inner.metadata
    assert llm.cache.stats().hits == 2
    assert CachedLLM.class_name() == "CachedLLM"


def test_streams_are_cached_and_replayed() -> None:
    inner = CountingLLM(max_tokens=4)
    llm = CachedLLM(inner, LLMCache("memory://"))
    live = [r.delta for r in llm.stream_complete("stream me")]
    replay = list(llm.stream_complete("stream me"))
    assert [r.delta for r in replay] == live
    assert replay[-1].text == "".join(d or "" for d in live)
    assert inner.calls == 1
    chat_live = [r.delta for r in llm.stream_chat(msgs("chat stream"))]
    chat_replay = list(llm.stream_chat(msgs("chat stream")))
    assert [r.delta for r in chat_replay] == chat_live
    assert chat_replay[-1].additional_kwargs["cache"] == "hit"


async def test_async_variants() -> None:
    llm = CachedLLM(MockLLM(max_tokens=3), LLMCache("memory://"))
    a = await llm.achat(msgs("async hi"))
    b = await llm.achat(msgs("async hi"))
    assert a.message.content == b.message.content
    assert b.additional_kwargs["cache"] == "hit"
    c = await llm.acomplete("async complete")
    d = await llm.acomplete("async complete")
    assert c.text == d.text
    live = [r.delta async for r in await llm.astream_complete("async stream")]
    replay = [r.delta async for r in await llm.astream_complete("async stream")]
    assert replay == live
    chat_live = [r.delta async for r in await llm.astream_chat(msgs("async chat stream"))]
    chat_replay = [r async for r in await llm.astream_chat(msgs("async chat stream"))]
    assert [r.delta for r in chat_replay] == chat_live
    assert chat_replay[-1].additional_kwargs["cache"] == "hit"


def test_settings_of_the_wrapped_llm_are_in_the_key() -> None:
    cache = LLMCache("memory://")
    short, long = CachedLLM(MockLLM(max_tokens=2), cache), CachedLLM(MockLLM(max_tokens=5), cache)
    short.complete("same prompt")
    assert long.complete("same prompt").additional_kwargs["cache"] == "miss"

    class Opaque(MockLLM):
        def to_json(self, **kwargs: Any) -> str:
            raise TypeError("not serializable")

    assert _config(Opaque()) == {"class_name": "MockLLM"}


def test_only_llms_are_wrapped() -> None:
    with pytest.raises(ConfigurationError, match="llm"):
        CachedLLM("gpt-4o")  # type: ignore[arg-type]

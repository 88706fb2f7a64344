"""LlamaIndex adapter: ``CachedLLM`` adds the response cache to any LlamaIndex ``LLM``.

(``RouterLLM`` gets it through the router: ``LLMRouter(cache=LLMCache(...))``.)

Example:
    >>> from llama_index.core.llms import MockLLM
    >>> from aipowertools.cache import LLMCache
    >>> from aipowertools.cache.llama_index import CachedLLM
    >>> llm = CachedLLM(MockLLM(max_tokens=3), LLMCache("memory://"))
    >>> llm.complete("hello").text == llm.complete("hello").text
    True
    >>> llm.cache.stats().hits
    1
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Generator, Sequence
from typing import Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.llms.llm import LLM

from aipowertools.cache._cache import LLMCache
from aipowertools.cache._hit import Answer, CacheHit
from aipowertools.core.errors import ConfigurationError

__all__ = ["CachedLLM"]

_SECRET = frozenset({"token", "access_token", "secret", "api_secret", "password"})


def _config(llm: LLM) -> Any:
    """The wrapped LLM's settings (model, temperature, ...), secrets left out."""
    try:
        data = json.loads(llm.to_json())
    except Exception:  # settings that do not serialize: the class stands for them
        return {"class_name": llm.class_name()}
    return {
        k: v
        for k, v in data.items()
        if k not in ("callback_manager", "pydantic_program_mode")
        and k.lower() not in _SECRET
        and not k.lower().endswith("_key")
    }


def _message(message: ChatMessage) -> dict[str, Any]:
    return {
        "role": message.role.value,
        "content": message.content or "",
        "additional_kwargs": message.additional_kwargs,
    }


def _usage(raw: Any, extra: dict[str, Any]) -> tuple[int, int, str | None]:
    from aipowertools.core import Usage

    finish = None
    for source in (raw, extra):
        try:
            usage = Usage.from_any(source)
        except Exception:
            continue
        return usage.input_tokens, usage.output_tokens, finish
    return 0, 0, finish


def _chat_value(response: ChatResponse) -> dict[str, Any]:
    return {
        "role": response.message.role.value,
        "content": response.message.content or "",
        "additional_kwargs": response.message.additional_kwargs,
    }


def _chat_response(value: dict[str, Any], hit: CacheHit, delta: str | None = None) -> ChatResponse:
    return ChatResponse(
        message=ChatMessage(
            role=MessageRole(value["role"]),
            content=value["content"],
            additional_kwargs=value.get("additional_kwargs") or {},
        ),
        delta=delta,
        additional_kwargs={"cache": hit.kind},
    )


class CachedLLM(LLM):
    """Any LlamaIndex LLM with a response cache in front of it.

    Chat and completion calls (sync, async, streaming) are looked up first; a miss calls the
    wrapped LLM and caches its answer (streams once they complete, replayed as streams).
    Responses carry ``additional_kwargs["cache"]``: ``"hit"``, ``"semantic"`` or ``"miss"``
    (streamed chunks: on hits). The key holds
    the messages, the call's keyword arguments and the wrapped LLM's settings.

    Args:
        llm: the LLM to wrap.
        cache: the :class:`~aipowertools.cache.LLMCache` (default: the embedded store).
        user: the user the calls are made for (``scope="user"``).
        tags: entry tags.
    """

    _llm: LLM = PrivateAttr()
    _cache: LLMCache = PrivateAttr()
    _user: str | None = PrivateAttr()
    _tags: tuple[str, ...] = PrivateAttr()
    _config: Any = PrivateAttr()

    def __init__(
        self,
        llm: LLM,
        cache: LLMCache | None = None,
        *,
        user: str | None = None,
        tags: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        if not isinstance(llm, LLM):
            raise ConfigurationError(f"llm: CachedLLM wraps a LlamaIndex LLM, got {llm!r}")
        super().__init__(callback_manager=llm.callback_manager, **kwargs)
        self._llm = llm
        self._cache = cache if cache is not None else LLMCache()
        self._user = user
        self._tags = tuple(tags)
        self._config = _config(llm)

    @classmethod
    def class_name(cls) -> str:
        """Name LlamaIndex uses for this class."""
        return "CachedLLM"

    @property
    def metadata(self) -> LLMMetadata:
        """The wrapped LLM's metadata."""
        return self._llm.metadata

    @property
    def cache(self) -> LLMCache:
        """The response cache."""
        return self._cache

    def _kw(self, kwargs: dict[str, Any], mode: str) -> dict[str, Any]:
        return {
            "model": self._llm.metadata.model_name or self._llm.class_name(),
            "user": self._user,
            "tags": self._tags,
            "llm_config": self._config,
            "call_kwargs": kwargs,
            "call_mode": mode,
        }

    # ------------------------------------------------------------------ chat
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Chat, answered from the cache when it can be."""
        msgs = [_message(m) for m in messages]
        kw = self._kw(kwargs, "chat")
        hit = self._cache.lookup(msgs, **kw)
        if hit is not None:
            return _chat_response(hit.value, hit)
        response = self._llm.chat(messages, **kwargs)
        i, o, finish = _usage(response.raw, response.additional_kwargs)
        response.additional_kwargs["cache"] = "miss"
        self._cache.store(
            _chat_value(response), messages=msgs, input_tokens=i, output_tokens=o,
            finish_reason=finish, **kw,
        )  # fmt: skip
        return response

    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Async :meth:`chat`."""
        msgs = [_message(m) for m in messages]
        kw = self._kw(kwargs, "chat")
        hit = await self._cache.alookup(msgs, **kw)
        if hit is not None:
            return _chat_response(hit.value, hit)
        response = await self._llm.achat(messages, **kwargs)
        i, o, finish = _usage(response.raw, response.additional_kwargs)
        response.additional_kwargs["cache"] = "miss"
        await self._cache.astore(
            _chat_value(response), messages=msgs, input_tokens=i, output_tokens=o,
            finish_reason=finish, **kw,
        )  # fmt: skip
        return response

    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        """Streaming chat; a cached answer replays as a stream of its deltas."""
        msgs = [_message(m) for m in messages]
        kw = self._kw(kwargs, "stream_chat")
        hit = self._cache.lookup(msgs, **kw)
        if hit is not None:
            return _replay_chat(hit)
        role: list[str] = []
        return self._cache.cache_stream(
            self._llm.stream_chat(messages, **kwargs), messages=msgs,
            encode=lambda r: _delta(r, role), summarize=lambda c: _summary(c, role), **kw,
        )  # fmt: skip

    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        """Async :meth:`stream_chat`."""
        msgs = [_message(m) for m in messages]
        kw = self._kw(kwargs, "stream_chat")
        hit = await self._cache.alookup(msgs, **kw)
        if hit is not None:
            return _areplay(_replay_chat(hit))
        role: list[str] = []
        return self._cache.acache_stream(
            await self._llm.astream_chat(messages, **kwargs), messages=msgs,
            encode=lambda r: _delta(r, role), summarize=lambda c: _summary(c, role), **kw,
        )  # fmt: skip

    # ------------------------------------------------------------------ complete
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """Completion, answered from the cache when it can be."""
        kw = self._kw({**kwargs, "formatted": formatted}, "complete")
        hit = self._cache.lookup(prompt, **kw)
        if hit is not None:
            return CompletionResponse(text=hit.value, additional_kwargs={"cache": hit.kind})
        response = self._llm.complete(prompt, formatted=formatted, **kwargs)
        i, o, finish = _usage(response.raw, response.additional_kwargs)
        response.additional_kwargs["cache"] = "miss"
        self._cache.store(
            response.text, messages=prompt, input_tokens=i, output_tokens=o,
            finish_reason=finish, **kw,
        )  # fmt: skip
        return response

    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        """Async :meth:`complete`."""
        kw = self._kw({**kwargs, "formatted": formatted}, "complete")
        hit = await self._cache.alookup(prompt, **kw)
        if hit is not None:
            return CompletionResponse(text=hit.value, additional_kwargs={"cache": hit.kind})
        response = await self._llm.acomplete(prompt, formatted=formatted, **kwargs)
        i, o, finish = _usage(response.raw, response.additional_kwargs)
        response.additional_kwargs["cache"] = "miss"
        await self._cache.astore(
            response.text, messages=prompt, input_tokens=i, output_tokens=o,
            finish_reason=finish, **kw,
        )  # fmt: skip
        return response

    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        """Streaming completion; a cached answer replays as a stream of its deltas."""
        kw = self._kw({**kwargs, "formatted": formatted}, "stream_complete")
        hit = self._cache.lookup(prompt, **kw)
        if hit is not None:
            return _replay_complete(hit)
        return self._cache.cache_stream(
            self._llm.stream_complete(prompt, formatted=formatted, **kwargs), messages=prompt,
            encode=lambda r: r.delta or "", summarize=lambda c: Answer("".join(c)), **kw,
        )  # fmt: skip

    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        """Async :meth:`stream_complete`."""
        kw = self._kw({**kwargs, "formatted": formatted}, "stream_complete")
        hit = await self._cache.alookup(prompt, **kw)
        if hit is not None:
            return _areplay(_replay_complete(hit))
        return self._cache.acache_stream(
            await self._llm.astream_complete(prompt, formatted=formatted, **kwargs),
            messages=prompt, encode=lambda r: r.delta or "",
            summarize=lambda c: Answer("".join(c)), **kw,
        )  # fmt: skip


def _delta(response: ChatResponse, role: list[str]) -> str:
    if not role:
        role.append(response.message.role.value)
    return response.delta or ""


def _summary(chunks: list[Any], role: list[str]) -> Answer:
    content = "".join(chunks)
    return Answer({"role": role[0] if role else "assistant", "content": content})


def _replay_chat(hit: CacheHit) -> Generator[ChatResponse, None, None]:
    text = ""
    for delta in hit.chunks if hit.chunks is not None else [hit.value["content"]]:
        text += delta
        yield _chat_response({**hit.value, "content": text}, hit, delta)


def _replay_complete(hit: CacheHit) -> Generator[CompletionResponse, None, None]:
    text = ""
    for delta in hit.chunks if hit.chunks is not None else [hit.value]:
        text += delta
        yield CompletionResponse(text=text, delta=delta, additional_kwargs={"cache": hit.kind})


async def _areplay(items: Generator[Any, None, None]) -> AsyncGenerator[Any, None]:
    for item in items:
        yield item

"""LlamaIndex adapters: a ``BaseRateLimiter`` on our limiter, and ``ResilientLLM``.

Example:
    >>> from llama_index.core.llms import MockLLM
    >>> from aipowertools.resilience import RateLimiter, RetryPolicy
    >>> from aipowertools.resilience.llama_index import ResilientLLM
    >>> llm = ResilientLLM(
    ...     MockLLM(max_tokens=5),
    ...     rate_limiter=RateLimiter(requests_per_second=50),
    ...     retry=RetryPolicy(max_attempts=3, base_delay=0.1),
    ... )
    >>> llm.complete("hello").text != ""
    True
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator, Sequence
from functools import partial
from typing import Any, TypeVar

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
)
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.llms.llm import LLM
from llama_index.core.rate_limiter import BaseRateLimiter

from aipowertools.core.errors import ConfigurationError
from aipowertools.resilience._breaker import CircuitBreaker
from aipowertools.resilience._guard import Guard, afirst_started, arelay, first_started, relay
from aipowertools.resilience._limiter import RateLimiter
from aipowertools.resilience._limits import Priority
from aipowertools.resilience._retry import RetryPolicy

__all__ = ["LlamaRateLimiter", "ResilientLLM"]

T = TypeVar("T")
_NO_RETRY = RetryPolicy(max_attempts=1)


class LlamaRateLimiter(BaseRateLimiter):
    """llama-index-core ``BaseRateLimiter`` backed by our (optionally shared) limiter.

    Use as ``OpenAI(..., rate_limiter=LlamaRateLimiter(...))``; ``acquire(num_tokens)`` reserves
    that many tokens (LlamaIndex passes an estimate, or 0).

    Example:
        >>> limiter = LlamaRateLimiter(requests_per_minute=500, tokens_per_minute=90_000)
        >>> limiter.acquire(num_tokens=1200)
    """

    def __init__(
        self,
        limiter: RateLimiter | None = None,
        *,
        key: str = "default",
        priority: Priority = "normal",
        store: str | None = None,
        **limits: Any,
    ) -> None:
        if limiter is not None and limits:
            raise ConfigurationError("give either limiter= or limit keywords, not both")
        self.limiter = limiter if limiter is not None else RateLimiter(store=store, **limits)
        self.key = key
        self.priority = priority

    def acquire(self, num_tokens: int = 0) -> None:
        """Block until one request of ``num_tokens`` tokens fits."""
        self.limiter.acquire_sync(self.key, tokens=int(num_tokens), priority=self.priority)

    async def async_acquire(self, num_tokens: int = 0) -> None:
        """Wait until one request of ``num_tokens`` tokens fits."""
        await self.limiter.acquire(self.key, tokens=int(num_tokens), priority=self.priority)


class ResilientLLM(LLM):
    """Any LlamaIndex LLM behind a rate limiter, retry, circuit breaker, timeout and fallbacks.

    Streams retry or fall back only before their first chunk. The limiter, breaker and
    timeout guard the wrapped LLM; fallback LLMs get the retry policy and the timeout.

    Example:
        >>> from llama_index.core.llms import ChatMessage, MockLLM
        >>> ResilientLLM(MockLLM()).chat([ChatMessage(role="user", content="hi")]).message.role
        <MessageRole.ASSISTANT: 'assistant'>
    """

    _llm: LLM = PrivateAttr()
    _guard: Guard = PrivateAttr()
    _retry: RetryPolicy = PrivateAttr()
    _fallbacks: tuple[LLM, ...] = PrivateAttr()

    def __init__(
        self,
        llm: LLM,
        *,
        rate_limiter: RateLimiter | None = None,
        limiter_key: str = "default",
        priority: Priority = "normal",
        tokens: int | Callable[[Any], int] | None = None,
        retry: RetryPolicy | None = None,
        circuit_breaker: CircuitBreaker | None = None,
        timeout: float | None = None,
        fallbacks: Sequence[LLM] = (),
        **kwargs: Any,
    ) -> None:
        if not isinstance(llm, LLM):
            raise ConfigurationError(
                f"ResilientLLM wraps a LlamaIndex LLM, got {type(llm).__name__}"
            )
        super().__init__(callback_manager=llm.callback_manager, **kwargs)
        self._llm = llm
        self._retry = retry or _NO_RETRY
        self._fallbacks = tuple(fallbacks)
        self._guard = Guard(
            rate_limiter=rate_limiter,
            limiter_key=limiter_key,
            priority=priority,
            tokens=tokens,
            circuit_breaker=circuit_breaker,
            timeout=timeout,
        )

    @classmethod
    def class_name(cls) -> str:
        """Name LlamaIndex uses for this class."""
        return "ResilientLLM"

    @property
    def metadata(self) -> LLMMetadata:
        """The wrapped LLM's metadata."""
        return self._llm.metadata

    @property
    def wrapped(self) -> LLM:
        """The primary LLM."""
        return self._llm

    def _candidates(self) -> list[tuple[LLM, bool]]:
        return [(self._llm, True), *((fb, False) for fb in self._fallbacks)]

    def _run(self, value: Any, call: Callable[[LLM], T]) -> T:
        first: BaseException | None = None
        for llm, guarded in self._candidates():
            try:
                result: T = self._retry.retrying()(
                    self._guard.run, lambda m=llm: call(m), value, guarded=guarded
                )
                return result
            except Exception as exc:
                first = first or exc
        assert first is not None
        raise first

    async def _arun(self, value: Any, call: Callable[[LLM], Any]) -> Any:
        first: BaseException | None = None
        for llm, guarded in self._candidates():
            try:
                return await self._retry.aretrying()(
                    self._guard.arun, lambda m=llm: call(m), value, guarded=guarded
                )
            except Exception as exc:
                first = first or exc
        assert first is not None
        raise first

    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Chat under the policies."""
        return self._run(messages, lambda m: m.chat(messages, **kwargs))

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """Complete under the policies."""
        return self._run(prompt, lambda m: m.complete(prompt, formatted=formatted, **kwargs))

    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Async chat under the policies."""
        result: ChatResponse = await self._arun(messages, lambda m: m.achat(messages, **kwargs))
        return result

    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        """Async complete under the policies."""
        result: CompletionResponse = await self._arun(
            prompt, lambda m: m.acomplete(prompt, formatted=formatted, **kwargs)
        )
        return result

    # -- streams: retry / fall back before the first chunk only --------------------------

    def _stream(
        self, value: Any, open_stream: Callable[[LLM], Iterator[T]]
    ) -> Generator[T, None, None]:
        def start(llm: LLM, guarded: bool) -> tuple[T, Iterator[T], Any, Any]:
            reservation, handle = self._guard.enter_stream(value) if guarded else (None, None)
            try:
                iterator = iter(open_stream(llm))
                first = next(iterator)
            except BaseException as exc:
                self._guard.failed(exc, handle, reservation)
                raise
            return first, iterator, reservation, handle

        started = first_started(
            partial(self._retry.retrying(), start, llm, guarded)
            for llm, guarded in self._candidates()
        )
        if started is not None:
            yield from relay(self._guard, started)

    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        """Stream a chat; retries and fallbacks happen before the first chunk."""
        return self._stream(messages, lambda m: m.stream_chat(messages, **kwargs))

    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        """Stream a completion; retries and fallbacks happen before the first chunk."""
        return self._stream(
            prompt, lambda m: m.stream_complete(prompt, formatted=formatted, **kwargs)
        )

    async def _astream(
        self, value: Any, open_stream: Callable[[LLM], Any]
    ) -> AsyncGenerator[Any, None]:
        async def start(llm: LLM, guarded: bool) -> tuple[Any, AsyncIterator[Any], Any, Any]:
            pair = await self._guard.aenter_stream(value) if guarded else (None, None)
            reservation, handle = pair
            try:
                iterator = aiter(await open_stream(llm))
                first = await anext(iterator)
            except BaseException as exc:
                self._guard.failed(exc, handle, reservation)
                raise
            return first, iterator, reservation, handle

        started = await afirst_started(
            partial(self._retry.aretrying(), start, llm, guarded)
            for llm, guarded in self._candidates()
        )
        if started is not None:
            async for chunk in arelay(self._guard, started):
                yield chunk

    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        """Async stream a chat; retries and fallbacks happen before the first chunk."""
        return self._astream(messages, lambda m: m.astream_chat(messages, **kwargs))

    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        """Async stream a completion; retries and fallbacks happen before the first chunk."""
        return self._astream(
            prompt, lambda m: m.astream_complete(prompt, formatted=formatted, **kwargs)
        )

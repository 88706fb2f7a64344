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
from typing import TYPE_CHECKING, Any, TypeVar

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
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import LLM, ToolSelection
from llama_index.core.rate_limiter import BaseRateLimiter

from aipowertools.core.errors import ConfigurationError
from aipowertools.resilience._breaker import CircuitBreaker
from aipowertools.resilience._guard import Guard, afirst_started, arelay, first_started, relay
from aipowertools.resilience._limiter import RateLimiter
from aipowertools.resilience._limits import Priority
from aipowertools.resilience._retry import RetryPolicy

if TYPE_CHECKING:
    from llama_index.core.tools.types import BaseTool

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


class ResilientLLM(FunctionCallingLLM):
    """Any LlamaIndex LLM behind a rate limiter, retry, circuit breaker, timeout and fallbacks.

    Streams retry or fall back only before their first chunk. The limiter, breaker and
    timeout guard the wrapped LLM; fallback LLMs get the retry policy and the timeout.

    Around a function-calling LLM (OpenAI, Anthropic, ``RouterLLM``, ...) it is one too:
    ``chat_with_tools`` / ``achat_with_tools`` / ``stream_chat_with_tools`` /
    ``astream_chat_with_tools`` run each candidate's own tool call under the policies, and
    ``get_tool_calls_from_response`` reads the primary's format, so ``FunctionAgent``,
    ``predict_and_call`` and structured prediction work through it. ``metadata`` is the
    wrapped LLM's (``is_function_calling_model`` included).

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

    # -- function calling: each candidate's own tool API, under the policies ----------------

    def _tool_llm(self, llm: LLM) -> FunctionCallingLLM:
        if not isinstance(llm, FunctionCallingLLM):
            raise ConfigurationError(
                f"{type(llm).__name__} is not a function-calling LLM (FunctionCallingLLM); "
                "ResilientLLM cannot call tools through it"
            )
        return llm

    @staticmethod
    def _tool_messages(
        user_msg: str | ChatMessage | None, chat_history: list[ChatMessage] | None
    ) -> list[Any]:
        return [*(chat_history or []), *([user_msg] if user_msg is not None else [])]

    def _prepare_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        return self._tool_llm(self._llm)._prepare_chat_with_tools_compat(
            tools,
            user_msg=user_msg,
            chat_history=chat_history,
            verbose=verbose,
            allow_parallel_tool_calls=allow_parallel_tool_calls,
            tool_required=tool_required,
            **kwargs,
        )

    def chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> ChatResponse:
        """Chat with tools under the policies (each candidate formats the tools its way)."""
        return self._run(
            self._tool_messages(user_msg, chat_history),
            lambda m: self._tool_llm(m).chat_with_tools(
                tools, user_msg, chat_history, verbose=verbose,
                allow_parallel_tool_calls=allow_parallel_tool_calls,
                tool_required=tool_required, **kwargs,
            ),
        )  # fmt: skip

    async def achat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> ChatResponse:
        """Async form of :meth:`chat_with_tools`."""
        result: ChatResponse = await self._arun(
            self._tool_messages(user_msg, chat_history),
            lambda m: self._tool_llm(m).achat_with_tools(
                tools, user_msg, chat_history, verbose=verbose,
                allow_parallel_tool_calls=allow_parallel_tool_calls,
                tool_required=tool_required, **kwargs,
            ),
        )  # fmt: skip
        return result

    def stream_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> ChatResponseGen:
        """Stream a chat with tools; retries and fallbacks happen before the first chunk."""
        return self._stream(
            self._tool_messages(user_msg, chat_history),
            lambda m: self._tool_llm(m).stream_chat_with_tools(
                tools, user_msg, chat_history, verbose=verbose,
                allow_parallel_tool_calls=allow_parallel_tool_calls,
                tool_required=tool_required, **kwargs,
            ),
        )  # fmt: skip

    async def astream_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> ChatResponseAsyncGen:
        """Async form of :meth:`stream_chat_with_tools`."""
        return self._astream(
            self._tool_messages(user_msg, chat_history),
            lambda m: self._tool_llm(m).astream_chat_with_tools(
                tools, user_msg, chat_history, verbose=verbose,
                allow_parallel_tool_calls=allow_parallel_tool_calls,
                tool_required=tool_required, **kwargs,
            ),
        )  # fmt: skip

    def get_tool_calls_from_response(
        self, response: ChatResponse, error_on_no_tool_call: bool = True, **kwargs: Any
    ) -> list[ToolSelection]:
        """The tool calls of a response, read by the wrapped LLM."""
        return self._tool_llm(self._llm).get_tool_calls_from_response(
            response, error_on_no_tool_call=error_on_no_tool_call, **kwargs
        )

"""LangChain adapters: ``with_resilience``, ``ResilientChatModel``, ``ResilientRunnable``, ...

``with_resilience(chat_model)`` gives a :class:`ResilientChatModel`: a ``BaseChatModel`` that
keeps everything the wrapped model can do (``bind_tools``, ``with_structured_output``,
``with_config``, streaming, async), so ``create_agent(with_resilience(model), tools)`` works.
Any other runnable gets a :class:`ResilientRunnable`. :class:`ResilienceMiddleware` puts the
same policies around each model call of a ``create_agent`` agent, and ``ChatRateLimiter`` is a
langchain-core ``BaseRateLimiter`` on our (optionally shared) limiter.

Example:
    >>> from langchain_core.runnables import RunnableLambda
    >>> from aipowertools.resilience import RateLimiter, RetryPolicy
    >>> from aipowertools.resilience.langchain import with_resilience
    >>> chain = with_resilience(
    ...     RunnableLambda(lambda x: x + 1),
    ...     rate_limiter=RateLimiter(requests_per_second=50),
    ...     retry=RetryPolicy(max_attempts=3, base_delay=0.1),
    ... )
    >>> chain.invoke(1)
    2
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from functools import partial
from typing import Any, cast, overload

from langchain.agents.middleware import AgentMiddleware, AgentState, ModelRequest, ModelResponse
from langchain_core.callbacks import (
    AsyncCallbackManagerForChainRun,
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForChainRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.rate_limiters import BaseRateLimiter
from langchain_core.runnables import Runnable, RunnableBinding, RunnableConfig
from langchain_core.runnables.config import patch_config
from langchain_core.runnables.utils import Input, Output
from pydantic import ConfigDict, Field

from aipowertools.core.errors import ConfigurationError
from aipowertools.resilience._breaker import CircuitBreaker
from aipowertools.resilience._guard import Guard, afirst_started, arelay, first_started, relay
from aipowertools.resilience._limiter import RateLimiter
from aipowertools.resilience._limits import Priority
from aipowertools.resilience._retry import RetryEvent, RetryPolicy

__all__ = [
    "ChatRateLimiter",
    "ResilienceMiddleware",
    "ResilientChatModel",
    "ResilientRunnable",
    "with_resilience",
]

_NO_RETRY = RetryPolicy(max_attempts=1)


class ResilientRunnable(Runnable[Input, Output]):
    """Any Runnable behind a rate limiter, retry policy, circuit breaker, timeout and fallbacks.

    Each call is one traced chain run; attempts and fallbacks are its children, and every
    retry calls the callback handlers' ``on_retry``. Streams retry or fall back only before
    their first chunk (after that, an error is the caller's to see). The limiter, breaker and
    timeout guard the primary runnable; fallbacks get the retry policy and the timeout.

    Example:
        >>> from langchain_core.runnables import RunnableLambda
        >>> ResilientRunnable(RunnableLambda(str.upper)).invoke("hi")
        'HI'
    """

    def __init__(
        self,
        bound: Runnable[Input, Output],
        *,
        rate_limiter: RateLimiter | None = None,
        limiter_key: str = "default",
        priority: Priority = "normal",
        tokens: int | Callable[[Any], int] | None = None,
        retry: RetryPolicy | None = None,
        circuit_breaker: CircuitBreaker | None = None,
        timeout: float | None = None,
        fallbacks: Sequence[Runnable[Input, Output]] = (),
        name: str | None = None,
    ) -> None:
        if not isinstance(bound, Runnable):
            raise ConfigurationError(
                f"with_resilience wraps a LangChain Runnable, got {type(bound).__name__}"
            )
        if timeout is not None and timeout <= 0:
            raise ConfigurationError(f"timeout must be > 0 seconds, got {timeout!r}")
        self.bound = bound
        self.retry = retry or _NO_RETRY
        self.fallbacks = tuple(fallbacks)
        self.guard = Guard(
            rate_limiter=rate_limiter,
            limiter_key=limiter_key,
            priority=priority,
            tokens=tokens,
            circuit_breaker=circuit_breaker,
            timeout=timeout,
        )
        self.name = name or f"Resilient{bound.get_name()}"

    @property
    def InputType(self) -> Any:
        """The wrapped runnable's input type."""
        return self.bound.InputType

    @property
    def OutputType(self) -> Any:
        """The wrapped runnable's output type."""
        return self.bound.OutputType

    def _candidates(self) -> list[tuple[Runnable[Input, Output], bool]]:
        return [(self.bound, True), *((fb, False) for fb in self.fallbacks)]

    def _policy(self, run_manager: CallbackManagerForChainRun) -> RetryPolicy:
        def hook(event: RetryEvent) -> None:
            run_manager.on_retry(event.retry_state)

        return self.retry.add_hook(hook)

    def _apolicy(self, run_manager: AsyncCallbackManagerForChainRun) -> RetryPolicy:
        async def hook(event: RetryEvent) -> None:
            await run_manager.on_retry(event.retry_state)

        return self.retry.add_hook(hook)

    # -- invoke --------------------------------------------------------------------------

    def _invoke(
        self, value: Input, run_manager: CallbackManagerForChainRun, config: RunnableConfig
    ) -> Output:
        policy = self._policy(run_manager)
        first: BaseException | None = None
        for i, (runnable, guarded) in enumerate(self._candidates()):
            child = patch_config(config, callbacks=run_manager.get_child(f"attempt:{i}"))

            def once(r: Runnable[Input, Output] = runnable, c: RunnableConfig = child) -> Output:
                return r.invoke(value, c)

            try:
                return cast(
                    "Output",
                    policy.retrying()(self.guard.run, once, value, guarded=guarded),
                )
            except Exception as exc:
                first = first or exc
        assert first is not None
        raise first

    def invoke(self, input: Input, config: RunnableConfig | None = None, **kwargs: Any) -> Output:
        """Invoke under the policies (a traced chain run)."""
        return self._call_with_config(self._invoke, input, config, **kwargs)

    async def _ainvoke(
        self,
        value: Input,
        run_manager: AsyncCallbackManagerForChainRun,
        config: RunnableConfig,
    ) -> Output:
        policy = self._apolicy(run_manager)
        first: BaseException | None = None
        for i, (runnable, guarded) in enumerate(self._candidates()):
            child = patch_config(config, callbacks=run_manager.get_child(f"attempt:{i}"))

            async def once(
                r: Runnable[Input, Output] = runnable, c: RunnableConfig = child
            ) -> Output:
                return await r.ainvoke(value, c)

            try:
                return cast(
                    "Output",
                    await policy.aretrying()(self.guard.arun, once, value, guarded=guarded),
                )
            except Exception as exc:
                first = first or exc
        assert first is not None
        raise first

    async def ainvoke(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Output:
        """Async invoke under the policies (a traced chain run)."""
        return await self._acall_with_config(self._ainvoke, input, config, **kwargs)

    # -- stream --------------------------------------------------------------------------

    def _start_stream(
        self,
        runnable: Runnable[Input, Output],
        guarded: bool,
        value: Input,
        config: RunnableConfig,
    ) -> tuple[Output, Iterator[Output], Any, Any]:
        reservation, handle = self.guard.enter_stream(value) if guarded else (None, None)
        try:
            iterator = iter(runnable.stream(value, config))
            first = next(iterator)
        except BaseException as exc:
            self.guard.failed(exc, handle, reservation)
            raise
        return first, iterator, reservation, handle

    def _transform(
        self,
        inputs: Iterator[Input],
        run_manager: CallbackManagerForChainRun,
        config: RunnableConfig,
    ) -> Iterator[Output]:
        value = _single(inputs)
        policy = self._policy(run_manager)
        started = first_started(
            partial(
                policy.retrying(),
                self._start_stream,
                runnable,
                guarded,
                value,
                patch_config(config, callbacks=run_manager.get_child(f"attempt:{i}")),
            )
            for i, (runnable, guarded) in enumerate(self._candidates())
        )
        if started is not None:
            yield from relay(self.guard, started)

    def stream(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> Iterator[Output]:
        """Stream under the policies; retries and fallbacks happen before the first chunk."""
        yield from self._transform_stream_with_config(
            iter([input]), self._transform, config, **kwargs
        )

    async def _astart_stream(
        self,
        runnable: Runnable[Input, Output],
        guarded: bool,
        value: Input,
        config: RunnableConfig,
    ) -> tuple[Output, AsyncIterator[Output], Any, Any]:
        reservation, handle = await self.guard.aenter_stream(value) if guarded else (None, None)
        try:
            iterator = aiter(runnable.astream(value, config))
            first = await anext(iterator)
        except BaseException as exc:
            self.guard.failed(exc, handle, reservation)
            raise
        return first, iterator, reservation, handle

    async def _atransform(
        self,
        inputs: AsyncIterator[Input],
        run_manager: AsyncCallbackManagerForChainRun,
        config: RunnableConfig,
    ) -> AsyncIterator[Output]:
        value = None
        async for item in inputs:
            value = item
        policy = self._apolicy(run_manager)
        started = await afirst_started(
            partial(
                policy.aretrying(),
                self._astart_stream,
                runnable,
                guarded,
                cast("Input", value),
                patch_config(config, callbacks=run_manager.get_child(f"attempt:{i}")),
            )
            for i, (runnable, guarded) in enumerate(self._candidates())
        )
        if started is not None:
            async for chunk in arelay(self.guard, started):
                yield chunk

    async def astream(
        self, input: Input, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> AsyncIterator[Output]:
        """Async stream; retries and fallbacks happen before the first chunk."""

        async def one() -> AsyncIterator[Input]:
            yield input

        async for chunk in self._atransform_stream_with_config(
            one(), self._atransform, config, **kwargs
        ):
            yield chunk


def _single(inputs: Iterator[Any]) -> Any:
    items = list(inputs)
    if len(items) != 1:  # pragma: no cover - stream() always passes exactly one input
        raise ConfigurationError("ResilientRunnable streams one input at a time")
    return items[0]


_TOOLS_KEY = "_resilient_tools"
"""Call keyword under which :meth:`ResilientChatModel.bind_tools` keeps the tools it was given,
so that each candidate model formats them its own way."""
_LS_KEYS = ("ls_structured_output_format", "structured_output_format")


class ResilientChatModel(BaseChatModel):
    """A chat model behind a rate limiter, retry policy, circuit breaker, timeout and fallbacks.

    Unlike :class:`ResilientRunnable` it *is* a ``BaseChatModel``, so everything a chat model
    offers keeps working through it, under the same policies: ``bind_tools`` (each candidate
    formats the tools its own way), ``with_structured_output`` (each candidate's own method,
    e.g. OpenAI's ``json_schema``), ``with_config``, ``invoke`` / ``batch`` / ``stream`` and
    their async forms, ``usage_metadata`` and callbacks (one chat-model run per call; every
    retry calls the handlers' ``on_retry``). ``create_agent(with_resilience(model), tools)``
    therefore runs the agent's tool loop with each model call limited, retried and guarded by
    the breaker.

    The limiter, breaker and wrapped model's own ``rate_limiter`` guard the primary model;
    fallbacks get the retry policy and the timeout. Streams retry or fall back only before
    their first chunk. Token reservations are corrected with each answer's
    ``usage_metadata``.

    Example:
        >>> from langchain_core.language_models import GenericFakeChatModel
        >>> from langchain_core.messages import AIMessage
        >>> model = GenericFakeChatModel(messages=iter([AIMessage("hi")]))
        >>> ResilientChatModel(model, retry=RetryPolicy(max_attempts=3)).invoke("hello").content
        'hi'
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, protected_namespaces=())

    wrapped: BaseChatModel = Field(exclude=True)
    """The primary chat model."""
    fallbacks: list[BaseChatModel] = Field(default_factory=list, exclude=True)
    """Chat models tried in order when the primary finally fails."""
    retry: RetryPolicy = Field(default=_NO_RETRY, exclude=True)
    guard: Guard = Field(exclude=True)
    model_name: str = ""
    """The wrapped model's name (``model_name`` / ``model``), for callbacks and agents."""

    def __init__(
        self,
        wrapped: BaseChatModel,
        *,
        rate_limiter: RateLimiter | None = None,
        limiter_key: str = "default",
        priority: Priority = "normal",
        tokens: int | Callable[[Any], int] | None = None,
        retry: RetryPolicy | None = None,
        circuit_breaker: CircuitBreaker | None = None,
        timeout: float | None = None,
        fallbacks: Sequence[BaseChatModel] = (),
        **kwargs: Any,
    ) -> None:
        if not isinstance(wrapped, BaseChatModel):
            raise ConfigurationError(
                f"ResilientChatModel wraps a LangChain chat model, got {type(wrapped).__name__}"
            )
        bad = [type(f).__name__ for f in fallbacks if not isinstance(f, BaseChatModel)]
        if bad:
            raise ConfigurationError(
                f"fallbacks of a ResilientChatModel are chat models, got {', '.join(bad)}; "
                "use ResilientRunnable for other runnables"
            )
        if timeout is not None and timeout <= 0:
            raise ConfigurationError(f"timeout must be > 0 seconds, got {timeout!r}")
        name = getattr(wrapped, "model_name", None) or getattr(wrapped, "model", None)
        for key in ("callbacks", "tags", "metadata", "profile"):
            if kwargs.get(key) is None and getattr(wrapped, key, None) is not None:
                kwargs[key] = getattr(wrapped, key)
        fields: dict[str, Any] = dict(
            wrapped=wrapped,
            fallbacks=list(fallbacks),
            retry=retry or _NO_RETRY,
            guard=Guard(
                rate_limiter=rate_limiter,
                limiter_key=limiter_key,
                priority=priority,
                tokens=tokens,
                circuit_breaker=circuit_breaker,
                timeout=timeout,
            ),
            model_name=name if isinstance(name, str) else "",
            **kwargs,
        )
        super().__init__(**fields)

    # -- what callbacks and agents see: the wrapped model -------------------------------

    @property
    def _llm_type(self) -> str:
        return self.wrapped._llm_type

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return dict(self.wrapped._identifying_params)

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        kwargs.pop(_TOOLS_KEY, None)
        return self.wrapped._get_ls_params(stop=stop, **kwargs)

    def _should_stream(self, *, async_api: bool, **kwargs: Any) -> bool:
        return self.wrapped._should_stream(async_api=async_api, **kwargs)

    # -- abilities kept -----------------------------------------------------------------

    def bind_tools(
        self,
        tools: Sequence[Any],
        *,
        tool_choice: Any = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools: each candidate model formats them with its own ``bind_tools``.

        Args:
            tools: Tools in any form the wrapped model's ``bind_tools`` accepts.
            tool_choice: Passed to each model's ``bind_tools``.
            **kwargs: Other ``bind_tools`` arguments (``strict``, ``response_format``, ...).

        Returns:
            This model with the tools bound (a ``RunnableBinding``).
        """
        options = dict(kwargs)
        if tool_choice is not None:
            options["tool_choice"] = tool_choice
        for model in self._models():
            _call_kwargs(model, (tuple(tools), options))  # fail now, not at the first call
        return self.bind(**{_TOOLS_KEY: (tuple(tools), options)})

    def with_structured_output(
        self,
        schema: Any,
        *,
        include_raw: bool = False,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, Any]:
        """Structured output the wrapped model's own way, under this model's policies.

        Each candidate builds its structured-output runnable with its own
        ``with_structured_output`` (so ``method="json_schema"`` sends a ``response_format``
        where the provider supports it); the result is a :class:`ResilientRunnable` with this
        model's limiter, breaker, retry policy and timeout.

        Args:
            schema: A Pydantic class, TypedDict, JSON schema or OpenAI tool schema.
            include_raw: Return ``{"raw", "parsed", "parsing_error"}`` instead.
            **kwargs: ``method``, ``strict``, ... as the wrapped model takes them.

        Returns:
            A runnable that returns the parsed output.
        """
        primary, *others = (
            m.with_structured_output(schema, include_raw=include_raw, **kwargs)
            for m in self._models()
        )
        runnable = ResilientRunnable(
            primary, retry=self.retry, fallbacks=others, name=f"Resilient{self.get_name()}"
        )
        runnable.guard = self.guard
        return runnable

    # -- calls --------------------------------------------------------------------------

    def _models(self) -> list[BaseChatModel]:
        return [self.wrapped, *self.fallbacks]

    def _candidates(self) -> list[tuple[BaseChatModel, bool]]:
        return [(self.wrapped, True), *((fb, False) for fb in self.fallbacks)]

    def _policy(self, run_manager: CallbackManagerForLLMRun | None) -> RetryPolicy:
        if run_manager is None:
            return self.retry

        def hook(event: RetryEvent) -> None:
            run_manager.on_retry(event.retry_state)

        return self.retry.add_hook(hook)

    def _apolicy(self, run_manager: AsyncCallbackManagerForLLMRun | None) -> RetryPolicy:
        if run_manager is None:
            return self.retry

        async def hook(event: RetryEvent) -> None:
            await run_manager.on_retry(event.retry_state)

        return self.retry.add_hook(hook)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        policy = self._policy(run_manager)
        first: BaseException | None = None
        for model, guarded in self._candidates():
            call = _call_kwargs(model, kwargs)

            def once(m: BaseChatModel = model, kw: dict[str, Any] = call) -> ChatResult:
                if m.rate_limiter is not None:
                    m.rate_limiter.acquire(blocking=True)
                return m._generate(messages, stop=stop, run_manager=run_manager, **kw)

            try:
                return cast(
                    "ChatResult", policy.retrying()(self.guard.run, once, messages, guarded=guarded)
                )
            except Exception as exc:
                first = first or exc
        assert first is not None
        raise first

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        policy = self._apolicy(run_manager)
        first: BaseException | None = None
        for model, guarded in self._candidates():
            call = _call_kwargs(model, kwargs)

            async def once(m: BaseChatModel = model, kw: dict[str, Any] = call) -> ChatResult:
                if m.rate_limiter is not None:
                    await m.rate_limiter.aacquire(blocking=True)
                return await m._agenerate(messages, stop=stop, run_manager=run_manager, **kw)

            try:
                return cast(
                    "ChatResult",
                    await policy.aretrying()(self.guard.arun, once, messages, guarded=guarded),
                )
            except Exception as exc:
                first = first or exc
        assert first is not None
        raise first

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        def start(model: BaseChatModel, guarded: bool) -> Any:
            reservation, handle = self.guard.enter_stream(messages) if guarded else (None, None)
            try:
                if model.rate_limiter is not None:
                    model.rate_limiter.acquire(blocking=True)
                kw = _call_kwargs(model, kwargs)
                if type(model)._stream is BaseChatModel._stream:
                    result = model._generate(messages, stop=stop, run_manager=run_manager, **kw)
                    iterator: Iterator[ChatGenerationChunk] = iter([_as_chunk(result)])
                else:
                    iterator = iter(
                        model._stream(messages, stop=stop, run_manager=run_manager, **kw)
                    )
                first = next(iterator)
            except BaseException as exc:
                self.guard.failed(exc, handle, reservation)
                raise
            return first, iterator, reservation, handle

        policy = self._policy(run_manager)
        started = first_started(
            partial(policy.retrying(), start, model, guarded)
            for model, guarded in self._candidates()
        )
        if started is not None:
            yield from relay(self.guard, started)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        async def start(model: BaseChatModel, guarded: bool) -> Any:
            pair = await self.guard.aenter_stream(messages) if guarded else (None, None)
            reservation, handle = pair
            try:
                if model.rate_limiter is not None:
                    await model.rate_limiter.aacquire(blocking=True)
                kw = _call_kwargs(model, kwargs)
                if (
                    type(model)._astream is BaseChatModel._astream
                    and type(model)._stream is BaseChatModel._stream
                ):
                    result = await model._agenerate(
                        messages, stop=stop, run_manager=run_manager, **kw
                    )
                    iterator: AsyncIterator[ChatGenerationChunk] = _aiter_one(_as_chunk(result))
                else:
                    iterator = aiter(
                        model._astream(messages, stop=stop, run_manager=run_manager, **kw)
                    )
                first = await anext(iterator)
            except BaseException as exc:
                self.guard.failed(exc, handle, reservation)
                raise
            return first, iterator, reservation, handle

        policy = self._apolicy(run_manager)
        started = await afirst_started(
            partial(policy.aretrying(), start, model, guarded)
            for model, guarded in self._candidates()
        )
        if started is not None:
            async for chunk in arelay(self.guard, started):
                yield chunk


def _call_kwargs(model: BaseChatModel, kwargs: Any) -> dict[str, Any]:
    """The call keywords for ``model``: tools bound by ``bind_tools`` formatted its own way."""
    if isinstance(kwargs, tuple):  # (tools, options) straight from bind_tools
        kwargs = {_TOOLS_KEY: kwargs}
    call = dict(kwargs)
    bound = call.pop(_TOOLS_KEY, None)
    if bound is None:
        return call
    tools, options = bound
    binding = model.bind_tools(list(tools), **options)
    if not isinstance(binding, RunnableBinding) or binding.bound is not model:
        raise ConfigurationError(
            f"{type(model).__name__}.bind_tools returned {type(binding).__name__}, not a "
            "binding of the model itself; ResilientChatModel cannot call it with tools"
        )
    extra = {k: v for k, v in binding.kwargs.items() if k not in _LS_KEYS}
    return {**extra, **call}


def _as_chunk(result: ChatResult) -> ChatGenerationChunk:
    """A whole answer as one stream chunk (for models that do not stream)."""
    generation = result.generations[0]
    message = generation.message
    assert isinstance(message, AIMessage)
    return ChatGenerationChunk(
        message=AIMessageChunk(
            content=message.content,
            additional_kwargs=message.additional_kwargs,
            response_metadata=message.response_metadata,
            usage_metadata=message.usage_metadata,
            id=message.id,
            tool_call_chunks=[
                {
                    "name": c["name"],
                    "args": json.dumps(c["args"]),
                    "id": c["id"],
                    "index": i,
                    "type": "tool_call_chunk",
                }
                for i, c in enumerate(message.tool_calls)
            ],
        ),
        generation_info=generation.generation_info,
    )


async def _aiter_one(chunk: ChatGenerationChunk) -> AsyncIterator[ChatGenerationChunk]:
    yield chunk


@overload
def with_resilience(  # type: ignore[overload-overlap]
    runnable: BaseChatModel,
    *,
    rate_limiter: RateLimiter | None = ...,
    limiter_key: str = ...,
    priority: Priority = ...,
    tokens: int | Callable[[Any], int] | None = ...,
    retry: RetryPolicy | None = ...,
    circuit_breaker: CircuitBreaker | None = ...,
    timeout: float | None = ...,
    fallbacks: Sequence[BaseChatModel] = ...,
) -> ResilientChatModel: ...


@overload
def with_resilience(
    runnable: Runnable[Input, Output],
    *,
    rate_limiter: RateLimiter | None = ...,
    limiter_key: str = ...,
    priority: Priority = ...,
    tokens: int | Callable[[Any], int] | None = ...,
    retry: RetryPolicy | None = ...,
    circuit_breaker: CircuitBreaker | None = ...,
    timeout: float | None = ...,
    fallbacks: Sequence[Runnable[Input, Output]] = ...,
) -> ResilientRunnable[Input, Output]: ...


def with_resilience(
    runnable: Any,
    *,
    rate_limiter: RateLimiter | None = None,
    limiter_key: str = "default",
    priority: Priority = "normal",
    tokens: int | Callable[[Any], int] | None = None,
    retry: RetryPolicy | None = None,
    circuit_breaker: CircuitBreaker | None = None,
    timeout: float | None = None,
    fallbacks: Sequence[Any] = (),
) -> Any:
    """Wrap a chat model in a :class:`ResilientChatModel`, anything else in a ResilientRunnable.

    A chat model (with chat-model fallbacks, if any) stays a chat model: ``bind_tools``,
    ``with_structured_output``, streaming and async keep working, so the result can be given
    to ``create_agent``.

    Args:
        runnable: Any LangChain Runnable (a chat model, a chain, ...).
        rate_limiter: Acquire from this limiter before each attempt.
        limiter_key: Limiter key (e.g. ``"openai/gpt-4o"``).
        priority: Priority of these calls in the limiter queue.
        tokens: Estimated tokens per call, or a callable ``input -> tokens`` (default: a
            rough 4-characters-per-token estimate); corrected with ``usage_metadata``.
        retry: A :class:`RetryPolicy` (default: one attempt).
        circuit_breaker: Refuse calls fast while the dependency is failing.
        timeout: Seconds per attempt (``ProviderTimeoutError`` after).
        fallbacks: Runnables tried in order when the primary finally fails.

    Returns:
        The wrapped runnable.
    """
    options: dict[str, Any] = {
        "rate_limiter": rate_limiter,
        "limiter_key": limiter_key,
        "priority": priority,
        "tokens": tokens,
        "retry": retry,
        "circuit_breaker": circuit_breaker,
        "timeout": timeout,
        "fallbacks": fallbacks,
    }
    if isinstance(runnable, BaseChatModel) and all(isinstance(f, BaseChatModel) for f in fallbacks):
        return ResilientChatModel(runnable, **options)
    return ResilientRunnable(runnable, **options)


class ChatRateLimiter(BaseRateLimiter):
    """langchain-core ``BaseRateLimiter`` backed by our (optionally shared) limiter.

    Use as ``ChatOpenAI(rate_limiter=ChatRateLimiter(...))``. LangChain asks for one request
    at a time without a token count, so each call reserves ``tokens_per_request``.

    Example:
        >>> limiter = ChatRateLimiter(requests_per_minute=500, key="openai/gpt-4o")
        >>> limiter.acquire()
        True
    """

    def __init__(
        self,
        limiter: RateLimiter | None = None,
        *,
        key: str = "default",
        priority: Priority = "normal",
        tokens_per_request: int = 0,
        store: str | None = None,
        **limits: Any,
    ) -> None:
        if limiter is not None and limits:
            raise ConfigurationError("give either limiter= or limit keywords, not both")
        self.limiter = limiter if limiter is not None else RateLimiter(store=store, **limits)
        self.key = key
        self.priority = priority
        self.tokens_per_request = tokens_per_request

    def acquire(self, *, blocking: bool = True) -> bool:
        """Take capacity for one request; wait for it unless ``blocking`` is False."""
        if not blocking:
            return self.limiter.try_acquire(self.key, tokens=self.tokens_per_request) is not None
        self.limiter.acquire_sync(self.key, tokens=self.tokens_per_request, priority=self.priority)
        return True

    async def aacquire(self, *, blocking: bool = True) -> bool:
        """Async form of :meth:`acquire`."""
        if not blocking:
            found = await self.limiter.atry_acquire(self.key, tokens=self.tokens_per_request)
            return found is not None
        await self.limiter.acquire(self.key, tokens=self.tokens_per_request, priority=self.priority)
        return True


class ResilienceMiddleware(AgentMiddleware[AgentState[Any], Any]):
    """``create_agent`` middleware: limiter, breaker, retry and timeout around each model call.

    Each model call of the agent takes its tokens from the (optionally shared, e.g.
    ``RateLimiter(store="redis://...")``) limiter first, is refused fast while the breaker is
    open, is retried by the policy (honouring ``Retry-After``), and has its token reservation
    corrected with the answer's ``usage_metadata``. Sync and async agents alike.

    Args:
        rate_limiter: Acquire from this limiter before each model call.
        limiter_key: Limiter key; by default the model's name (``model_name`` / ``model``),
            so agents sharing a limiter share each model's limits.
        priority: Priority of these calls in the limiter queue.
        tokens: Estimated tokens per call or a callable ``messages -> tokens`` (default: a
            rough 4-characters-per-token estimate of the messages).
        retry: A :class:`RetryPolicy` (default: one attempt).
        circuit_breaker: Refuse model calls fast while the provider is failing.
        timeout: Seconds per attempt (``ProviderTimeoutError`` after).

    Example:
        >>> from langchain.agents import create_agent
        >>> middleware = ResilienceMiddleware(
        ...     rate_limiter=RateLimiter(tokens_per_minute=90_000),
        ...     retry=RetryPolicy(max_attempts=4),
        ...     circuit_breaker=CircuitBreaker("openai"),
        ... )
        >>> agent = create_agent(model, tools, middleware=[middleware])  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        rate_limiter: RateLimiter | None = None,
        limiter_key: str | None = None,
        priority: Priority = "normal",
        tokens: int | Callable[[Any], int] | None = None,
        retry: RetryPolicy | None = None,
        circuit_breaker: CircuitBreaker | None = None,
        timeout: float | None = None,
    ) -> None:
        super().__init__()
        if timeout is not None and timeout <= 0:
            raise ConfigurationError(f"timeout must be > 0 seconds, got {timeout!r}")
        self.retry = retry or _NO_RETRY
        self.limiter_key = limiter_key
        self.guard = Guard(
            rate_limiter=rate_limiter,
            priority=priority,
            tokens=tokens,
            circuit_breaker=circuit_breaker,
            timeout=timeout,
        )

    def _guard(self, request: ModelRequest[Any]) -> Guard:
        key = self.limiter_key or model_key(request.model)
        return dataclasses.replace(self.guard, limiter_key=key)

    def wrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], ModelResponse[Any]],
    ) -> ModelResponse[Any]:
        """Run the model call under the limiter, breaker, retry policy and timeout."""
        guard = self._guard(request)
        return cast(
            "ModelResponse[Any]",
            self.retry.retrying()(guard.run, lambda: handler(request), request.messages),
        )

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelResponse[Any]:
        """Async form of :meth:`wrap_model_call`."""
        guard = self._guard(request)
        return cast(
            "ModelResponse[Any]",
            await self.retry.aretrying()(guard.arun, lambda: handler(request), request.messages),
        )


def model_key(model: Any) -> str:
    """A chat model's name (``model_name``, ``model`` or its class name), for limiter keys."""
    for attr in ("model_name", "model"):
        name = getattr(model, attr, None)
        if isinstance(name, str) and name:
            return name
    return type(model).__name__

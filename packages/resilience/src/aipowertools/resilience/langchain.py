"""LangChain adapters: ``with_resilience`` / ``ResilientRunnable`` and ``ChatRateLimiter``.

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

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from functools import partial
from typing import Any, cast

from langchain_core.callbacks import (
    AsyncCallbackManagerForChainRun,
    CallbackManagerForChainRun,
)
from langchain_core.rate_limiters import BaseRateLimiter
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import patch_config
from langchain_core.runnables.utils import Input, Output

from aipowertools.core.errors import ConfigurationError
from aipowertools.resilience._breaker import CircuitBreaker
from aipowertools.resilience._guard import Guard, afirst_started, arelay, first_started, relay
from aipowertools.resilience._limiter import RateLimiter
from aipowertools.resilience._limits import Priority
from aipowertools.resilience._retry import RetryEvent, RetryPolicy

__all__ = ["ChatRateLimiter", "ResilientRunnable", "with_resilience"]

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


def with_resilience(
    runnable: Runnable[Input, Output],
    *,
    rate_limiter: RateLimiter | None = None,
    limiter_key: str = "default",
    priority: Priority = "normal",
    tokens: int | Callable[[Any], int] | None = None,
    retry: RetryPolicy | None = None,
    circuit_breaker: CircuitBreaker | None = None,
    timeout: float | None = None,
    fallbacks: Sequence[Runnable[Input, Output]] = (),
) -> ResilientRunnable[Input, Output]:
    """Wrap ``runnable`` in a :class:`ResilientRunnable` (see there for the arguments).

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
    return ResilientRunnable(
        runnable,
        rate_limiter=rate_limiter,
        limiter_key=limiter_key,
        priority=priority,
        tokens=tokens,
        retry=retry,
        circuit_breaker=circuit_breaker,
        timeout=timeout,
        fallbacks=fallbacks,
    )


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

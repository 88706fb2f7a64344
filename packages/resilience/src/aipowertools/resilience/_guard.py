"""One guarded attempt (limiter -> breaker -> call -> usage correction), shared by adapters."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from aipowertools.core.errors import ErrorKind, ProviderTimeoutError, classify
from aipowertools.resilience._breaker import CircuitBreaker
from aipowertools.resilience._limiter import RateLimiter, Reservation
from aipowertools.resilience._limits import Priority

T = TypeVar("T")


def usage_tokens(output: Any) -> int | None:
    """Total tokens reported by a LangChain message / LlamaIndex response, if any."""
    output = getattr(output, "model_response", output)  # an agent's ExtendedModelResponse
    result = getattr(output, "result", None)
    if isinstance(result, list):  # an agent's ModelResponse: the messages of one model call
        output = next((m for m in reversed(result) if getattr(m, "usage_metadata", None)), None)
    generations = getattr(output, "generations", None)
    if isinstance(generations, list) and generations:  # a LangChain ChatResult
        output = generations[0]
    # a LangChain (chunk) generation carries a message with usage_metadata
    usage = getattr(getattr(output, "message", None), "usage_metadata", None)
    if not isinstance(usage, dict):
        usage = getattr(output, "usage_metadata", None)
    if isinstance(usage, dict) and "total_tokens" in usage:
        return int(usage["total_tokens"])
    raw = getattr(output, "raw", None)
    usage = raw.get("usage") if isinstance(raw, dict) else getattr(raw, "usage", None)
    if usage is not None:
        total = usage.get("total_tokens") if isinstance(usage, dict) else None
        total = total if total is not None else getattr(usage, "total_tokens", None)
        if isinstance(total, int):
            return total
    return None


def estimate_tokens(value: Any) -> int:
    """Rough token estimate of an input (4 characters per token) when none is given."""
    return max(1, len(str(value)) // 4)


@dataclass
class Guard:
    """The policies applied around each attempt of the primary call."""

    rate_limiter: RateLimiter | None = None
    limiter_key: str = "default"
    priority: Priority = "normal"
    tokens: int | Callable[[Any], int] | None = None
    circuit_breaker: CircuitBreaker | None = None
    timeout: float | None = None

    def _tokens(self, value: Any) -> int:
        if self.tokens is None:
            return estimate_tokens(value)
        return self.tokens(value) if callable(self.tokens) else self.tokens

    def _timeout_error(self) -> ProviderTimeoutError:
        return ProviderTimeoutError(f"the call did not finish within {self.timeout:g} s")

    def run(self, fn: Callable[[], T], value: Any, *, guarded: bool = True) -> T:
        """Run one attempt of ``fn`` (blocking)."""
        limiter = self.rate_limiter if guarded else None
        breaker = self.circuit_breaker if guarded else None
        reservation = (
            limiter.acquire_sync(
                self.limiter_key, tokens=self._tokens(value), priority=self.priority
            )
            if limiter
            else None
        )
        try:
            handle = breaker.enter() if breaker else None
        except BaseException:
            if reservation is not None:
                reservation.release()  # never sent
            raise
        try:
            if self.timeout is None:
                out = fn()
            else:
                pool = concurrent.futures.ThreadPoolExecutor(1)
                try:
                    # the callee sees our context variables (tracing, LangChain's run context)
                    ctx = contextvars.copy_context()
                    out = pool.submit(ctx.run, fn).result(timeout=self.timeout)
                except concurrent.futures.TimeoutError:
                    raise self._timeout_error() from None
                finally:
                    pool.shutdown(wait=False)
        except BaseException as exc:
            if handle:
                handle.finish(exc)
            if reservation is not None:
                reservation.settle()
            if limiter and isinstance(exc, Exception) and classify(exc) is ErrorKind.RATE_LIMITED:
                limiter.observe(self.limiter_key, exc=exc)
            raise
        if handle:
            handle.finish(None)
        if reservation is not None:
            reservation.settle(usage_tokens(out))
        return out

    async def arun(self, fn: Callable[[], Awaitable[T]], value: Any, *, guarded: bool = True) -> T:
        """Run one attempt of ``fn``."""
        limiter = self.rate_limiter if guarded else None
        breaker = self.circuit_breaker if guarded else None
        reservation = (
            await limiter.acquire(
                self.limiter_key, tokens=self._tokens(value), priority=self.priority
            )
            if limiter
            else None
        )
        try:
            handle = await breaker.aenter() if breaker else None
        except BaseException:
            if reservation is not None:
                await reservation.arelease()  # never sent
            raise
        try:
            if self.timeout is None:
                out = await fn()
            else:
                try:
                    out = await asyncio.wait_for(fn(), self.timeout)
                except asyncio.TimeoutError:
                    raise self._timeout_error() from None
        except BaseException as exc:
            if handle and breaker:
                await breaker._afinish(handle, exc)
            if reservation is not None:
                await reservation.asettle()
            if limiter and isinstance(exc, Exception) and classify(exc) is ErrorKind.RATE_LIMITED:
                await limiter.aobserve(self.limiter_key, exc=exc)
            raise
        if handle and breaker:
            await breaker._afinish(handle, None)
        if reservation is not None:
            await reservation.asettle(usage_tokens(out))
        return out

    def enter_stream(self, value: Any) -> Any:
        """Acquire and enter the breaker for a stream; returns (reservation, handle)."""
        reservation = (
            self.rate_limiter.acquire_sync(
                self.limiter_key, tokens=self._tokens(value), priority=self.priority
            )
            if self.rate_limiter
            else None
        )
        try:
            handle = self.circuit_breaker.enter() if self.circuit_breaker else None
        except BaseException:
            if reservation is not None:
                reservation.release()
            raise
        return reservation, handle

    async def aenter_stream(self, value: Any) -> Any:
        """Async form of :meth:`enter_stream`."""
        reservation = (
            await self.rate_limiter.acquire(
                self.limiter_key, tokens=self._tokens(value), priority=self.priority
            )
            if self.rate_limiter
            else None
        )
        try:
            handle = await self.circuit_breaker.aenter() if self.circuit_breaker else None
        except BaseException:
            if reservation is not None:
                await reservation.arelease()
            raise
        return reservation, handle

    def failed(self, exc: BaseException, handle: Any, reservation: Any) -> None:
        """Report a failed attempt to the breaker, the reservation and the adaptive limiter."""
        if handle is not None:
            handle.finish(exc)
        if reservation is not None:
            reservation.settle()
        if (
            self.rate_limiter
            and isinstance(exc, Exception)
            and classify(exc) is ErrorKind.RATE_LIMITED
        ):
            self.rate_limiter.observe(self.limiter_key, exc=exc)


Started = tuple[Any, Any, "Reservation | None", Any]
"""A stream that yielded its first chunk: (first, iterator, reservation, breaker handle)."""


def first_started(attempts: Iterable[Callable[[], Started]]) -> Started | None:
    """Start the candidates in order until one yields a first chunk.

    Returns ``None`` when a candidate's stream is empty; raises the first candidate's error
    when none starts.
    """
    first_error: Exception | None = None
    for attempt in attempts:
        try:
            return attempt()
        except StopIteration:
            return None
        except Exception as exc:
            first_error = first_error or exc
    assert first_error is not None  # there is always a primary candidate
    raise first_error


async def afirst_started(attempts: Iterable[Callable[[], Awaitable[Started]]]) -> Started | None:
    """Async form of :func:`first_started`."""
    first_error: Exception | None = None
    for attempt in attempts:
        try:
            return await attempt()
        except StopAsyncIteration:
            return None
        except Exception as exc:
            first_error = first_error or exc
    assert first_error is not None  # there is always a primary candidate
    raise first_error


def relay(guard: Guard, started: Started) -> Iterator[Any]:
    """Yield a started stream; report its end (or failure) to the breaker and the limiter."""
    first, iterator, reservation, handle = started
    last: Any = first
    yield first
    try:
        for chunk in iterator:
            last = chunk
            yield chunk
    except BaseException as exc:
        guard.failed(exc, handle, reservation)
        raise
    if handle is not None:
        handle.finish(None)
    if reservation is not None:
        reservation.settle(usage_tokens(last))


async def arelay(guard: Guard, started: Started) -> AsyncIterator[Any]:
    """Async form of :func:`relay`."""
    first, iterator, reservation, handle = started
    last: Any = first
    yield first
    try:
        async for chunk in iterator:
            last = chunk
            yield chunk
    except BaseException as exc:
        guard.failed(exc, handle, reservation)
        raise
    if handle is not None:
        handle.finish(None)
    if reservation is not None:
        await reservation.asettle(usage_tokens(last))

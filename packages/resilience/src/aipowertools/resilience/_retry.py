"""``@retry``: tenacity underneath, the core error taxonomy deciding what is worth retrying."""

from __future__ import annotations

import functools
import inspect
import logging
import math
import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast, overload

import tenacity

from aipowertools.core.errors import ConfigurationError, ErrorKind, classify, retry_after_seconds

logger = logging.getLogger("aipowertools.resilience.retry")

F = TypeVar("F", bound=Callable[..., Any])


def decorate(fn: F, call: Callable[..., Any], acall: Callable[..., Awaitable[Any]]) -> F:
    """Wrap a sync or async ``fn`` so every call goes through ``call(fn, ...)`` (or ``acall``)."""
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            return await acall(fn, *args, **kwargs)

        return cast("F", async_wrapper)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return call(fn, *args, **kwargs)

    return cast("F", wrapper)


StrategyName = Literal["exponential_backoff", "exponential", "fibonacci", "constant", "linear"]
JitterName = Literal["full", "equal", "decorrelated", "none"]
RetryOn = (
    type[BaseException]
    | ErrorKind
    | Iterable[type[BaseException] | ErrorKind]
    | Callable[[BaseException], bool]
)


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


@dataclass(frozen=True)
class RetryEvent:
    """One retry about to happen (given to ``on_retry`` hooks and logged).

    Attributes:
        function: Qualified name of the retried callable.
        attempt: Number of the attempt that just failed (1-based).
        exception: What it raised.
        kind: Its classification.
        sleep: Seconds until the next attempt.
        elapsed: Seconds since the first attempt started.
        retry_state: tenacity's state (LangChain's ``on_retry`` callbacks take it).
    """

    function: str
    attempt: int
    exception: BaseException
    kind: ErrorKind
    sleep: float
    elapsed: float
    retry_state: tenacity.RetryCallState


def _fib(n: int) -> int:
    a, b = 1, 1
    for _ in range(n - 1):
        a, b = b, a + b
    return a


class RetryPolicy:
    """A retry policy: usable as a decorator (sync or async) or through ``call`` / ``acall``.

    Rate-limited errors wait at least their Retry-After; transient errors and timeouts back
    off; permanent, authentication, content-policy and context-window errors are not retried.
    It never sleeps past ``deadline``.

    Example:
        >>> @retry(max_attempts=3, strategy="fibonacci", jitter="full", base_delay=0.01)
        ... def flaky():
        ...     return "ok"
        >>> flaky()
        'ok'
    """

    def __init__(
        self,
        *,
        max_attempts: int = 5,
        strategy: StrategyName | Callable[[int], float] = "exponential_backoff",
        base_delay: float = 1.0,
        max_delay: float = 60.0,
        jitter: bool | JitterName = True,
        deadline: float | None = None,
        retry_on: RetryOn | None = None,
        on_retry: Callable[[RetryEvent], Any] | None = None,
        fallback_value: Any = MISSING,
        fallback: Callable[..., Any] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise ConfigurationError(f"max_attempts must be an int >= 1, got {max_attempts!r}")
        for name, value in (("base_delay", base_delay), ("max_delay", max_delay)):
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ConfigurationError(f"{name} must be a number >= 0, got {value!r}")
        if deadline is not None and not (math.isfinite(deadline) and deadline > 0):
            raise ConfigurationError(f"deadline must be > 0 seconds, got {deadline!r}")
        if not callable(strategy) and strategy not in (
            "exponential_backoff",
            "exponential",
            "fibonacci",
            "constant",
            "linear",
        ):
            raise ConfigurationError(
                f"unknown retry strategy {strategy!r}; use exponential_backoff, fibonacci, "
                "constant, linear or a callable attempt -> seconds"
            )
        if jitter is True:
            jitter = "full"
        elif jitter is False:
            jitter = "none"
        if jitter not in ("full", "equal", "decorrelated", "none"):
            raise ConfigurationError(
                f"unknown jitter {jitter!r}; use True/False, 'full', 'equal' or 'decorrelated'"
            )
        if fallback is not None and fallback_value is not MISSING:
            raise ConfigurationError("give fallback or fallback_value, not both")
        self.max_attempts = max_attempts
        self.strategy = strategy
        self.base_delay = float(base_delay)
        self.max_delay = float(max_delay)
        self.jitter: JitterName = jitter
        self.deadline = deadline
        self.retry_on = retry_on
        self.on_retry = on_retry
        self.fallback_value = fallback_value
        self.fallback = fallback
        self._rng = rng or random.Random()
        self._hooks: list[Callable[[RetryEvent], Any]] = [on_retry] if on_retry else []

    # -- decisions -----------------------------------------------------------------------

    def should_retry(self, exc: BaseException) -> bool:
        """Whether ``exc`` is worth another attempt under this policy."""
        if isinstance(exc, Exception) is False:  # KeyboardInterrupt, CancelledError, ...
            return False
        spec = self.retry_on
        if spec is None:
            return classify(exc).retryable
        if isinstance(spec, ErrorKind):
            return classify(exc) is spec
        if isinstance(spec, type):
            return isinstance(exc, spec)
        if callable(spec):
            return bool(spec(exc))
        kind = classify(exc)
        for item in spec:
            if isinstance(item, ErrorKind):
                if kind is item:
                    return True
            elif isinstance(exc, item):
                return True
        return False

    def backoff(self, attempt: int) -> float:
        """Delay before attempt ``attempt + 1`` without jitter (capped at ``max_delay``)."""
        strategy = self.strategy
        if callable(strategy):
            raw = float(strategy(attempt))
        elif strategy in ("exponential_backoff", "exponential"):
            raw = self.base_delay * 2.0 ** min(attempt - 1, 60)
        elif strategy == "fibonacci":
            raw = self.base_delay * _fib(min(attempt, 90))
        elif strategy == "linear":
            raw = self.base_delay * attempt
        else:
            raw = self.base_delay
        return max(0.0, min(raw, self.max_delay))

    def delay(self, attempt: int, exc: BaseException | None = None, previous: float = 0.0) -> float:
        """Sleep before the next attempt after ``attempt`` failed with ``exc``."""
        base = self.backoff(attempt)
        rng = self._rng
        if self.jitter == "full":
            sleep = rng.uniform(0.0, base)
        elif self.jitter == "equal":
            sleep = base / 2.0 + rng.uniform(0.0, base / 2.0)
        elif self.jitter == "decorrelated":
            low = self.base_delay
            sleep = min(self.max_delay, rng.uniform(low, max(low, previous * 3.0, low)))
        else:
            sleep = base
        if exc is not None and classify(exc) is ErrorKind.RATE_LIMITED:
            after = retry_after_seconds(exc)
            if after is not None:
                # At least Retry-After; a little spread so retries do not arrive together.
                spread = rng.uniform(0.0, min(1.0, 0.1 * after)) if self.jitter != "none" else 0
                sleep = max(sleep, after + spread)
        return sleep

    # -- tenacity wiring -----------------------------------------------------------------

    def _wait(self, rs: tenacity.RetryCallState) -> float:
        exc = rs.outcome.exception() if rs.outcome is not None else None
        return self.delay(rs.attempt_number, exc, rs.upcoming_sleep)

    def _stop(self, rs: tenacity.RetryCallState) -> bool:
        if rs.attempt_number >= self.max_attempts:
            return True
        if self.deadline is not None:
            elapsed = rs.seconds_since_start or 0.0
            if elapsed + rs.upcoming_sleep > self.deadline:
                logger.info(
                    "retry of %s stops: next attempt would start past the %.3g s deadline",
                    rs.get_fn_name(),
                    self.deadline,
                )
                return True
        return False

    def _event(self, rs: tenacity.RetryCallState) -> RetryEvent:
        exc = rs.outcome.exception() if rs.outcome is not None else None
        assert exc is not None
        event = RetryEvent(
            function=rs.get_fn_name(),
            attempt=rs.attempt_number,
            exception=exc,
            kind=classify(exc),
            sleep=rs.upcoming_sleep,
            elapsed=rs.seconds_since_start or 0.0,
            retry_state=rs,
        )
        logger.info(
            "retrying %s in %.3f s after attempt %d failed: %s (%s)",
            event.function,
            event.sleep,
            event.attempt,
            type(exc).__name__,
            event.kind.value,
            extra={
                "event": "retry",
                "function": event.function,
                "attempt": event.attempt,
                "error_kind": event.kind.value,
                "sleep_s": event.sleep,
            },
        )
        return event

    def _before_sleep(self, rs: tenacity.RetryCallState) -> None:
        event = self._event(rs)
        for hook in self._hooks:
            hook(event)

    async def _abefore_sleep(self, rs: tenacity.RetryCallState) -> None:
        event = self._event(rs)
        for hook in self._hooks:
            result = hook(event)
            if inspect.isawaitable(result):
                await result

    def add_hook(self, hook: Callable[[RetryEvent], Any]) -> RetryPolicy:
        """Return a copy of this policy that also calls ``hook`` before each retry."""
        clone = RetryPolicy.__new__(RetryPolicy)
        clone.__dict__.update(self.__dict__)
        clone._hooks = [*self._hooks, hook]
        return clone

    def _kwargs(self) -> dict[str, Any]:
        return {
            "stop": self._stop,
            "wait": self._wait,
            "retry": tenacity.retry_if_exception(self.should_retry),
            "before_sleep": self._before_sleep,
            "reraise": True,
        }

    def retrying(self) -> tenacity.Retrying:
        """A fresh ``tenacity.Retrying`` for this policy (``for attempt in ...:`` loops)."""
        return tenacity.Retrying(**self._kwargs())

    def aretrying(self) -> tenacity.AsyncRetrying:
        """A fresh ``tenacity.AsyncRetrying`` for this policy."""
        kwargs = self._kwargs()
        kwargs["before_sleep"] = self._abefore_sleep
        return tenacity.AsyncRetrying(**kwargs)

    def _fallback(self, exc: BaseException, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self.fallback is not None:
            logger.info("using fallback after %s", type(exc).__name__)
            return self.fallback(*args, **kwargs)
        if self.fallback_value is not MISSING:
            logger.info("using fallback value after %s", type(exc).__name__)
            return self.fallback_value
        raise exc

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``fn`` under this policy (blocking)."""
        try:
            return self.retrying()(fn, *args, **kwargs)
        except Exception as exc:
            return self._fallback(exc, args, kwargs)

    async def acall(self, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        """Await ``fn`` under this policy."""
        try:
            return await self.aretrying()(fn, *args, **kwargs)
        except Exception as exc:
            result = self._fallback(exc, args, kwargs)
            if inspect.isawaitable(result):
                result = await result
            return result

    def __call__(self, fn: F) -> F:
        """Decorate a sync or async function."""
        return decorate(fn, self.call, self.acall)


@overload
def retry(fn: F, /) -> F: ...
@overload
def retry(
    *,
    max_attempts: int = ...,
    strategy: StrategyName | Callable[[int], float] = ...,
    base_delay: float = ...,
    max_delay: float = ...,
    jitter: bool | JitterName = ...,
    deadline: float | None = ...,
    retry_on: RetryOn | None = ...,
    on_retry: Callable[[RetryEvent], Any] | None = ...,
    fallback_value: Any = ...,
    fallback: Callable[..., Any] | None = ...,
    rng: random.Random | None = ...,
) -> RetryPolicy: ...
def retry(fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Retry a sync or async function with backoff, jitter, deadline and fallback.

    Args:
        fn: Used bare as ``@retry``; leave out to pass options (``@retry(max_attempts=3)``).
        **options: See :class:`RetryPolicy`: ``max_attempts`` (5), ``strategy``
            (``"exponential_backoff"``, ``"fibonacci"``, ``"constant"``, ``"linear"`` or a
            callable attempt -> seconds), ``base_delay`` (1 s), ``max_delay`` (60 s),
            ``jitter`` (``True``/``"full"``, ``"equal"``, ``"decorrelated"``, ``False``),
            ``deadline`` (seconds for all attempts and sleeps), ``retry_on`` (exception types,
            ``ErrorKind`` values or a predicate; default: the retryable kinds),
            ``on_retry`` (called with a :class:`RetryEvent`), ``fallback_value``, ``fallback``.

    Returns:
        The decorated function, or a :class:`RetryPolicy` usable as a decorator.

    Example:
        >>> @retry(max_attempts=5, strategy="exponential_backoff", jitter=True)
        ... async def call_llm(prompt: str) -> str:
        ...     return prompt
    """
    policy = RetryPolicy(**options)
    if fn is not None:
        return policy(fn)
    return policy

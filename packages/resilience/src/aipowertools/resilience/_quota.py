"""``@rate_limit`` and ``QuotaManager``: the limiter as a decorator and as a queue with a quota."""

from __future__ import annotations

import calendar
import functools
import inspect
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TypeVar, cast

from aipowertools.core.errors import ConfigurationError, RateLimitExceededError
from aipowertools.resilience._limiter import RateLimiter, Reservation
from aipowertools.resilience._limits import Priority

F = TypeVar("F", bound=Callable[..., Any])
TokenSpec = int | Callable[..., int]


def _tokens(spec: TokenSpec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    return spec(*args, **kwargs) if callable(spec) else spec


def limited(
    limiter: RateLimiter,
    key: str,
    *,
    tokens: TokenSpec = 0,
    priority: Priority = "normal",
    timeout: float | None = None,
) -> Callable[[F], F]:
    """Decorate a sync or async function so each call first acquires from ``limiter``."""

    def decorate(fn: F) -> F:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                await limiter.acquire(
                    key, tokens=_tokens(tokens, args, kwargs), priority=priority, timeout=timeout
                )
                return await fn(*args, **kwargs)

            wrapped = cast("F", async_wrapper)
        else:

            @functools.wraps(fn)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                limiter.acquire_sync(
                    key, tokens=_tokens(tokens, args, kwargs), priority=priority, timeout=timeout
                )
                return fn(*args, **kwargs)

            wrapped = cast("F", wrapper)
        wrapped.limiter = limiter  # type: ignore[attr-defined]
        return wrapped

    return decorate


def rate_limit(
    *,
    key: str | None = None,
    priority: Priority = "normal",
    tokens: TokenSpec = 0,
    timeout: float | None = None,
    limiter: RateLimiter | None = None,
    store: str | None = None,
    **limits: Any,
) -> Callable[[F], F]:
    """Rate-limit a sync or async function.

    Args:
        key: Limiter key (default: the function's qualified name).
        priority: Priority of its calls (``"high"``, ``"normal"``, ``"low"`` or a number).
        tokens: Estimated tokens per call, or a callable computing them from the arguments.
        timeout: Give up waiting after this many seconds (``RateLimitExceededError``).
        limiter: Share an existing :class:`RateLimiter` instead of making one.
        store: Store URL of a new limiter (``memory://`` or ``redis://...``).
        **limits: ``requests_per_minute=60``, ``tokens_per_hour=1_000_000``, ...

    Example:
        >>> @rate_limit(requests_per_minute=60, tokens_per_hour=1_000_000, priority="high")
        ... async def important_task() -> str:
        ...     return "done"
    """
    if limiter is not None and limits:
        raise ConfigurationError("give either limiter= or limit keywords, not both")
    shared = limiter if limiter is not None else RateLimiter(store=store, **limits)

    def decorate(fn: F) -> F:
        return limited(
            shared,
            key or f"{fn.__module__}.{fn.__qualname__}",
            tokens=tokens,
            priority=priority,
            timeout=timeout,
        )(fn)

    return decorate


@dataclass(frozen=True)
class QuotaStats:
    """What ``QuotaManager.get_stats()`` returns.

    Attributes:
        queued_tasks: Requests waiting for capacity.
        estimated_wait_seconds: How long a new request would wait.
        admitted: Requests let through.
        rejected: Requests refused.
        utilisation: Highest fraction of a rate limit in use.
        month: ``"YYYY-MM"`` of the monthly counters (UTC).
        month_tokens: Tokens used this month.
        month_requests: Requests this month.
        monthly_token_quota: The monthly token quota, if any.
        projected_month_tokens: Tokens at month end at the current pace.
        exhaustion_at: When the monthly quota runs out at the current pace (None: it will not).
    """

    queued_tasks: int
    estimated_wait_seconds: float
    admitted: int
    rejected: int
    utilisation: float
    month: str
    month_tokens: int
    month_requests: int
    monthly_token_quota: int | None
    projected_month_tokens: float
    exhaustion_at: datetime | None


class QuotaManager:
    """A rate limiter with a queue, plus a monthly token quota with an exhaustion forecast.

    Example:
        >>> import asyncio
        >>> quota = QuotaManager(tokens_per_minute=90_000, monthly_token_quota=50_000_000)
        >>> _ = asyncio.run(quota.check_and_wait(tokens=5000))
        >>> quota.get_stats().month_tokens
        5000
    """

    def __init__(
        self,
        *,
        key: str = "default",
        limiter: RateLimiter | None = None,
        monthly_token_quota: int | None = None,
        store: str | None = None,
        clock: Callable[[], float] = time.time,
        **limits: Any,
    ) -> None:
        if limiter is not None and limits:
            raise ConfigurationError("give either limiter= or limit keywords, not both")
        if monthly_token_quota is not None and monthly_token_quota <= 0:
            raise ConfigurationError(
                f"monthly_token_quota must be > 0, got {monthly_token_quota!r}"
            )
        self.key = key
        self.limiter = limiter if limiter is not None else RateLimiter(store=store, **limits)
        self.monthly_token_quota = monthly_token_quota
        self._clock = clock
        self._lock = threading.Lock()
        self._month = ""
        self._tokens = 0
        self._requests = 0

    def _roll(self, now: float) -> str:
        month = datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m")
        if month != self._month:
            self._month, self._tokens, self._requests = month, 0, 0
        return month

    def _month_bounds(self, now: float) -> tuple[float, float]:
        d = datetime.fromtimestamp(now, timezone.utc)
        start = datetime(d.year, d.month, 1, tzinfo=timezone.utc)
        days = calendar.monthrange(d.year, d.month)[1]
        return start.timestamp(), start.timestamp() + days * 86400.0

    def _check_quota(self, tokens: int) -> None:
        now = self._clock()
        with self._lock:
            self._roll(now)
            quota = self.monthly_token_quota
            if quota is not None and self._tokens + tokens > quota:
                self.limiter.rejected += 1
                raise RateLimitExceededError(
                    f"{self.key} (monthly quota {quota} tokens)",
                    self._month_bounds(now)[1] - now,
                )

    def record(self, tokens: int, *, requests: int = 1) -> None:
        """Add usage to this month's counters (``check_and_wait`` does it for you)."""
        with self._lock:
            self._roll(self._clock())
            self._tokens += tokens
            self._requests += requests

    async def check_and_wait(
        self, tokens: int = 0, *, priority: Priority = "normal", user: str | None = None
    ) -> Reservation:
        """Wait until the request fits the rate limits and the monthly quota, then reserve.

        Raises:
            RateLimitExceededError: The monthly quota would be exceeded.
        """
        self._check_quota(tokens)
        reservation = await self.limiter.acquire(
            self.key, tokens=tokens, priority=priority, user=user
        )
        self.record(tokens)
        return reservation

    def check_and_wait_sync(
        self, tokens: int = 0, *, priority: Priority = "normal", user: str | None = None
    ) -> Reservation:
        """Blocking form of :meth:`check_and_wait`."""
        self._check_quota(tokens)
        reservation = self.limiter.acquire_sync(
            self.key, tokens=tokens, priority=priority, user=user
        )
        self.record(tokens)
        return reservation

    def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        """Correct a reservation and this month's counter with the actual token usage."""
        delta = actual_tokens - reservation.tokens
        reservation.correct(actual_tokens)
        self.record(delta, requests=0)

    def forecast(self) -> tuple[float, datetime | None]:
        """Projected tokens at month end and when the quota runs out at the current pace."""
        now = self._clock()
        with self._lock:
            self._roll(now)
            used = self._tokens
        start, end = self._month_bounds(now)
        elapsed = max(now - start, 1.0)
        pace = used / elapsed
        projected = used + pace * (end - now)
        quota = self.monthly_token_quota
        if quota is None or pace <= 0:
            return projected, None
        at = now + max(0.0, quota - used) / pace
        return projected, (datetime.fromtimestamp(at, timezone.utc) if at <= end else None)

    def get_stats(self) -> QuotaStats:
        """Queue length, estimated wait and the monthly forecast."""
        stats = self.limiter.get_stats(self.key)
        projected, exhaustion = self.forecast()
        with self._lock:
            month, tokens, requests = self._month, self._tokens, self._requests
        return QuotaStats(
            queued_tasks=stats.queued_total,
            estimated_wait_seconds=stats.estimated_wait_seconds,
            admitted=stats.admitted,
            rejected=stats.rejected,
            utilisation=stats.utilisation,
            month=month,
            month_tokens=tokens,
            month_requests=requests,
            monthly_token_quota=self.monthly_token_quota,
            projected_month_tokens=projected,
            exhaustion_at=exhaustion,
        )

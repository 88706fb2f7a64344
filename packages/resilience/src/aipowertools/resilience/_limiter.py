"""``RateLimiter``: token-aware limits per key, one scheduler per key, priorities and fairness."""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from aipowertools.core.errors import ConfigurationError, RateLimitExceededError
from aipowertools.resilience._adaptive import (
    AdaptiveConfig,
    Observation,
    headers_of,
    parse_headers,
)
from aipowertools.resilience._backend import Backend, MemoryBackend
from aipowertools.resilience._fallback import (
    FallbackBackend,
    StoreDown,
    StoreFallback,
    check_store_down,
)
from aipowertools.resilience._limits import (
    Limit,
    Priority,
    limits_from_kwargs,
    priority_label,
    priority_value,
    smoothed,
)
from aipowertools.resilience._loop import run_blocking
from aipowertools.resilience._queue import Waiter, WaitQueue

if TYPE_CHECKING:
    from types import TracebackType

logger = logging.getLogger("aipowertools.resilience.limiter")

LimitSpec = Mapping[str, float] | Iterable[Limit]
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class KeyStats:
    """Live numbers of one limiter key.

    Attributes:
        queued: Waiting requests in this process per priority name.
        estimated_wait_seconds: How long a new request would wait here (a lower bound).
        utilisation: Highest fraction of any limit used in its current window (0..1+).
        usage: Units used / capacity per limit name.
        paused_seconds: Remaining pause learned from a provider 429.
    """

    queued: dict[str, int]
    estimated_wait_seconds: float
    utilisation: float
    usage: dict[str, tuple[float, float]]
    paused_seconds: float


@dataclass(frozen=True)
class LimiterStats:
    """What ``RateLimiter.get_stats()`` returns.

    Attributes:
        queued: Waiting requests per priority name, all keys.
        queued_total: Total waiting requests.
        estimated_wait_seconds: The largest per-key estimate.
        admitted: Requests admitted since creation.
        rejected: Requests refused (``try_acquire`` without capacity, or a timeout).
        utilisation: The largest per-key utilisation.
        keys: Per-key details.
    """

    queued: dict[str, int]
    queued_total: int
    estimated_wait_seconds: float
    admitted: int
    rejected: int
    utilisation: float
    keys: dict[str, KeyStats] = field(default_factory=dict)


class Reservation:
    """Capacity granted to one request; correct it with the actual token usage afterwards.

    Example:
        >>> import asyncio
        >>> limiter = RateLimiter(tokens_per_minute=10_000)
        >>> async def call():
        ...     r = await limiter.acquire("gpt-4o", tokens=1200)
        ...     await r.acorrect(850)  # the provider reported 850 tokens
        ...     return r.tokens
        >>> asyncio.run(call())
        850
    """

    __slots__ = ("_done", "_limiter", "id", "key", "tokens")

    def __init__(self, limiter: RateLimiter, key: str, rid: str, tokens: int) -> None:
        self._limiter = limiter
        self.key = key
        self.id = rid
        self.tokens = tokens
        self._done = False

    def __repr__(self) -> str:
        return f"Reservation(key={self.key!r}, tokens={self.tokens})"

    def _delta(self, actual_tokens: int) -> int:
        if isinstance(actual_tokens, bool) or not isinstance(actual_tokens, int):
            raise ConfigurationError(
                f"actual_tokens must be an int, got {type(actual_tokens).__name__}"
            )
        if actual_tokens < 0:
            raise ConfigurationError(f"actual_tokens must be >= 0, got {actual_tokens}")
        delta = actual_tokens - self.tokens
        self.tokens = actual_tokens
        return delta

    def correct(self, actual_tokens: int) -> None:
        """Replace the estimated tokens with the actual usage (blocking)."""
        self._apply(actual_tokens, restamp=False)

    async def acorrect(self, actual_tokens: int) -> None:
        """Replace the estimated tokens with the actual usage."""
        await self._aapply(actual_tokens, restamp=False)

    def settle(self, actual_tokens: int | None = None) -> None:
        """The provider answered: count the request from now, with its actual tokens.

        Providers count a request when it *arrives*, a little after we admitted it. Counting
        it again from the answer covers that delay, so a limiter set exactly at a provider's
        limit never sees a 429 however slow the network or a busy event loop is.
        """
        self._apply(actual_tokens, restamp=True)

    async def asettle(self, actual_tokens: int | None = None) -> None:
        """Async form of :meth:`settle`."""
        await self._aapply(actual_tokens, restamp=True)

    def _apply(self, actual_tokens: int | None, *, restamp: bool) -> None:
        delta = 0 if actual_tokens is None else self._delta(actual_tokens)
        if delta or restamp:
            limits = self._limiter.limits_for(self.key)
            self._limiter.backend.adjust(self.key, limits, self.id, delta, restamp)
            if delta < 0:
                self._limiter._notify()

    async def _aapply(self, actual_tokens: int | None, *, restamp: bool) -> None:
        delta = 0 if actual_tokens is None else self._delta(actual_tokens)
        if delta or restamp:
            limits = self._limiter.limits_for(self.key)
            await self._limiter.backend.aadjust(self.key, limits, self.id, delta, restamp)
            if delta < 0:
                self._limiter._notify()

    def release(self) -> None:
        """Give the capacity back: the request was never sent (blocking)."""
        if not self._done:
            self._done = True
            self._limiter.backend.release(self.key, self._limiter.limits_for(self.key), self.id)
            self._limiter._notify()

    async def arelease(self) -> None:
        """Give the capacity back: the request was never sent."""
        if not self._done:
            self._done = True
            limits = self._limiter.limits_for(self.key)
            await self._limiter.backend.arelease(self.key, limits, self.id)
            self._limiter._notify()


class _KeyScheduler:
    """Admits the waiters of one key on one event loop, in queue order, without polling."""

    def __init__(self, limiter: RateLimiter, key: str, loop: asyncio.AbstractEventLoop) -> None:
        self.limiter = limiter
        self.key = key
        self.loop = loop
        self.queue = WaitQueue(limiter.aging_seconds)
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.sleeping_on: Waiter | None = None
        self.fast_inflight = 0

    def ensure_running(self) -> None:
        if self.task is None or self.task.done():
            self.task = self.loop.create_task(self._run(), name=f"rate-limiter:{self.key}")

    def push(self, waiter: Waiter) -> None:
        self.queue.push(waiter)
        head = self.sleeping_on
        now = self.loop.time()
        if head is None or self.queue.effective(waiter, now) < self.queue.effective(head, now):
            self.wake.set()
        self.ensure_running()

    async def _run(self) -> None:
        limiter = self.limiter
        backend = limiter.backend
        try:
            while True:
                head = self.queue.head(self.loop.time())
                if head is None:
                    break
                limits = limiter.limits_for(self.key)
                decision = await backend.areserve(self.key, limits, head.tokens)
                if head.future.done():  # cancelled while we asked the backend
                    if decision.admitted and decision.reservation_id:
                        await backend.arelease(self.key, limits, decision.reservation_id)
                    continue
                if decision.admitted and decision.reservation_id:
                    self.queue.pop(head)
                    head.future.set_result(decision.reservation_id)
                    continue
                self.sleeping_on = head
                self.wake.clear()
                try:
                    await asyncio.wait_for(
                        self.wake.wait(), timeout=min(decision.wait, limiter.max_sleep)
                    )
                except asyncio.TimeoutError:
                    pass
                finally:
                    self.sleeping_on = None
        except Exception as exc:  # a store failure: fail the waiters, do not hang them
            logger.exception("rate limiter %r scheduler failed", self.key)
            while (waiter := self.queue.head(self.loop.time())) is not None:
                self.queue.pop(waiter)
                waiter.future.set_exception(exc)
        finally:
            limiter._drop_scheduler(self)


class RateLimiter:
    """Requests and tokens per second / minute / hour / day, per key, local or shared.

    Every limit is a sliding window (at most N units in any period). By default request
    limits are also paced like a token bucket of ``burst`` requests
    (``requests_per_minute=600``: one request every 0.1 s, from a cold start too), so a
    limiter set to a provider's published limits never triggers its 429s, even where the
    provider enforces a per-minute limit over shorter windows. ``smooth=False`` keeps the
    strict sliding windows only (a minute's quota may go out at once). ``memory://`` (default)
    is exact in
    one process; ``redis://...`` shares one budget between processes and hosts (atomic Lua
    scripts on the Redis server's clock).

    Args:
        requests_per_second: Request limit per second (also ``_minute``, ``_hour``, ``_day``).
        requests_per_minute: Request limit per minute.
        requests_per_hour: Request limit per hour.
        requests_per_day: Request limit per day.
        tokens_per_second: Token limit per second.
        tokens_per_minute: Token limit per minute.
        tokens_per_hour: Token limit per hour.
        tokens_per_day: Token limit per day.
        limits: Extra :class:`Limit` objects for the default key set.
        key_limits: Per-key limits replacing the defaults for that key, as keyword dicts
            (``{"gpt-4o": {"requests_per_minute": 500}}``) or ``Limit`` lists.
        store: ``"memory://"`` or a ``redis://`` / ``rediss://`` URL; by default a Redis
            ``AIPOWERTOOLS_STORE``, else memory.
        aging_seconds: A waiter's priority improves by one step per this many seconds waited.
        adaptive: Learn from 429 answers (``True``, ``False`` or an :class:`AdaptiveConfig`).
        prefix: Redis key prefix.
        max_sleep: Longest sleep before re-checking a shared store (seconds).
        smooth: Pace requests (the default): at most ``burst`` requests in any
            ``burst / rate`` seconds of each request limit; False: strict sliding windows
            only. Token limits are sliding windows either way.
        burst: Requests that may go at once before pacing starts (1: evenly spaced).
        store_down: What a shared limiter does while its Redis does not answer: ``"local"``
            (default) fails open to an exact per-process limiter with the same limits and
            goes back to Redis at most 1 s after it answers again; ``"raise"`` fails closed
            with :class:`~aipowertools.core.errors.StoreUnavailableError`.
        store_timeout: Longest wait for one answer of the shared store (seconds); a slower
            (or frozen) store counts as down.
        clock: Monotonic seconds of the ``memory://`` windows (``time.monotonic`` by
            default). Tests pass a fake clock they move by hand, with a small ``max_sleep``
            so waiters re-check it soon; a shared store keeps the Redis server's clock.

    Example:
        >>> limiter = RateLimiter(requests_per_minute=500, tokens_per_minute=90_000)
        >>> r = limiter.acquire_sync("openai/gpt-4o", tokens=1200, priority="high")
        >>> r.correct(900)
    """

    def __init__(
        self,
        *,
        requests_per_second: float | None = None,
        requests_per_minute: float | None = None,
        requests_per_hour: float | None = None,
        requests_per_day: float | None = None,
        tokens_per_second: float | None = None,
        tokens_per_minute: float | None = None,
        tokens_per_hour: float | None = None,
        tokens_per_day: float | None = None,
        limits: Iterable[Limit] = (),
        key_limits: Mapping[str, LimitSpec] | None = None,
        store: str | None = None,
        aging_seconds: float = 10.0,
        adaptive: bool | AdaptiveConfig = True,
        prefix: str = "aipowertools:ratelimit",
        max_sleep: float = 1.0,
        smooth: bool = True,
        burst: float = 1.0,
        store_down: str = "local",
        store_timeout: float = 0.5,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if isinstance(burst, bool) or not (isinstance(burst, int | float) and burst >= 1):
            raise ConfigurationError(f"burst must be a number of requests >= 1, got {burst!r}")
        self._burst: float | None = float(burst) if smooth else None
        self.default_limits = smoothed(
            limits_from_kwargs(
                requests_per_second=requests_per_second,
                requests_per_minute=requests_per_minute,
                requests_per_hour=requests_per_hour,
                requests_per_day=requests_per_day,
                tokens_per_second=tokens_per_second,
                tokens_per_minute=tokens_per_minute,
                tokens_per_hour=tokens_per_hour,
                tokens_per_day=tokens_per_day,
            )
            + tuple(limits),
            self._burst,
        )
        self._key_limits: dict[str, tuple[Limit, ...]] = {}
        for key, spec in (key_limits or {}).items():
            self.set_limits(key, spec)
        if not (math.isfinite(aging_seconds) and aging_seconds >= 0):
            raise ConfigurationError(f"aging_seconds must be >= 0, got {aging_seconds!r}")
        if not (math.isfinite(max_sleep) and max_sleep > 0):
            raise ConfigurationError(f"max_sleep must be > 0 seconds, got {max_sleep!r}")
        self.aging_seconds = float(aging_seconds)
        self.max_sleep = float(max_sleep)
        config = adaptive if isinstance(adaptive, AdaptiveConfig) else AdaptiveConfig(adaptive)
        down = check_store_down(store_down)
        if not (math.isfinite(store_timeout) and store_timeout > 0):
            raise ConfigurationError(f"store_timeout must be > 0 seconds, got {store_timeout!r}")
        self.backend: Backend = _make_backend(
            store, config, prefix, clock, down, float(store_timeout)
        )
        self._schedulers: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[str, _KeyScheduler]
        ] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self.admitted = 0
        self.rejected = 0
        self._seen: dict[str, None] = {}  # keys used here, oldest first (for get_stats)

    # -- configuration -------------------------------------------------------------------

    def set_limits(self, key: str, spec: LimitSpec) -> None:
        """Give ``key`` its own limits (keyword dict or ``Limit`` objects)."""
        if isinstance(spec, Mapping):
            self._key_limits[key] = smoothed(limits_from_kwargs(**spec), self._burst)
        else:
            items = tuple(spec)
            if not all(isinstance(item, Limit) for item in items):
                raise ConfigurationError(
                    f"limits for {key!r} must be a dict of keyword limits or Limit objects"
                )
            self._key_limits[key] = smoothed(items, self._burst)

    def limits_for(self, key: str) -> tuple[Limit, ...]:
        """The limits that apply to ``key``."""
        return self._key_limits.get(key, self.default_limits)

    def _check(self, key: str, tokens: int) -> tuple[Limit, ...]:
        if not isinstance(key, str) or not key:
            raise ConfigurationError(f"limiter key must be a non-empty string, got {key!r}")
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
            raise ConfigurationError(f"tokens must be an int >= 0, got {tokens!r}")
        if key not in self._seen:
            self._seen[key] = None
            if len(self._seen) > 10_000:  # bounded: forget the oldest key
                del self._seen[next(iter(self._seen))]
        limits = self.limits_for(key)
        for limit in limits:
            if limit.unit == "tokens" and tokens > limit.amount:
                raise ConfigurationError(
                    f"a request of {tokens} tokens can never fit {limit.name}="
                    f"{limit.amount:g} for key {key!r}; split the request or raise the limit"
                )
        return limits

    # -- scheduling ----------------------------------------------------------------------

    def _scheduler(self, key: str) -> _KeyScheduler:
        loop = asyncio.get_running_loop()
        with self._lock:
            per_loop = self._schedulers.get(loop)
            if per_loop is None:
                per_loop = self._schedulers[loop] = {}
            sched = per_loop.get(key)
            if sched is None:
                sched = per_loop[key] = _KeyScheduler(self, key, loop)
            return sched

    def _drop_scheduler(self, sched: _KeyScheduler) -> None:
        with self._lock:
            per_loop = self._schedulers.get(sched.loop)
            if per_loop is not None and per_loop.get(sched.key) is sched:
                if len(sched.queue):  # pragma: no cover - waiters arrived as it stopped
                    sched.ensure_running()
                    return
                del per_loop[sched.key]

    def _notify(self) -> None:
        """Capacity was freed: wake every scheduler to re-check now."""
        if not len(self._schedulers):
            return
        with self._lock:
            scheds = [s for per_loop in self._schedulers.values() for s in per_loop.values()]
        for sched in scheds:
            if not sched.loop.is_closed():
                sched.loop.call_soon_threadsafe(sched.wake.set)

    def _queued_here(self, key: str) -> bool:
        if not len(self._schedulers):
            return False
        with self._lock:
            return any(len(p[key].queue) for p in self._schedulers.values() if key in p)

    # -- acquiring -----------------------------------------------------------------------

    async def acquire(
        self,
        key: str = "default",
        *,
        tokens: int = 0,
        priority: Priority = "normal",
        user: str | None = None,
        timeout: float | None = None,
    ) -> Reservation:
        """Wait until one request of ``tokens`` estimated tokens fits, then reserve it.

        Args:
            key: What the limits apply to (provider, model, deployment, user, ...).
            tokens: Estimated tokens of the request (correct later with the actual usage).
            priority: ``"critical"``, ``"high"``, ``"normal"``, ``"low"`` or a number;
                smaller runs first, waiting improves it (aging).
            user: Requests of different users at one priority are served round-robin.
            timeout: Give up after this many seconds with ``RateLimitExceededError``.

        Returns:
            The reservation; call ``acorrect(actual_tokens)`` once usage is known.

        Raises:
            RateLimitExceededError: No capacity within ``timeout``.
            ConfigurationError: Bad arguments, or a request that can never fit.
        """
        self._check(key, tokens)
        prio = priority_value(priority)
        sched = self._scheduler(key)
        if not len(sched.queue) and not sched.fast_inflight:
            # Fast path; one at a time per key so a shared store sees one call, not a stampede.
            sched.fast_inflight += 1
            try:
                decision = await self.backend.areserve(key, self.limits_for(key), tokens)
            finally:
                sched.fast_inflight -= 1
            if decision.admitted and decision.reservation_id:
                self.admitted += 1
                if sched.task is None and not len(sched.queue) and not sched.fast_inflight:
                    self._drop_scheduler(sched)  # nobody waits: keep no state for this key
                return Reservation(self, key, decision.reservation_id, tokens)
            if timeout is not None and decision.wait > timeout:
                self.rejected += 1
                raise RateLimitExceededError(key, decision.wait)
        loop = sched.loop
        waiter = Waiter(loop.create_future(), tokens, prio, user, loop.time())
        sched.push(waiter)
        try:
            if timeout is None:
                rid = await waiter.future
            else:
                rid = await asyncio.wait_for(waiter.future, timeout)
        except asyncio.TimeoutError:
            sched.queue.forget(waiter)
            self.rejected += 1
            raise RateLimitExceededError(key, self._estimate(key, sched.queue)) from None
        except asyncio.CancelledError:
            if waiter.future.done() and not waiter.future.cancelled():
                if waiter.future.exception() is None:
                    await self.backend.arelease(key, self.limits_for(key), waiter.future.result())
            else:
                waiter.future.cancel()
                sched.queue.forget(waiter)
            raise
        self.admitted += 1
        return Reservation(self, key, rid, tokens)

    def acquire_sync(
        self,
        key: str = "default",
        *,
        tokens: int = 0,
        priority: Priority = "normal",
        user: str | None = None,
        timeout: float | None = None,
    ) -> Reservation:
        """Blocking form of :meth:`acquire` for threads and sync code."""
        self._check(key, tokens)
        priority_value(priority)
        if not self._queued_here(key):
            decision = self.backend.reserve(key, self.limits_for(key), tokens)
            if decision.admitted and decision.reservation_id:
                self.admitted += 1
                return Reservation(self, key, decision.reservation_id, tokens)
        return run_blocking(
            self.acquire(key, tokens=tokens, priority=priority, user=user, timeout=timeout)
        )

    def try_acquire(self, key: str = "default", *, tokens: int = 0) -> Reservation | None:
        """Reserve capacity now if there is some and nobody here is queued; never waits."""
        limits = self._check(key, tokens)
        if not self._queued_here(key):
            decision = self.backend.reserve(key, limits, tokens)
            if decision.admitted and decision.reservation_id:
                self.admitted += 1
                return Reservation(self, key, decision.reservation_id, tokens)
        self.rejected += 1
        return None

    async def atry_acquire(self, key: str = "default", *, tokens: int = 0) -> Reservation | None:
        """Async form of :meth:`try_acquire`."""
        limits = self._check(key, tokens)
        if not self._queued_here(key):
            decision = await self.backend.areserve(key, limits, tokens)
            if decision.admitted and decision.reservation_id:
                self.admitted += 1
                return Reservation(self, key, decision.reservation_id, tokens)
        self.rejected += 1
        return None

    async def wait(self, key: str = "default", **options: Any) -> Reservation:
        """Alias of :meth:`acquire` (reads well after a rate-limit error)."""
        return await self.acquire(key, **options)

    def limit(
        self,
        key: str | None = None,
        *,
        tokens: int | Callable[..., int] = 0,
        priority: Priority = "normal",
        timeout: float | None = None,
    ) -> Callable[[F], F]:
        """Decorate a sync or async function so each call acquires first.

        Example:
            >>> limiter = RateLimiter(requests_per_second=10)
            >>> @limiter.limit(priority="high")
            ... def generate() -> str:
            ...     return "text"
            >>> generate()
            'text'
        """
        from aipowertools.resilience._quota import limited

        def decorate(fn: F) -> F:
            name = key or f"{fn.__module__}.{fn.__qualname__}"
            return limited(self, name, tokens=tokens, priority=priority, timeout=timeout)(fn)

        return decorate

    # -- learning ------------------------------------------------------------------------

    def _observation(
        self,
        exc: BaseException | None,
        headers: Mapping[str, str] | None,
        retry_after: float | None,
    ) -> Observation:
        from aipowertools.core.errors import ErrorKind, classify, retry_after_seconds

        merged: dict[str, str] = headers_of(exc) if exc is not None else {}
        merged.update(headers or {})
        rate_limited = exc is not None and classify(exc) is ErrorKind.RATE_LIMITED
        if retry_after is None and exc is not None:
            retry_after = retry_after_seconds(exc)
        return parse_headers(merged, rate_limited=rate_limited, retry_after=retry_after)

    def observe(
        self,
        key: str,
        *,
        exc: BaseException | None = None,
        headers: Mapping[str, str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Learn from a provider answer: a 429 ``exc`` and/or ``x-ratelimit-*`` ``headers``.

        A 429 pauses ``key`` for its Retry-After (or until the reported reset) and lowers the
        rate; a reported ``x-ratelimit-limit-*`` below the configured limit becomes the limit.
        """
        obs = self._observation(exc, headers, retry_after)
        if obs.retry_after or obs.limits or obs.resets or obs.rate_limited:
            self.backend.observe(key, self.limits_for(key), obs)
            logger.info(
                "rate limit learned for %s",
                key,
                extra={"limiter_key": key, "retry_after": obs.retry_after, "limits": obs.limits},
            )

    async def aobserve(
        self,
        key: str,
        *,
        exc: BaseException | None = None,
        headers: Mapping[str, str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Async form of :meth:`observe`."""
        obs = self._observation(exc, headers, retry_after)
        if obs.retry_after or obs.limits or obs.resets or obs.rate_limited:
            await self.backend.aobserve(key, self.limits_for(key), obs)

    # -- stats ---------------------------------------------------------------------------

    def _estimate(self, key: str, queue: WaitQueue | None) -> float:
        pending_requests = len(queue) if queue is not None else 0
        pending_tokens = queue.pending_tokens if queue is not None else 0
        wait = self.backend.paused_for(key)
        for use in self.backend.usage(key, self.limits_for(key)):
            pending = pending_requests if use.limit.unit == "requests" else pending_tokens
            over = use.used + pending - use.capacity
            if over > 0 and use.capacity > 0:
                wait = max(wait, over * use.limit.period / use.capacity)
        return wait

    def remaining_tokens(self, key: str = "default") -> float:
        """Tokens ``key`` may still use now: the tightest token limit's capacity left.

        ``math.inf`` when ``key`` has no token limit; ``0.0`` while a provider 429 pause
        learned by :meth:`observe` lasts. (The roadmap's ``getRemainingTokens``.)
        """
        limits = self._check(key, 0)
        if self.backend.paused_for(key) > 0:
            return 0.0
        token_limits = tuple(limit for limit in limits if limit.unit == "tokens")
        return min(
            (max(0.0, u.capacity - u.used) for u in self.backend.usage(key, token_limits)),
            default=math.inf,
        )

    def retry_after(self, key: str = "default", *, tokens: int = 0) -> float:
        """Seconds until a request of ``tokens`` tokens would fit ``key``'s limits.

        ``0.0`` when it fits now. Nothing is reserved, and requests queued in this process
        are not counted (see ``get_stats().estimated_wait_seconds`` for that). (The
        roadmap's ``getRetryAfter``.)
        """
        limits = self._check(key, tokens)
        return max(0.0, self.backend.peek(key, limits, tokens))

    def get_stats(self, key: str | None = None) -> LimiterStats:
        """Queue lengths per priority, estimated wait, admitted / rejected, utilisation."""
        with self._lock:
            queues: dict[str, list[WaitQueue]] = {}
            for per_loop in self._schedulers.values():
                for k, sched in per_loop.items():
                    queues.setdefault(k, []).append(sched.queue)
        keys = {key} if key is not None else set(queues) | set(self._key_limits) | set(self._seen)
        if not keys:
            keys = {"default"}
        per_key: dict[str, KeyStats] = {}
        for k in sorted(keys):
            queued: dict[str, int] = {}
            merged = WaitQueue(self.aging_seconds)
            for q in queues.get(k, []):
                for prio, count in q.pending.items():
                    label = priority_label(prio)
                    queued[label] = queued.get(label, 0) + count
                    merged.pending[prio] = merged.pending.get(prio, 0) + count
                merged.pending_tokens += q.pending_tokens
            usage = {
                u.limit.name: (u.used, u.capacity)
                for u in self.backend.usage(k, self.limits_for(k))
            }
            utilisation = max((u / c for u, c in usage.values() if c > 0), default=0.0)
            per_key[k] = KeyStats(
                queued=queued,
                estimated_wait_seconds=self._estimate(k, merged),
                utilisation=utilisation,
                usage=usage,
                paused_seconds=self.backend.paused_for(k),
            )
        total: dict[str, int] = {}
        for ks in per_key.values():
            for label, count in ks.queued.items():
                total[label] = total.get(label, 0) + count
        return LimiterStats(
            queued=total,
            queued_total=sum(total.values()),
            estimated_wait_seconds=max(
                (ks.estimated_wait_seconds for ks in per_key.values()), default=0.0
            ),
            admitted=self.admitted,
            rejected=self.rejected,
            utilisation=max((ks.utilisation for ks in per_key.values()), default=0.0),
            keys=per_key,
        )

    def close(self) -> None:
        """Release store connections."""
        self.backend.close()

    def __enter__(self) -> RateLimiter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _make_backend(
    store: str | None,
    adaptive: AdaptiveConfig,
    prefix: str,
    clock: Callable[[], float] | None,
    store_down: StoreDown = "local",
    store_timeout: float = 0.5,
) -> Backend:
    from aipowertools.resilience._store import resolve_store

    url, shared = resolve_store(store, "the rate limiter")
    if not shared:
        return MemoryBackend(adaptive) if clock is None else MemoryBackend(adaptive, clock)
    if clock is not None:
        raise ConfigurationError(
            "clock applies to the memory:// store only; a shared store runs on the Redis "
            "server's clock"
        )
    from aipowertools.core.stores import parse_store_url
    from aipowertools.resilience._redis import RedisBackend

    fallback = StoreFallback("the rate limiter", parse_store_url(url, default=url).masked())
    return FallbackBackend(
        RedisBackend(url, adaptive, prefix),
        MemoryBackend(adaptive),
        fallback,
        store_down=store_down,
        store_timeout=store_timeout,
    )

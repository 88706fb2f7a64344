"""What a limiter or breaker does while its shared store (Redis) does not answer.

A shared store is there to *coordinate* processes; it must never become the single point of
failure of the calls it protects. While it is down the component keeps working on state of its
own process (the same limits, the same thresholds), and asks the store again on a short retry
schedule (0.1 s, doubling, at most ``retry_max_s`` = 1 s): the shared state is back in use at
most one second after the store is.

:class:`StoreFallback` is that schedule; :class:`FallbackBackend` applies it to the rate
limiter's backend, :class:`FallbackBreakerStore` to a circuit breaker's store.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

from aipowertools.core.errors import ConfigurationError, StoreUnavailableError
from aipowertools.resilience._adaptive import Observation
from aipowertools.resilience._backend import Backend, Decision, WindowUsage
from aipowertools.resilience._breaker_store import Admission, BreakerStore, Outcome, Snapshot
from aipowertools.resilience._limits import Limit

logger = logging.getLogger("aipowertools.resilience.store")

T = TypeVar("T")
StoreDown = Literal["local", "raise"]
#: Reservation ids granted by the local fallback start with this (they are released locally).
LOCAL_PREFIX = "local:"


def store_failures() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "the shared store did not answer" (not a bug of ours)."""
    failures: tuple[type[BaseException], ...] = (StoreUnavailableError, TimeoutError, OSError)
    try:
        import redis.exceptions
    except ImportError:  # pragma: no cover - redis is installed with the [redis] extra
        return failures
    # A Redis that answers with an error (OOM under noeviction, READONLY replica, LOADING)
    # cannot serve the shared state either.
    return (*failures, redis.exceptions.RedisError)


def check_store_down(value: object) -> StoreDown:
    """Validate a ``store_down`` argument."""
    if value not in ("local", "raise"):
        raise ConfigurationError(
            f"store_down must be 'local' (fail open to this process's state) or 'raise' "
            f"(StoreUnavailableError), got {value!r}"
        )
    return value


class StoreFallback:
    """The retry schedule of one shared store: when to ask it again after a failure.

    Args:
        what: What the store serves, for log lines ("the rate limiter").
        url: The store's masked URL, for log lines.
        retry_min_s: First retry delay after a failure.
        retry_max_s: Longest retry delay (the store is back in use at most this long after
            it returns).
        clock: Monotonic clock (tests inject one).

    Attributes:
        failures: Failed store calls seen.
        fallbacks: Calls served by local state because the store was down.
        recoveries: Times the store answered again after an outage.
    """

    def __init__(
        self,
        what: str,
        url: str,
        *,
        retry_min_s: float = 0.1,
        retry_max_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what = what
        self.url = url
        self.retry_min_s = retry_min_s
        self.retry_max_s = retry_max_s
        self.clock = clock
        self.down = False
        self.retry_at = 0.0
        self._delay = retry_min_s
        self._lock = threading.Lock()
        self.failures = 0
        self.fallbacks = 0
        self.recoveries = 0

    def use_shared(self) -> bool:
        """Whether to ask the shared store now (it is up, or its retry time has come)."""
        if not self.down:
            return True
        if self.clock() >= self.retry_at:
            return True
        self.fallbacks += 1
        return False

    def failed(self, exc: BaseException) -> None:
        """The store did not answer: use local state until the next retry time."""
        with self._lock:
            self.failures += 1
            first = not self.down
            self.down = True
            self.retry_at = self.clock() + self._delay
            self._delay = min(self._delay * 2, self.retry_max_s)
            self.fallbacks += 1
        if first:
            logger.warning(
                "%s: store %s is unavailable (%s); using this process's state until it "
                "answers again",
                self.what, self.url, exc,
                extra={"store": self.url, "error_type": type(exc).__name__},
            )  # fmt: skip

    def ok(self) -> None:
        """The store answered."""
        if self.down:
            with self._lock:
                self.down = False
                self._delay = self.retry_min_s
                self.recoveries += 1
            logger.warning("%s: store %s answers again", self.what, self.url)


class FallbackBackend:
    """A shared limiter backend that falls back to a local one while the store is down.

    ``store_down="local"`` (the default) fails open: requests are admitted by an exact
    per-process limiter with the same limits, so each process still respects the limit on its
    own (N processes may together send up to N times it for as long as the outage lasts).
    ``store_down="raise"`` fails closed with :class:`StoreUnavailableError`. Either way, a call
    to the store waits at most ``store_timeout`` seconds.
    """

    def __init__(
        self,
        shared: Backend,
        local: Backend,
        fallback: StoreFallback,
        *,
        store_down: StoreDown = "local",
        store_timeout: float = 0.5,
    ) -> None:
        self.shared = shared
        self.local = local
        self.fallback = fallback
        self.store_down = store_down
        self.store_timeout = store_timeout
        self.adaptive_config = getattr(shared, "adaptive_config", None)
        self._failures = store_failures()

    @property
    def shared_ok(self) -> bool:
        """Whether the shared store answered the last call made to it."""
        return not self.fallback.down

    def _refuse(self, exc: BaseException | None) -> StoreUnavailableError:
        reason = f"did not answer ({exc})" if exc is not None else "is down; retry shortly"
        error = StoreUnavailableError(self.fallback.url, f"the rate limiter's store {reason}")
        return error

    def _sync(self, call: Callable[[Backend], T], local_call: Callable[[Backend], T]) -> T:
        if self.fallback.use_shared():
            try:
                result = call(self.shared)
            except self._failures as exc:
                self.fallback.failed(exc)
                if self.store_down == "raise":
                    raise self._refuse(exc) from exc
            else:
                self.fallback.ok()
                return result
        elif self.store_down == "raise":
            raise self._refuse(None)
        return local_call(self.local)

    async def _async(
        self,
        call: Callable[[Backend], Awaitable[T]],
        local_call: Callable[[Backend], Awaitable[T]],
    ) -> T:
        if self.fallback.use_shared():
            try:
                result = await asyncio.wait_for(call(self.shared), self.store_timeout)
            except self._failures as exc:
                self.fallback.failed(exc)
                if self.store_down == "raise":
                    raise self._refuse(exc) from exc
            else:
                self.fallback.ok()
                return result
        elif self.store_down == "raise":
            raise self._refuse(None)
        return await local_call(self.local)

    @staticmethod
    def _local(decision: Decision) -> Decision:
        if decision.reservation_id is None:
            return decision
        return Decision(decision.admitted, decision.wait, LOCAL_PREFIX + decision.reservation_id)

    # -- the Backend protocol -----------------------------------------------------------

    def reserve(self, key: str, limits: tuple[Limit, ...], tokens: int) -> Decision:
        def local(b: Backend) -> Decision:
            return self._local(b.reserve(key, limits, tokens))

        return self._sync(lambda b: b.reserve(key, limits, tokens), local)

    async def areserve(self, key: str, limits: tuple[Limit, ...], tokens: int) -> Decision:
        async def local(b: Backend) -> Decision:
            return self._local(await b.areserve(key, limits, tokens))

        return await self._async(lambda b: b.areserve(key, limits, tokens), local)

    def _best_effort(self, call: Callable[[], Any]) -> None:
        # Corrections and releases of shared reservations: if the store is down they are
        # dropped (the entry expires with its window), never an error after the call ran.
        if not self.fallback.use_shared():
            return
        try:
            call()
        except self._failures as exc:
            self.fallback.failed(exc)
        else:
            self.fallback.ok()

    async def _abest_effort(self, call: Callable[[], Awaitable[Any]]) -> None:
        if not self.fallback.use_shared():
            return
        try:
            await asyncio.wait_for(call(), self.store_timeout)
        except self._failures as exc:
            self.fallback.failed(exc)
        else:
            self.fallback.ok()

    def adjust(
        self, key: str, limits: tuple[Limit, ...], rid: str, delta: int, restamp: bool
    ) -> None:
        if rid.startswith(LOCAL_PREFIX):
            self.local.adjust(key, limits, rid[len(LOCAL_PREFIX) :], delta, restamp)
            return
        self._best_effort(lambda: self.shared.adjust(key, limits, rid, delta, restamp))

    async def aadjust(
        self, key: str, limits: tuple[Limit, ...], rid: str, delta: int, restamp: bool
    ) -> None:
        if rid.startswith(LOCAL_PREFIX):
            await self.local.aadjust(key, limits, rid[len(LOCAL_PREFIX) :], delta, restamp)
            return
        await self._abest_effort(lambda: self.shared.aadjust(key, limits, rid, delta, restamp))

    def release(self, key: str, limits: tuple[Limit, ...], rid: str) -> None:
        if rid.startswith(LOCAL_PREFIX):
            self.local.release(key, limits, rid[len(LOCAL_PREFIX) :])
            return
        self._best_effort(lambda: self.shared.release(key, limits, rid))

    async def arelease(self, key: str, limits: tuple[Limit, ...], rid: str) -> None:
        if rid.startswith(LOCAL_PREFIX):
            await self.local.arelease(key, limits, rid[len(LOCAL_PREFIX) :])
            return
        await self._abest_effort(lambda: self.shared.arelease(key, limits, rid))

    def observe(self, key: str, limits: tuple[Limit, ...], obs: Observation) -> None:
        self.local.observe(key, limits, obs)
        self._best_effort(lambda: self.shared.observe(key, limits, obs))

    async def aobserve(self, key: str, limits: tuple[Limit, ...], obs: Observation) -> None:
        await self.local.aobserve(key, limits, obs)
        await self._abest_effort(lambda: self.shared.aobserve(key, limits, obs))

    def usage(self, key: str, limits: tuple[Limit, ...]) -> list[WindowUsage]:
        return self._sync(lambda b: b.usage(key, limits), lambda b: b.usage(key, limits))

    def paused_for(self, key: str) -> float:
        return self._sync(lambda b: b.paused_for(key), lambda b: b.paused_for(key))

    def peek(self, key: str, limits: tuple[Limit, ...], tokens: int) -> float:
        return self._sync(
            lambda b: b.peek(key, limits, tokens), lambda b: b.peek(key, limits, tokens)
        )

    def close(self) -> None:
        self.shared.close()
        self.local.close()


class FallbackBreakerStore:
    """A shared circuit breaker store that falls back to this process's state while it is down.

    The breaker protects a dependency; its store must not become one more way for that
    dependency's calls to fail. While Redis does not answer, admissions and outcomes go to an
    in-process breaker with the same thresholds (so a dependency failing during the outage
    still trips the circuit here), and Redis is asked again on :class:`StoreFallback`'s
    schedule.
    """

    def __init__(self, shared: BreakerStore, local: BreakerStore, fallback: StoreFallback) -> None:
        self.shared = shared
        self.local = local
        self.fallback = fallback
        self._failures = store_failures()

    def _call(self, call: Callable[[BreakerStore], T]) -> T:
        if self.fallback.use_shared():
            try:
                result = call(self.shared)
            except self._failures as exc:
                self.fallback.failed(exc)
            else:
                self.fallback.ok()
                return result
        return call(self.local)

    def before(self) -> Admission:
        return self._call(lambda s: s.before())

    def after(self, outcome: Outcome, probe: bool) -> tuple[str, str] | None:
        return self._call(lambda s: s.after(outcome, probe))

    def snapshot(self) -> Snapshot:
        return self._call(lambda s: s.snapshot())

    def reset(self) -> tuple[str, str] | None:
        self.local.reset()
        return self._call(lambda s: s.reset())

    def force(self, state: str) -> tuple[str, str] | None:
        # The local state follows too, so a forced state holds through an outage of the store.
        self.local.force(state)
        return self._call(lambda s: s.force(state))

"""``CircuitBreaker`` and ``@circuit_breaker``: fail fast while a dependency is down."""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from aipowertools.core.errors import CircuitOpenError, ConfigurationError, ErrorKind, classify
from aipowertools.resilience._breaker_store import (
    BreakerConfig,
    BreakerStore,
    MemoryBreakerStore,
    Outcome,
    RedisBreakerStore,
    Snapshot,
)
from aipowertools.resilience._retry import decorate

logger = logging.getLogger("aipowertools.resilience.breaker")

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

DEFAULT_COUNTED = frozenset({ErrorKind.TRANSIENT, ErrorKind.TIMEOUT, ErrorKind.RATE_LIMITED})
Counted = Iterable[ErrorKind | type[BaseException]] | Callable[[BaseException], bool]


class CircuitState(str, enum.Enum):
    """The three states of a circuit."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class StateChange:
    """A breaker changed state (given to ``on_state_change`` listeners and logged)."""

    name: str
    old: CircuitState
    new: CircuitState
    at: float


class BreakerCall:
    """One admitted call through a breaker: report its outcome with ``finish(exc_or_None)``."""

    __slots__ = ("_breaker", "_done", "probe")

    def __init__(self, breaker: CircuitBreaker, probe: bool) -> None:
        self._breaker = breaker
        self.probe = probe
        self._done = False

    def finish(self, exc: BaseException | None) -> None:
        """Report the outcome (``None`` for success); later calls are ignored."""
        if self._done:
            return
        self._done = True
        self._breaker._finish(self.probe, exc)

    async def afinish(self, exc: BaseException | None) -> None:
        """Async form of :meth:`finish` (a shared store is asked off the event loop)."""
        await self._breaker._afinish(self, exc)


class CircuitBreaker:
    """Closed -> open after repeated failures -> half-open probes -> closed again.

    Args:
        name: Identifies the circuit (shared state uses it as the Redis key).
        failure_threshold: Counted failures inside ``window`` that open the circuit.
        recovery_timeout: Seconds the circuit stays open before letting probes through.
        window: Sliding window in seconds for counting failures.
        failure_rate_threshold: Also open when this fraction of calls in the window failed
            (once at least ``minimum_requests`` calls were seen).
        minimum_requests: Calls needed before the failure rate counts.
        half_open_max_calls: Probes allowed at the same time while half-open.
        success_threshold: Successful probes needed to close.
        counted: Which errors count as failures: ``ErrorKind`` values, exception types or a
            predicate. Default: transient, timeout and rate-limited (never the caller's own bad
            requests, authentication or content-policy errors).
        store: ``"memory://"`` (this process) or a ``redis://`` URL (all processes); by
            default a Redis ``AIPOWERTOOLS_STORE``, else memory. While a Redis store does
            not answer, the breaker keeps working on this process's state (same thresholds)
            and asks Redis again within 1 s (0.1 s, doubling).
        prefix: Redis key prefix.
        on_state_change: Called with a :class:`StateChange` on each transition.
        clock: Epoch-seconds clock of the in-memory store (tests inject a fake one).

    Example:
        >>> breaker = CircuitBreaker("openai", failure_threshold=3, recovery_timeout=30)
        >>> breaker.call(lambda: "ok")
        'ok'
        >>> breaker.state
        <CircuitState.CLOSED: 'closed'>
    """

    def __init__(
        self,
        name: str = "default",
        *,
        failure_threshold: int = 5,
        recovery_timeout: float = 60.0,
        window: float = 60.0,
        failure_rate_threshold: float | None = None,
        minimum_requests: int = 10,
        half_open_max_calls: int = 1,
        success_threshold: int = 1,
        counted: Counted | None = None,
        store: str | None = None,
        prefix: str = "aipowertools:circuit",
        on_state_change: Callable[[StateChange], Any] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        for label, value in (
            ("failure_threshold", failure_threshold),
            ("minimum_requests", minimum_requests),
            ("half_open_max_calls", half_open_max_calls),
            ("success_threshold", success_threshold),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{label} must be an int >= 1, got {value!r}")
        for label, num in (("recovery_timeout", recovery_timeout), ("window", window)):
            if not (isinstance(num, int | float) and math.isfinite(num) and num > 0):
                raise ConfigurationError(f"{label} must be > 0 seconds, got {num!r}")
        if failure_rate_threshold is not None and not 0 < failure_rate_threshold <= 1:
            raise ConfigurationError(
                f"failure_rate_threshold must be in (0, 1], got {failure_rate_threshold!r}"
            )
        self.name = name
        self.config = BreakerConfig(
            failure_threshold=failure_threshold,
            recovery_timeout=float(recovery_timeout),
            window=float(window),
            failure_rate_threshold=failure_rate_threshold,
            minimum_requests=minimum_requests,
            half_open_max_calls=half_open_max_calls,
            success_threshold=success_threshold,
        )
        self.counted = counted
        self._listeners: list[Callable[[StateChange], Any]] = (
            [on_state_change] if on_state_change else []
        )
        from aipowertools.resilience._store import resolve_store

        url, self._shared = resolve_store(store, "the circuit breaker")
        self._clock = time.time if self._shared else clock
        self._store: BreakerStore
        if self._shared:
            from aipowertools.core.stores import parse_store_url
            from aipowertools.resilience._fallback import FallbackBreakerStore, StoreFallback

            self._store = FallbackBreakerStore(
                RedisBreakerStore(url, name, self.config, prefix),
                MemoryBreakerStore(self.config),
                StoreFallback(
                    f"circuit breaker {name!r}", parse_store_url(url, default=url).masked()
                ),
            )
        else:
            self._store = MemoryBreakerStore(self.config, clock)

    # -- events --------------------------------------------------------------------------

    def add_listener(self, listener: Callable[[StateChange], Any]) -> None:
        """Call ``listener`` with a :class:`StateChange` on every transition made here."""
        self._listeners.append(listener)

    def _emit(self, transition: tuple[str, str] | None) -> None:
        if transition is None:
            return
        change = StateChange(
            self.name, CircuitState(transition[0]), CircuitState(transition[1]), time.time()
        )
        log = logger.warning if change.new is CircuitState.OPEN else logger.info
        log(
            "circuit %r: %s -> %s",
            self.name,
            change.old.value,
            change.new.value,
            extra={"event": "circuit_state", "circuit": self.name, "state": change.new.value},
        )
        for listener in self._listeners:
            try:
                listener(change)
            except Exception:  # a listener must never break the caller
                logger.exception("circuit %r state listener failed", self.name)

    # -- state ---------------------------------------------------------------------------

    @property
    def state(self) -> CircuitState:
        """Current state (read from the store, so shared state is always fresh)."""
        return CircuitState(self._store.snapshot().state)

    def snapshot(self) -> Snapshot:
        """State, failures and calls in the window, opened-at time and probes in flight."""
        return self._store.snapshot()

    def available(self) -> bool:
        """Whether a call would be let through now (without taking a probe slot).

        Routers use it to skip an open deployment before choosing it.
        """
        snap = self._store.snapshot()
        if snap.state == "closed":
            return True
        if snap.state == "open":
            opened = snap.opened_at if snap.opened_at is not None else 0.0
            return self._clock() - opened >= self.config.recovery_timeout
        return snap.probes_in_flight < self.config.half_open_max_calls

    def reset(self) -> None:
        """Force the circuit closed and forget its history."""
        self._emit(self._store.reset())

    def set_state(self, state: CircuitState | str) -> None:
        """Force the circuit into ``state``: ``"open"``, ``"half_open"`` or ``"closed"``.

        The change is written to the store (so on a shared Redis store every process sees
        it) and reported to listeners and the log like any other transition. Forcing
        ``"open"`` restarts the recovery timeout; ``"closed"`` forgets the failure history
        (as :meth:`reset`); ``"half_open"`` lets the next probes through. Forcing the
        current state again is not a transition and emits nothing (forcing ``"open"`` again
        still restarts the recovery timeout).

        Raises:
            ConfigurationError: ``state`` is not one of the three states.
        """
        try:
            target = CircuitState(state)
        except (TypeError, ValueError):
            choices = ", ".join(repr(s.value) for s in CircuitState)
            raise ConfigurationError(f"state must be one of {choices}, got {state!r}") from None
        self._emit(self._store.force(target.value))

    def is_counted(self, exc: BaseException) -> bool:
        """Whether ``exc`` counts as a failure of the protected dependency."""
        if not isinstance(exc, Exception) or isinstance(exc, CircuitOpenError):
            return False
        spec = self.counted
        if spec is None:
            return classify(exc) in DEFAULT_COUNTED
        if callable(spec):
            return bool(spec(exc))
        kind = classify(exc)
        return any(
            (kind is item) if isinstance(item, ErrorKind) else isinstance(exc, item)
            for item in spec
        )

    # -- calls ---------------------------------------------------------------------------

    def enter(self) -> BreakerCall:
        """Ask to make one call; raises ``CircuitOpenError`` while open.

        Returns:
            A handle: call ``finish(exc_or_None)`` on it once the call is over.
        """
        admission = self._store.before()
        self._emit(admission.transition)
        if not admission.allowed:
            raise CircuitOpenError(self.name, admission.retry_at)
        return BreakerCall(self, admission.probe)

    def _finish(self, probe: bool, exc: BaseException | None) -> None:
        outcome: Outcome
        if exc is None:
            outcome = "success"
        elif self.is_counted(exc):
            outcome = "failure"
        else:
            outcome = "ignored"
        self._emit(self._store.after(outcome, probe))

    async def aenter(self) -> BreakerCall:
        """Async form of :meth:`enter` (a shared store is asked off the event loop)."""
        if not self._shared:
            return self.enter()
        return await asyncio.to_thread(self.enter)

    async def _afinish(self, call: BreakerCall, exc: BaseException | None) -> None:
        if self._shared:
            await asyncio.to_thread(call.finish, exc)
        else:
            call.finish(exc)

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call ``fn`` through the breaker."""
        handle = self.enter()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            handle.finish(exc)
            raise
        handle.finish(None)
        return result

    async def acall(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Await ``fn`` through the breaker."""
        handle = await self.aenter()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            await self._afinish(handle, exc)
            raise
        await self._afinish(handle, None)
        return result

    def __call__(self, fn: F) -> F:
        """Decorate a sync or async function."""
        return decorate(fn, self.call, self.acall)


def circuit_breaker(
    name: str | None = None,
    *,
    failure_threshold: int = 5,
    recovery_timeout: float = 60.0,
    **options: Any,
) -> Callable[[F], F]:
    """Protect a function with its own :class:`CircuitBreaker` (named after the function).

    Example:
        >>> @circuit_breaker(failure_threshold=5, recovery_timeout=60)
        ... async def risky_operation() -> str:
        ...     return "ok"
    """

    def decorate(fn: F) -> F:
        breaker = CircuitBreaker(
            name or f"{fn.__module__}.{fn.__qualname__}",
            failure_threshold=failure_threshold,
            recovery_timeout=recovery_timeout,
            **options,
        )
        wrapped = breaker(fn)
        wrapped.breaker = breaker  # type: ignore[attr-defined]
        return wrapped

    return decorate

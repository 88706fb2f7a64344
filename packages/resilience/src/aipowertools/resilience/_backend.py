"""The limiter backend protocol and the exact in-process sliding-window backend.

A backend decides *whether one request fits now* for a key and, if not, *how long until it
could*. It knows nothing about queues or priorities (that is the scheduler's job). Every limit is
a sliding window: at most ``amount`` units in any ``period`` seconds, which never exceeds a
provider that enforces a fixed window, a sliding window or a token bucket of the same size.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from aipowertools.resilience._adaptive import (
    AdaptiveConfig,
    AdaptiveState,
    Observation,
    apply_observation,
)
from aipowertools.resilience._limits import Limit


@dataclass(frozen=True)
class Decision:
    """Outcome of one reservation attempt.

    Attributes:
        admitted: Whether the request was admitted (and recorded).
        wait: Seconds until it could fit (0 when admitted).
        reservation_id: Id of the recorded entry when admitted.
    """

    admitted: bool
    wait: float
    reservation_id: str | None = None


@dataclass
class WindowUsage:
    """Usage of one limit of one key at one instant."""

    limit: Limit
    used: float
    capacity: float


class Backend(Protocol):
    """What the scheduler needs from a store of rate-limit state."""

    def reserve(self, key: str, limits: tuple[Limit, ...], tokens: int) -> Decision: ...
    async def areserve(self, key: str, limits: tuple[Limit, ...], tokens: int) -> Decision: ...
    def adjust(
        self, key: str, limits: tuple[Limit, ...], rid: str, delta: int, restamp: bool
    ) -> None: ...
    async def aadjust(
        self, key: str, limits: tuple[Limit, ...], rid: str, delta: int, restamp: bool
    ) -> None: ...
    def release(self, key: str, limits: tuple[Limit, ...], rid: str) -> None: ...
    async def arelease(self, key: str, limits: tuple[Limit, ...], rid: str) -> None: ...
    def observe(self, key: str, limits: tuple[Limit, ...], obs: Observation) -> None: ...
    async def aobserve(self, key: str, limits: tuple[Limit, ...], obs: Observation) -> None: ...
    def usage(self, key: str, limits: tuple[Limit, ...]) -> list[WindowUsage]: ...
    def paused_for(self, key: str) -> float: ...
    def peek(self, key: str, limits: tuple[Limit, ...], tokens: int) -> float: ...
    def close(self) -> None: ...


def cost_of(limit: Limit, tokens: int) -> int:
    """Units one request with ``tokens`` tokens uses of ``limit``."""
    return 1 if limit.unit == "requests" else tokens


@dataclass
class _Window:
    limit: Limit
    entries: deque[list[object]] = field(default_factory=deque)  # [ts, amount, id]
    by_id: dict[str, list[object]] = field(default_factory=dict)
    total: float = 0.0

    def expire(self, now: float) -> None:
        horizon = now - self.limit.period
        entries = self.entries
        while entries and float(entries[0][0]) <= horizon:  # type: ignore[arg-type]
            _, amount, rid = entries.popleft()
            self.total -= float(amount)  # type: ignore[arg-type]
            self.by_id.pop(str(rid), None)
        if not entries:
            self.total = 0.0

    def wait_for(self, cost: int, capacity: float, now: float) -> float:
        """Seconds until ``cost`` more units fit (0 if they fit now)."""
        if self.total + cost <= capacity or self.total <= 0:
            return 0.0
        need = self.total + cost - capacity
        freed = 0.0
        for ts, amount, _ in self.entries:
            freed += float(amount)  # type: ignore[arg-type]
            if freed >= need - 1e-9:
                return max(0.0, float(ts) + self.limit.period - now)  # type: ignore[arg-type]
        # Only an empty window fits a request larger than the (scaled-down) capacity.
        last_ts = float(self.entries[-1][0])  # type: ignore[arg-type]
        return max(0.0, last_ts + self.limit.period - now)

    def add(self, now: float, amount: float, rid: str) -> None:
        if amount <= 0 and self.limit.unit == "tokens":
            entry: list[object] = [now, 0.0, rid]
        else:
            entry = [now, float(amount), rid]
        self.entries.append(entry)
        self.by_id[rid] = entry
        self.total += float(amount)


class MemoryBackend:
    """Exact sliding windows in this process (``memory://``); thread-safe.

    ``clock`` gives monotonic seconds (``time.monotonic`` by default; tests pass a fake one).
    """

    def __init__(
        self,
        adaptive: AdaptiveConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, Limit], _Window] = {}
        self._adaptive: dict[str, AdaptiveState] = {}
        self.adaptive_config = adaptive or AdaptiveConfig()

    def now(self) -> float:
        return self._clock()

    def _window(self, key: str, limit: Limit) -> _Window:
        window = self._windows.get((key, limit))
        if window is None:
            window = self._windows[(key, limit)] = _Window(limit)
        return window

    def _capacity(self, key: str, limit: Limit, now: float) -> float:
        state = self._adaptive.get(key)
        if state is None:
            return limit.amount
        return limit.amount * state.scale(limit.unit, now, self.adaptive_config)

    def reserve(self, key: str, limits: tuple[Limit, ...], tokens: int) -> Decision:
        with self._lock:
            now = self.now()
            state = self._adaptive.get(key)
            wait = 0.0
            if state is not None and state.paused_until > now:
                wait = state.paused_until - now
            windows = [self._window(key, limit) for limit in limits]
            for window in windows:
                window.expire(now)
                capacity = self._capacity(key, window.limit, now)
                wait = max(wait, window.wait_for(cost_of(window.limit, tokens), capacity, now))
            if wait > 0:
                return Decision(False, wait)
            rid = uuid.uuid4().hex
            for window in windows:
                window.add(now, cost_of(window.limit, tokens), rid)
            return Decision(True, 0.0, rid)

    async def areserve(self, key: str, limits: tuple[Limit, ...], tokens: int) -> Decision:
        return self.reserve(key, limits, tokens)

    def peek(self, key: str, limits: tuple[Limit, ...], tokens: int) -> float:
        """Seconds until a request of ``tokens`` would fit (0.0: now); records nothing."""
        with self._lock:
            now = self.now()
            state = self._adaptive.get(key)
            wait = 0.0
            if state is not None and state.paused_until > now:
                wait = state.paused_until - now
            for limit in limits:
                window = self._windows.get((key, limit))
                if window is None:
                    continue
                window.expire(now)
                capacity = self._capacity(key, limit, now)
                wait = max(wait, window.wait_for(cost_of(limit, tokens), capacity, now))
            return wait

    def adjust(
        self, key: str, limits: tuple[Limit, ...], rid: str, delta: int, restamp: bool
    ) -> None:
        with self._lock:
            now = self.now()
            for limit in limits:
                window = self._windows.get((key, limit))
                entry = None if window is None else window.by_id.get(rid)
                if window is None or entry is None:
                    continue
                old_amount = float(entry[1])  # type: ignore[arg-type]
                new_amount = old_amount
                if limit.unit == "tokens":
                    new_amount = max(0.0, old_amount + delta)
                if restamp:
                    # Count the request from now: the old entry becomes an empty shell.
                    entry[1] = 0.0
                    window.total -= old_amount
                    window.add(now, new_amount, rid)
                else:
                    window.total += new_amount - old_amount
                    entry[1] = new_amount

    async def aadjust(
        self, key: str, limits: tuple[Limit, ...], rid: str, delta: int, restamp: bool
    ) -> None:
        self.adjust(key, limits, rid, delta, restamp)

    def release(self, key: str, limits: tuple[Limit, ...], rid: str) -> None:
        with self._lock:
            for limit in limits:
                window = self._windows.get((key, limit))
                entry = None if window is None else window.by_id.pop(rid, None)
                if window is None or entry is None:
                    continue
                window.total -= float(entry[1])  # type: ignore[arg-type]
                # A released entry no longer counts; its empty shell expires with the window.
                entry[1] = 0.0

    async def arelease(self, key: str, limits: tuple[Limit, ...], rid: str) -> None:
        self.release(key, limits, rid)

    def observe(self, key: str, limits: tuple[Limit, ...], obs: Observation) -> None:
        if not self.adaptive_config.enabled:
            return
        with self._lock:
            state = self._adaptive.setdefault(key, AdaptiveState())
            apply_observation(state, obs, limits, self.now(), self.adaptive_config)

    async def aobserve(self, key: str, limits: tuple[Limit, ...], obs: Observation) -> None:
        self.observe(key, limits, obs)

    def usage(self, key: str, limits: tuple[Limit, ...]) -> list[WindowUsage]:
        with self._lock:
            now = self.now()
            out = []
            for limit in limits:
                window = self._window(key, limit)
                window.expire(now)
                out.append(WindowUsage(limit, window.total, self._capacity(key, limit, now)))
            return out

    def paused_for(self, key: str) -> float:
        with self._lock:
            state = self._adaptive.get(key)
            return 0.0 if state is None else max(0.0, state.paused_until - self.now())

    def close(self) -> None:
        """Nothing to close for the in-memory backend."""

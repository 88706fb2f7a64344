"""``RequestQueue``: a priority queue of pending requests that measures its own waits.

The roadmap's ``RequestQueue`` (``enqueue`` / ``dequeue`` / length / estimated, average wait
and throughput). The rate limiter queues its own waiters; this queue is for callers that
hold work items themselves (a worker pool pulling jobs, a batch feeder) and want the same
priority rules: named or numeric priorities (smaller first), FIFO inside a priority, and
aging so a low-priority item is never starved by a steady stream of high-priority ones.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from aipowertools.core.errors import ConfigurationError
from aipowertools.resilience._limits import Priority, priority_value

T = TypeVar("T")


@dataclass(frozen=True)
class RequestQueueStats:
    """What ``RequestQueue.stats()`` returns.

    Attributes:
        length: Items waiting now.
        enqueued: Items ever enqueued.
        dequeued: Items ever dequeued.
        average_wait_s: Mean time the items dequeued in the last ``window`` seconds waited
            (0.0 when none were).
        throughput_per_s: Items dequeued per second over the last ``window`` seconds (or
            since the queue was created, when that is shorter).
        estimated_wait_s: How long a new item would wait at that throughput (``length /
            throughput_per_s``); ``None`` while nothing has been dequeued to measure it.
    """

    length: int
    enqueued: int
    dequeued: int
    average_wait_s: float
    throughput_per_s: float
    estimated_wait_s: float | None


class RequestQueue(Generic[T]):
    """Thread-safe priority queue with aging, measuring wait times and throughput.

    Args:
        aging_seconds: An item's priority improves by one step per this many seconds waited
            (0: no aging).
        window: Seconds of recent dequeues that average wait and throughput cover.
        clock: Monotonic seconds (tests inject a fake clock).

    Example:
        >>> queue: RequestQueue[str] = RequestQueue()
        >>> queue.enqueue("summarise", priority="low")
        >>> queue.enqueue("answer the user", priority="high")
        >>> queue.dequeue()
        'answer the user'
        >>> len(queue)
        1
    """

    def __init__(
        self,
        *,
        aging_seconds: float = 10.0,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (isinstance(aging_seconds, int | float) and math.isfinite(aging_seconds)) or (
            aging_seconds < 0
        ):
            raise ConfigurationError(f"aging_seconds must be >= 0, got {aging_seconds!r}")
        if not (isinstance(window, int | float) and math.isfinite(window) and window > 0):
            raise ConfigurationError(f"window must be > 0 seconds, got {window!r}")
        self.aging_seconds = float(aging_seconds)
        self.window = float(window)
        self._clock = clock
        self._lock = threading.Lock()
        self._levels: dict[float, deque[tuple[float, T]]] = {}
        self._length = 0
        self._started = clock()
        self._recent: deque[tuple[float, float]] = deque()  # (dequeued at, waited)
        self._recent_wait = 0.0
        self.enqueued = 0
        self.dequeued = 0

    def __len__(self) -> int:
        return self._length

    def enqueue(self, item: T, priority: Priority = "normal") -> None:
        """Add ``item``; ``priority`` is ``"critical"``, ``"high"``, ``"normal"``, ``"low"``
        or a number (smaller is served first)."""
        value = priority_value(priority)
        with self._lock:
            self._levels.setdefault(value, deque()).append((self._clock(), item))
            self._length += 1
            self.enqueued += 1

    def dequeue(self) -> T | None:
        """Take the next item (best aged priority, then oldest); ``None`` when empty."""
        with self._lock:
            now = self._clock()
            best: float | None = None
            best_score = 0.0
            best_at = 0.0
            for value, items in self._levels.items():
                at = items[0][0]
                score = value
                if self.aging_seconds > 0:
                    score -= (now - at) / self.aging_seconds
                if best is None or score < best_score or (score == best_score and at < best_at):
                    best, best_score, best_at = value, score, at
            if best is None:
                return None
            items = self._levels[best]
            at, item = items.popleft()
            if not items:
                del self._levels[best]
            self._length -= 1
            self.dequeued += 1
            waited = max(0.0, now - at)
            self._recent.append((now, waited))
            self._recent_wait += waited
            self._trim(now)
            return item

    def _trim(self, now: float) -> None:
        horizon = now - self.window
        while self._recent and self._recent[0][0] <= horizon:
            self._recent_wait -= self._recent.popleft()[1]
        if not self._recent:
            self._recent_wait = 0.0

    def stats(self) -> RequestQueueStats:
        """Length, counts, average wait, throughput and estimated wait (see the fields)."""
        with self._lock:
            now = self._clock()
            self._trim(now)
            count = len(self._recent)
            span = min(self.window, now - self._started)
            throughput = count / span if count and span > 0 else 0.0
            return RequestQueueStats(
                length=self._length,
                enqueued=self.enqueued,
                dequeued=self.dequeued,
                average_wait_s=self._recent_wait / count if count else 0.0,
                throughput_per_s=throughput,
                estimated_wait_s=self._length / throughput if throughput > 0 else None,
            )

"""The waiting room of one limiter key: priority levels with aging, round-robin per user.

One scheduler task per key serves the head of this queue; waiters never poll. Choosing the head
is ``O(levels)``: each level is a FIFO of users served round-robin, and a level's effective
priority improves by one step per ``aging_seconds`` its head has waited, so a low-priority
request is never starved by a steady stream of high-priority ones.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from dataclasses import dataclass, field


@dataclass(eq=False)
class Waiter:
    """One queued request."""

    future: asyncio.Future[str]
    tokens: int
    priority: float
    user: str | None
    enqueued: float


@dataclass
class _Level:
    users: OrderedDict[str | None, deque[Waiter]] = field(default_factory=OrderedDict)

    def head(self) -> Waiter | None:
        while self.users:
            user, waiters = next(iter(self.users.items()))
            while waiters and waiters[0].future.done():
                waiters.popleft()
            if waiters:
                return waiters[0]
            del self.users[user]
        return None

    def pop_head(self) -> None:
        user, waiters = next(iter(self.users.items()))
        waiters.popleft()
        if waiters:
            self.users.move_to_end(user)  # round-robin: next user's turn
        else:
            del self.users[user]


class WaitQueue:
    """Priority levels with aging and per-user round-robin."""

    def __init__(self, aging_seconds: float) -> None:
        self.aging_seconds = aging_seconds
        self._levels: dict[float, _Level] = {}
        self.pending: dict[float, int] = {}
        self.pending_tokens = 0

    def __len__(self) -> int:
        return sum(self.pending.values())

    def push(self, waiter: Waiter) -> None:
        level = self._levels.get(waiter.priority)
        if level is None:
            level = self._levels[waiter.priority] = _Level()
        level.users.setdefault(waiter.user, deque()).append(waiter)
        self.pending[waiter.priority] = self.pending.get(waiter.priority, 0) + 1
        self.pending_tokens += waiter.tokens

    def forget(self, waiter: Waiter) -> None:
        """Account for a waiter that left (admitted or cancelled)."""
        left = self.pending.get(waiter.priority, 0) - 1
        if left > 0:
            self.pending[waiter.priority] = left
        else:
            self.pending.pop(waiter.priority, None)
        self.pending_tokens -= waiter.tokens

    def effective(self, waiter: Waiter, now: float) -> float:
        if self.aging_seconds <= 0:
            return waiter.priority
        return waiter.priority - (now - waiter.enqueued) / self.aging_seconds

    def head(self, now: float) -> Waiter | None:
        best: Waiter | None = None
        best_score = 0.0
        empty: list[float] = []
        for value, level in self._levels.items():
            waiter = level.head()
            if waiter is None:
                empty.append(value)
                continue
            score = self.effective(waiter, now)
            if (
                best is None
                or score < best_score
                or (score == best_score and waiter.enqueued < best.enqueued)
            ):
                best, best_score = waiter, score
        for value in empty:
            del self._levels[value]
        return best

    def pop(self, waiter: Waiter) -> None:
        self._levels[waiter.priority].pop_head()
        self.forget(waiter)

"""Deterministic fault plans and sliding-window rate limits, one of each per simulated model."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable

from aipowertools.testing._config import Fault, FaultKind, SimModel

__all__ = ["FaultPlan", "RateWindow"]


class FaultPlan:
    """Which fault (if any) the next request to one model gets.

    Scheduled entries come first (``None`` entries let a request through); then, for models
    with fault rates, one draw from a generator seeded with ``f"{seed}:{model name}"``, so the
    same seed and the same request order give the same fault sequence.
    """

    def __init__(self, seed: int, model: SimModel) -> None:
        self._rng = random.Random(f"{seed}:{model.name}")
        self._rates: list[tuple[FaultKind, float]] = [
            (FaultKind(k), float(v)) for k, v in model.fault_rates.items() if v > 0
        ]
        self.queue: deque[Fault | None] = deque()

    def schedule(self, faults: Iterable[Fault | None]) -> None:
        self.queue.extend(faults)

    def next(self) -> tuple[bool, Fault | None]:
        """``(decided, fault)``: ``decided`` is False when nothing was scheduled or drawn."""
        if self.queue:
            return True, self.queue.popleft()
        if not self._rates:
            return False, None
        draw = self._rng.random()
        edge = 0.0
        for kind, rate in self._rates:
            edge += rate
            if draw < edge:
                return True, Fault(kind)
        return True, None


class RateWindow:
    """Sliding-window request and token limits (the provider's own rate limiter)."""

    def __init__(
        self, rpm: int | None, tpm: int | None, window_s: float, sub_window_s: float | None = None
    ) -> None:
        self.rpm = rpm
        self.tpm = tpm
        self.window_s = window_s
        self._events: deque[tuple[float, int]] = deque()
        self._tokens = 0
        # Providers enforce per-minute limits over shorter windows too: the pro-rata share of
        # each limit in any ``sub_window_s`` (at least 1 request).
        self.sub_window_s = sub_window_s if sub_window_s and sub_window_s < window_s else None
        share = (self.sub_window_s or window_s) / window_s
        self.sub_rpm = None if rpm is None else max(1, int(rpm * share))
        self.sub_tpm = None if tpm is None else max(1, int(tpm * share))

    def _prune(self, now: float) -> None:
        edge = now - self.window_s
        while self._events and self._events[0][0] <= edge:
            self._tokens -= self._events.popleft()[1]

    def check(self, now: float, tokens: int) -> tuple[str, float] | None:
        """None if ``tokens`` more fit, else (``"requests"`` or ``"tokens"``, retry-after s)."""
        self._prune(now)
        if self.rpm is not None and len(self._events) >= self.rpm:
            return "requests", self._events[0][0] + self.window_s - now
        if self.sub_window_s is not None:
            limited = self._check_sub(now, tokens, self.sub_window_s)
            if limited is not None:
                return limited
        if self.tpm is not None and self._tokens + tokens > self.tpm:
            freed = 0
            for started, used in self._events:
                freed += used
                if self._tokens - freed + tokens <= self.tpm:
                    return "tokens", started + self.window_s - now
            return "tokens", self.window_s
        return None

    def _check_sub(self, now: float, tokens: int, sub: float) -> tuple[str, float] | None:
        edge = now - sub
        recent = [(t, n) for t, n in self._events if t > edge]
        if self.sub_rpm is not None and len(recent) >= self.sub_rpm:
            return "requests", recent[0][0] + sub - now
        if (
            self.sub_tpm is not None
            and recent
            and sum(n for _, n in recent) + tokens > self.sub_tpm
        ):
            return "tokens", recent[0][0] + sub - now
        return None

    def add(self, now: float, tokens: int) -> None:
        self._events.append((now, tokens))
        self._tokens += tokens

    def headers(self, now: float, prefix: str) -> dict[str, str]:
        """Rate-limit headers in the provider's naming (``x-ratelimit-`` style)."""
        self._prune(now)
        reset = (self._events[0][0] + self.window_s - now) if self._events else 0.0
        out: dict[str, str] = {}
        if self.rpm is not None:
            out[f"{prefix}limit-requests"] = str(self.rpm)
            out[f"{prefix}remaining-requests"] = str(max(0, self.rpm - len(self._events)))
            out[f"{prefix}reset-requests"] = duration_text(reset)
        if self.tpm is not None:
            out[f"{prefix}limit-tokens"] = str(self.tpm)
            out[f"{prefix}remaining-tokens"] = str(max(0, self.tpm - self._tokens))
            out[f"{prefix}reset-tokens"] = duration_text(reset)
        return out


def duration_text(seconds: float) -> str:
    """OpenAI's reset format: ``"1m30s"``, ``"250ms"``, ``"6s"``."""
    seconds = max(0.0, seconds)
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    minutes, rest = divmod(seconds, 60)
    rest_text = f"{rest:.3f}".rstrip("0").rstrip(".")
    return f"{int(minutes)}m{rest_text}s" if minutes else f"{rest_text}s"

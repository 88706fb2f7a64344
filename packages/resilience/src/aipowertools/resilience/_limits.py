"""Limit definitions: how many requests or tokens per period, and priority names."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from aipowertools.core.errors import ConfigurationError

Unit = Literal["requests", "tokens"]

PERIODS: Mapping[str, float] = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}

#: Named priorities; smaller runs first (numbers are accepted too, any float).
PRIORITIES: Mapping[str, float] = {"critical": -1.0, "high": 0.0, "normal": 1.0, "low": 2.0}

Priority = str | float | int


@dataclass(frozen=True)
class Limit:
    """At most ``amount`` requests or tokens in any sliding window of ``period`` seconds.

    Example:
        >>> Limit("tokens", 90_000, 60.0).name
        'tokens_per_60s'
    """

    unit: Unit
    amount: float
    period: float

    def __post_init__(self) -> None:
        if self.unit not in ("requests", "tokens"):
            raise ConfigurationError(
                f"limit unit must be 'requests' or 'tokens', got {self.unit!r}"
            )
        if not (math.isfinite(self.amount) and self.amount > 0):
            raise ConfigurationError(
                f"limit amount must be a positive number, got {self.amount!r}; "
                "leave the limit out to disable it"
            )
        if not (math.isfinite(self.period) and self.period > 0):
            raise ConfigurationError(f"limit period must be positive seconds, got {self.period!r}")

    @property
    def name(self) -> str:
        """A stable name such as ``requests_per_60s`` (used in keys and stats)."""
        period = f"{self.period:g}".replace(".", "_")
        return f"{self.unit}_per_{period}s"

    @property
    def rate(self) -> float:
        """Sustained rate in units per second."""
        return self.amount / self.period


def limits_from_kwargs(
    *,
    requests_per_second: float | None = None,
    requests_per_minute: float | None = None,
    requests_per_hour: float | None = None,
    requests_per_day: float | None = None,
    tokens_per_second: float | None = None,
    tokens_per_minute: float | None = None,
    tokens_per_hour: float | None = None,
    tokens_per_day: float | None = None,
) -> tuple[Limit, ...]:
    """Build the limits named by keyword arguments (``None`` means no such limit)."""
    spec: list[tuple[Unit, str, float | None]] = [
        ("requests", "second", requests_per_second),
        ("requests", "minute", requests_per_minute),
        ("requests", "hour", requests_per_hour),
        ("requests", "day", requests_per_day),
        ("tokens", "second", tokens_per_second),
        ("tokens", "minute", tokens_per_minute),
        ("tokens", "hour", tokens_per_hour),
        ("tokens", "day", tokens_per_day),
    ]
    out: list[Limit] = []
    for unit, period, amount in spec:
        if amount is None:
            continue
        if isinstance(amount, bool) or not isinstance(amount, int | float):
            raise ConfigurationError(
                f"{unit}_per_{period} must be a number, got {type(amount).__name__}"
            )
        out.append(Limit(unit, float(amount), PERIODS[period]))
    return tuple(out)


def smoothed(limits: tuple[Limit, ...], burst: float | None) -> tuple[Limit, ...]:
    """``limits`` plus, for each request limit, a pacing window (a token bucket of ``burst``).

    ``requests_per_minute=600`` with ``burst=1`` also holds at most 1 request in any 0.1 s:
    calls are spaced evenly at the sustained rate from a cold start, so a provider that
    enforces its per-minute limit over shorter windows (600/min as 10 in any second) never
    sees a burst above its share. ``burst=10`` lets 10 go at once, then paces. ``None`` keeps
    the strict sliding windows only. Token limits keep their sliding window alone: one
    request may need more tokens than a pacing slot.
    """
    if burst is None:
        return limits
    out = list(limits)
    for limit in limits:
        if limit.unit == "requests" and limit.amount > burst:
            share = Limit("requests", float(burst), burst / limit.rate)
            if share not in out:
                out.append(share)
    return tuple(out)


def priority_value(priority: Priority) -> float:
    """Turn ``"high"`` / ``"normal"`` / ``"low"`` / ``"critical"`` or a number into a float."""
    if isinstance(priority, bool):
        raise ConfigurationError("priority must be a name or a number, not a bool")
    if isinstance(priority, int | float):
        if not math.isfinite(priority):
            raise ConfigurationError(f"priority must be finite, got {priority!r}")
        return float(priority)
    if isinstance(priority, str):
        try:
            return PRIORITIES[priority.lower()]
        except KeyError:
            names = ", ".join(sorted(PRIORITIES))
            raise ConfigurationError(
                f"unknown priority {priority!r}; use one of {names} or a number "
                "(smaller runs first)"
            ) from None
    raise ConfigurationError(f"priority must be a name or a number, got {type(priority).__name__}")


def priority_label(value: float) -> str:
    """The name of a priority value when it has one, else the number as text."""
    for name, v in PRIORITIES.items():
        if v == value:
            return name
    return f"{value:g}"

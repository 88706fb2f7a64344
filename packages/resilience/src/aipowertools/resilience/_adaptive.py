"""Adaptive limits: learn from 429 answers and ``x-ratelimit-*`` headers, recover gradually.

The state is tiny and backend-neutral: per limiter key, a pause deadline and, per unit
("requests", "tokens"), a scale in ``(0, 1]`` applied to the configured limits. A scale learned
from an explicit limit header is *sticky* (the provider told us its limit); a scale lowered after
a bare 429 recovers linearly at ``recovery_per_second`` until it is back at 1.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aipowertools.resilience._limits import Limit, Unit

_DURATION = re.compile(r"(?P<num>\d+(?:\.\d+)?)(?P<unit>ms|h|m|s)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class AdaptiveConfig:
    """How the limiter reacts to rate-limit answers.

    Attributes:
        enabled: Learn at all.
        decrease: Multiply the current scale by this after a 429 without a limit header.
        min_scale: Never go below this fraction of the configured limit.
        recovery_per_second: After a bare 429, the scale grows back by this much per second.
        header_period: Period in seconds of the provider's ``x-ratelimit-limit-*`` values
            (OpenAI and Anthropic report per-minute limits).
        learned_fraction: Use this fraction of a limit the provider reported, leaving room
            for the delay between our admission and the provider's count.
    """

    enabled: bool = True
    decrease: float = 0.5
    min_scale: float = 0.05
    recovery_per_second: float = 0.005
    header_period: float = 60.0
    learned_fraction: float = 0.95


@dataclass
class UnitScale:
    """The learned scale for one unit."""

    scale: float = 1.0
    set_at: float = 0.0
    sticky: bool = False

    def effective(self, now: float, recovery_per_second: float) -> float:
        """The scale now, after linear recovery (sticky scales do not recover)."""
        if self.sticky or self.scale >= 1.0:
            return min(self.scale, 1.0)
        return min(1.0, self.scale + recovery_per_second * max(0.0, now - self.set_at))


@dataclass
class AdaptiveState:
    """Learned state of one key."""

    paused_until: float = 0.0
    units: dict[str, UnitScale] = field(default_factory=dict)

    def scale(self, unit: str, now: float, config: AdaptiveConfig) -> float:
        """Effective scale for ``unit``."""
        state = self.units.get(unit)
        return 1.0 if state is None else state.effective(now, config.recovery_per_second)


@dataclass(frozen=True)
class Observation:
    """What one rate-limit answer told us.

    Attributes:
        retry_after: Seconds to wait before the next request, if given.
        limits: Limits reported by the provider per unit (per ``header_period``).
        resets: Seconds until the window resets per unit, when ``remaining`` is 0.
        rate_limited: Whether the answer was a 429 (a bare 429 lowers the scale).
    """

    retry_after: float | None = None
    limits: Mapping[str, float] = field(default_factory=dict)
    resets: Mapping[str, float] = field(default_factory=dict)
    rate_limited: bool = True


def parse_duration(value: str) -> float | None:
    """Parse ``"1s"``, ``"6m0s"``, ``"20ms"``, ``"1.5"`` or an HTTP date into seconds."""
    text = value.strip()
    if not text:
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if parts and "".join(n + u for n, u in parts) == text:
        return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        when = None
    if when is not None:
        return max(0.0, when.timestamp() - time.time())
    try:
        from datetime import datetime

        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return max(0.0, stamp.timestamp() - time.time())


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def parse_headers(
    headers: Mapping[str, str], *, rate_limited: bool, retry_after: float | None = None
) -> Observation:
    """Read ``Retry-After`` and OpenAI / Anthropic style rate-limit headers."""
    h = {str(k).lower(): str(v) for k, v in headers.items()}
    if retry_after is None:
        if "retry-after-ms" in h:
            ms = _number(h["retry-after-ms"])
            retry_after = None if ms is None else ms / 1000.0
        elif "retry-after" in h:
            retry_after = parse_duration(h["retry-after"])
    limits: dict[str, float] = {}
    resets: dict[str, float] = {}
    for unit in ("requests", "tokens"):
        limit = _number(h.get(f"x-ratelimit-limit-{unit}"))
        if limit is None:
            limit = _number(h.get(f"anthropic-ratelimit-{unit}-limit"))
        if limit is not None and limit > 0:
            limits[unit] = limit
        remaining = _number(h.get(f"x-ratelimit-remaining-{unit}"))
        reset = h.get(f"x-ratelimit-reset-{unit}")
        if remaining is None:
            remaining = _number(h.get(f"anthropic-ratelimit-{unit}-remaining"))
            reset = h.get(f"anthropic-ratelimit-{unit}-reset")
        if remaining is not None and remaining <= 0 and reset is not None:
            seconds = parse_duration(reset)
            if seconds is not None:
                resets[unit] = seconds
    return Observation(
        retry_after=retry_after, limits=limits, resets=resets, rate_limited=rate_limited
    )


def headers_of(exc: BaseException) -> dict[str, str]:
    """Find HTTP response headers on an exception or its causes (httpx / openai / litellm)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for owner in (current, getattr(current, "response", None)):
            headers: Any = getattr(owner, "headers", None)
            if headers is not None and hasattr(headers, "items"):
                try:
                    return {str(k): str(v) for k, v in headers.items()}
                except Exception:  # pragma: no cover - exotic header objects
                    continue
        current = current.__cause__ or current.__context__
    return {}


def apply_observation(
    state: AdaptiveState,
    obs: Observation,
    limits: tuple[Limit, ...],
    now: float,
    config: AdaptiveConfig,
) -> None:
    """Update ``state`` in place with one observation (local backend; Redis mirrors it in Lua)."""
    pause = max([obs.retry_after or 0.0, *obs.resets.values()])
    if pause > 0:
        state.paused_until = max(state.paused_until, now + pause)
    for unit, new_scale, sticky in plan_scales(obs, limits, config):
        if new_scale is None:  # a bare 429: multiplicative decrease of the current scale
            current = state.scale(unit, now, config)
            new_scale = max(config.min_scale, current * config.decrease)
        state.units[unit] = UnitScale(scale=new_scale, set_at=now, sticky=sticky)


def plan_scales(
    obs: Observation, limits: tuple[Limit, ...], config: AdaptiveConfig
) -> list[tuple[Unit, float | None, bool]]:
    """Which unit scales an observation sets: ``(unit, scale or None to decrease, sticky)``."""
    out: list[tuple[Unit, float | None, bool]] = []
    units: tuple[Unit, ...] = ("requests", "tokens")
    for unit in units:
        mine = [lim for lim in limits if lim.unit == unit]
        if not mine:
            continue
        if unit in obs.limits:
            told_rate = obs.limits[unit] * config.learned_fraction / config.header_period
            scale = min(told_rate / lim.rate for lim in mine)
            out.append((unit, max(config.min_scale, min(1.0, scale)), scale < 1.0))
        elif obs.rate_limited and not obs.limits:
            out.append((unit, None, False))
    return out

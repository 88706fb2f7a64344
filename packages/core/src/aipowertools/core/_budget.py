"""Budget limits, reservations and soft-limit alerts (the rules; backends keep the numbers)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from aipowertools.core._errors import ConfigurationError
from aipowertools.core._ledger import (
    PERIODS,
    Check,
    Period,
    Threshold,
    bucket_key,
    call_scopes,
    from_nanos,
    to_nanos,
)

logger = logging.getLogger("aipowertools.core")

_SCOPE_KINDS = ("user", "task", "tag")


def check_scope(scope: str) -> str:
    """Validate a budget scope: ``global``, ``user:<id>``, ``task:<name>``, ``tag:<tag>``.

    ``user:*`` (and ``task:*``, ``tag:*``) means "each user (task, tag) separately".
    """
    kind, sep, name = scope.partition(":")
    if scope == "global" or (sep and kind in _SCOPE_KINDS and name and "|" not in name):
        return scope
    raise ConfigurationError(
        f"budget scope {scope!r} is not valid; use 'global', 'user:<id>', 'task:<name>' or "
        "'tag:<project>' (or 'user:*', 'task:*', 'tag:*' for one limit each)."
    )


def usd(value: object, what: str) -> float:
    """``value`` as a finite, non-negative USD amount, or a ConfigurationError naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(
            f"{what} must be a number of USD >= 0, got {type(value).__name__} {value!r}"
        )
    if not 0 <= value < float("inf"):
        raise ConfigurationError(f"{what} must be >= 0 and finite (USD), got {value!r}")
    return float(value)


def tag_tuple(tags: str | Iterable[str]) -> tuple[str, ...]:
    """Project tags as a tuple; a lone string is one tag, never a tuple of its characters."""
    if isinstance(tags, str):
        return (tags,) if tags else ()
    try:
        out = tuple(tags)
    except TypeError:
        raise ConfigurationError(
            f"tags must be a string or a list of strings, got {type(tags).__name__} {tags!r}"
        ) from None
    bad = [t for t in out if not isinstance(t, str)]
    if bad:
        raise ConfigurationError(f"tags must be strings, got {bad!r}; e.g. tags=('project-x',)")
    return out


def _check_period(period: str) -> Period:
    if period not in PERIODS:
        raise ConfigurationError(
            f"budget period {period!r} is not valid; use 'day', 'month' or 'total' (UTC)."
        )
    return period


@dataclass(frozen=True)
class BudgetLimit:
    """A spending limit on one scope for one period.

    Attributes:
        scope: ``"global"``, ``"user:<id>"``, ``"task:<name>"``, ``"tag:<project>"``; with
            ``*`` as the name the limit applies to each user / task / tag on its own.
        period: ``"day"`` or ``"month"`` (UTC calendar windows) or ``"total"`` (all time).
        limit_usd: the limit in US dollars.
        hard: a hard limit refuses calls (:class:`BudgetExceededError`) that could pass it;
            a soft limit only raises an alert when spend crosses it.
        alert_at_usd: spend level that raises a :class:`BudgetAlert` once per crossing (per
            period window). Defaults to ``limit_usd`` for soft limits and to none for hard ones.
    """

    scope: str
    period: Period
    limit_usd: float
    hard: bool = True
    alert_at_usd: float | None = None

    def __post_init__(self) -> None:
        check_scope(self.scope)
        _check_period(self.period)
        usd(self.limit_usd, "budget limit")
        if self.alert_at_usd is not None:
            usd(self.alert_at_usd, "alert threshold")

    @property
    def alert_level_usd(self) -> float | None:
        """Where the alert fires: ``alert_at_usd``, else the limit itself for soft limits."""
        if self.alert_at_usd is not None:
            return self.alert_at_usd
        return None if self.hard else self.limit_usd

    def applies_to(self, scopes: Iterable[str]) -> str | None:
        """The concrete scope of a call this limit applies to, if any."""
        kind, _, name = self.scope.partition(":")
        for s in scopes:
            if s == self.scope or (name == "*" and s.startswith(kind + ":")):
                return s
        return None


@dataclass(frozen=True)
class BudgetAlert:
    """Spend in ``scope`` crossed ``threshold_usd`` during ``window`` (raised once per crossing)."""

    scope: str
    period: Period
    window: str
    threshold_usd: float
    limit_usd: float
    hard: bool

    def __str__(self) -> str:
        kind = "hard" if self.hard else "soft"
        return (
            f"budget alert: spend in {self.scope!r} ({self.period} {self.window}) reached "
            f"${self.threshold_usd:.6f} ({kind} limit ${self.limit_usd:.6f})"
        )


@dataclass
class Reservation:
    """Budget held for one call until it is settled, released, or expires.

    Returned by :meth:`CostTracker.reserve`; pass it to ``settle`` or ``release``.
    """

    id: str
    amount_usd: float
    expires_at: float
    ts: float
    user: str | None = None
    task: str | None = None
    tags: tuple[str, ...] = ()
    request_id: str | None = None
    done: bool = field(default=False, compare=False)


@dataclass(frozen=True)
class _Rule:
    limit: BudgetLimit
    bucket: str
    scope: str


class Budgets:
    """The limits a tracker enforces and the alert callbacks it calls."""

    def __init__(self) -> None:
        self._limits: list[BudgetLimit] = []
        self._callbacks: list[Callable[[BudgetAlert], object]] = []
        self._lock = threading.Lock()

    @property
    def limits(self) -> tuple[BudgetLimit, ...]:
        """Every configured limit, in the order added."""
        return tuple(self._limits)

    def add(self, limit: BudgetLimit) -> BudgetLimit:
        """Add ``limit``, replacing one with the same scope, period and hardness."""
        with self._lock:
            self._limits = [
                x
                for x in self._limits
                if (x.scope, x.period, x.hard) != (limit.scope, limit.period, limit.hard)
            ]
            self._limits.append(limit)
        return limit

    def on_alert(self, callback: Callable[[BudgetAlert], object]) -> None:
        """Call ``callback(alert)`` for every alert (after it is logged)."""
        self._callbacks.append(callback)

    def rules(
        self, user: str | None, task: str | None, tags: Sequence[str], ts: float
    ) -> list[_Rule]:
        """The limits that apply to a call, each bound to its bucket for the call's time."""
        scopes = call_scopes(user, task, tags)
        out = []
        for limit in self._limits:
            scope = limit.applies_to(scopes)
            if scope is not None:
                out.append(_Rule(limit, bucket_key(scope, limit.period, ts), scope))
        return out

    def checks(self, rules: Sequence[_Rule]) -> list[Check]:
        """Hard-limit checks for a reservation."""
        return [Check(r.bucket, to_nanos(r.limit.limit_usd)) for r in rules if r.limit.hard]

    def thresholds(self, rules: Sequence[_Rule]) -> list[Threshold]:
        """Alert thresholds for a ledger write."""
        out = []
        for r in rules:
            level = r.limit.alert_level_usd
            if level is not None:
                out.append(Threshold(r.bucket, to_nanos(level)))
        return out

    def alert(self, rules: Sequence[_Rule], crossed: Sequence[Threshold]) -> list[BudgetAlert]:
        """Log and dispatch an alert for each crossed threshold; return the alerts."""
        alerts = []
        for th in crossed:
            for r in rules:
                level = r.limit.alert_level_usd
                if r.bucket == th.bucket and level is not None and to_nanos(level) == th.nanos:
                    alerts.append(
                        BudgetAlert(
                            r.scope,
                            r.limit.period,
                            th.bucket.partition("|")[2],
                            from_nanos(th.nanos),
                            r.limit.limit_usd,
                            r.limit.hard,
                        )
                    )
        for a in dict.fromkeys(alerts):
            logger.warning(
                "%s",
                a,
                extra={
                    "event": "budget_alert",
                    "scope": a.scope,
                    "period": a.period,
                    "threshold_usd": a.threshold_usd,
                    "limit_usd": a.limit_usd,
                },
            )
            for callback in list(self._callbacks):
                try:
                    callback(a)
                except Exception:  # an alert sink must never break the call being tracked
                    logger.exception("budget alert callback %r failed", callback)
        return list(dict.fromkeys(alerts))

"""Adapters from the router to core's CostTracker (money) and ProviderMonitor (latency).

Ledger keys: the attempt that answered is recorded under the request id (the id the answer
carries, so a cost callback handler recording the same answer is a no-op); every other attempt
(failed, cancelled, the losing side of a race) under its own attempt id.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

from aipowertools.core.errors import ConfigurationError
from aipowertools.router._attribution import CURRENT, Attribution
from aipowertools.router._engine import Candidate
from aipowertools.router._execute import Observer
from aipowertools.router._pricing import usage_of
from aipowertools.router._result import Attempt

_VIEW_TTL_S = 0.5


class TrackerAccounting:
    """Reserves each attempt's worst case and settles its real cost in a ``CostTracker``."""

    def __init__(self, tracker: Any) -> None:
        self.tracker = tracker
        self._view: tuple[float | None, float] = (None, 0.0)
        self._view_at = -1.0
        self._limit = self._monthly_limit()

    def _monthly_limit(self) -> float | None:
        for limit in getattr(self.tracker.budgets, "limits", ()):
            if limit.scope == "global" and limit.hard and limit.period == "month":
                return float(limit.limit_usd)
        return None

    def budget_view(self) -> tuple[float | None, float]:
        """(USD left this month or None, fraction of the monthly budget spent), cached 0.5 s."""
        now = time.monotonic()
        if now - self._view_at < _VIEW_TTL_S:
            return self._view
        self._view_at = now
        remaining = self.tracker.remaining_usd("global")
        limit = self._limit
        fraction = 0.0
        if remaining is not None and limit:
            fraction = min(1.0, max(0.0, 1.0 - remaining / limit))
        self._view = (remaining, fraction)
        return self._view

    async def reserve(
        self,
        attempt_id: str,
        candidate: Candidate,
        request_id: str,
        who: Attribution | None = None,
    ) -> Any:
        """Hold the attempt's worst-case cost (raises BudgetExceededError when it cannot).

        Free deployments (worst case $0) reserve nothing: a budget full of paid reservations
        must not stop a local model from answering.
        """
        if candidate.worst_cost_usd <= 0.0:
            return None
        who = who or CURRENT.get()
        return await self.tracker.areserve(
            candidate.worst_cost_usd,
            request_id=request_id,
            user=who.user,
            task=who.task,
            tags=_tags(who),
        )

    async def settle(
        self, token: Any, attempt: Attempt, candidate: Candidate, who: Attribution | None = None
    ) -> None:
        """Record the attempt once (cost, usage, latency, status) and settle its reservation.

        The row carries the request's user, task, session and tags (``who``, else the
        attribution of the request being routed in this context).
        """
        who = who or CURRENT.get()
        d = candidate.deployment
        write = self.tracker.arecord if token is None else partial(self.tracker.asettle, token)
        await write(
            model=d.catalog_model or d.model,
            request_id=attempt.ledger_key or attempt.attempt_id,
            usage=usage_of(attempt),
            cost_usd=attempt.cost_usd,
            cost_exact=attempt.error_kind != "cancelled",
            provider=d.provider,
            latency_ms=attempt.latency_ms,
            status="ok" if attempt.ok else (attempt.error_kind or "error"),
            user=who.user,
            task=who.task,
            session=who.session,
            tags=_tags(who),
        )
        self._view_at = -1.0


def _tags(who: Attribution) -> tuple[str, ...]:
    return ("router", *(t for t in who.tags if t != "router"))


def make_accounting(tracker: Any, budget_usd_per_month: float | None) -> TrackerAccounting | None:
    """The accounting for a router: the given tracker, or one on the default store."""
    if tracker is None and budget_usd_per_month is None:
        return None
    if tracker is None:
        from aipowertools.core import CostTracker

        tracker = CostTracker(budget_usd=budget_usd_per_month, budget_period="month")
    elif budget_usd_per_month is not None:
        tracker.add_budget(budget_usd_per_month, scope="global", period="month")
    return TrackerAccounting(tracker)


def make_observer(monitor: Any) -> tuple[Observer | None, Any]:
    """An observer feeding ``monitor`` (a ``ProviderMonitor``; a new one when None).

    ``monitor=False`` turns monitoring off. Cancelled attempts (lost races) are not fed: they
    say nothing about the deployment's health.
    """
    if monitor is False:
        return None, None
    if monitor is None or monitor is True:
        from aipowertools.core import ProviderMonitor

        monitor = ProviderMonitor()
    record = getattr(monitor, "record", None)
    if not callable(record):
        raise ConfigurationError(
            f"monitor must be a ProviderMonitor (or anything with its record() method), True "
            f"or False; got {type(monitor).__name__}"
        )

    def observe(
        deployment: str,
        latency_ms: float,
        ok: bool,
        output_tokens: int,
        kind: str | None,
        ttft_ms: float | None = None,
    ) -> None:
        if kind == "cancelled":
            return
        record(
            deployment,
            latency_ms=latency_ms,
            ttft_ms=ttft_ms,
            ok=ok,
            output_tokens=output_tokens,
            error_kind=kind,
        )

    return observe, monitor

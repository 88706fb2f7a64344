"""Report shapes built from ledger aggregates: daily report, breakdowns, trend, exports."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from aipowertools.core._budget import BudgetLimit
from aipowertools.core._errors import ConfigurationError
from aipowertools.core._forecast import MonthlyForecast, project, rate_window
from aipowertools.core._ledger import (
    FILTERABLE,
    GROUP_BY,
    Aggregate,
    GroupBy,
    LedgerBackend,
    LedgerRecord,
    Period,
    Query,
    utc_day,
    window,
    window_bounds,
)

TimeLike = dt.datetime | dt.date | float | int | str | None


def to_ts(value: TimeLike, default: float) -> float:
    """Epoch seconds of a datetime (naive means UTC), a date (its UTC midnight), a number, or
    an ISO 8601 date / datetime string (``"2026-01-31"``, ``"2026-01-31T12:00:00+00:00"``)."""
    if value is None:
        return default
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(text)
        except ValueError:
            pass
        try:
            value = dt.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
        except ValueError:
            raise ConfigurationError(
                f"cannot read the time {value!r}: use an ISO date or datetime such as "
                "'2026-01-31' or '2026-01-31T12:00:00+00:00', a datetime, a date, or epoch seconds"
            ) from None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.timestamp()
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.timezone.utc).timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise ConfigurationError(
        f"cannot read a time from {type(value).__name__} {value!r}: use a datetime, a date, "
        "epoch seconds or an ISO 8601 string such as '2026-01-31'"
    )


CSV_FIELDS = [
    "request_id",
    "time",
    "ts",
    "provider",
    "model",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_creation_tokens",
    "reasoning_tokens",
    "cost_usd",
    "cost_exact",
    "latency_ms",
    "status",
    "task",
    "user",
    "session",
    "tags",
    "trace_id",
]


@dataclass(frozen=True)
class BreakdownRow:
    """Totals for one value of the grouping field (``key``; None where the field is unset)."""

    key: str | None
    calls: int
    cost_usd: float
    input_tokens: int
    output_tokens: int
    errors: int
    share: float

    @property
    def cost_per_call(self) -> float:
        """Average cost of one call in USD."""
        return self.cost_usd / self.calls if self.calls else 0.0

    @property
    def cost_per_1k_output_tokens(self) -> float | None:
        """Efficiency: USD per 1,000 output tokens (None when no output tokens)."""
        return self.cost_usd * 1000 / self.output_tokens if self.output_tokens else None


def breakdown_rows(aggs: Iterable[Aggregate]) -> list[BreakdownRow]:
    """Rows sorted by cost, highest first, each with its share of the total."""
    items = list(aggs)
    total = sum(a.cost_usd for a in items)
    rows = [
        BreakdownRow(
            a.key,
            a.calls,
            a.cost_usd,
            a.input_tokens,
            a.output_tokens,
            a.errors,
            a.cost_usd / total if total else 0.0,
        )
        for a in items
    ]
    return sorted(rows, key=lambda r: (-r.cost_usd, r.key or ""))


@dataclass(frozen=True)
class DailyReport:
    """Spend of one UTC day.

    Attributes:
        day: ``YYYY-MM-DD`` (UTC).
        total: USD spent that day.
        task_count: tracked calls that day (failed ones included).
        remaining: what is left of the global budget in its current period (``None`` when
            the tracker has no global hard budget); never negative.
        budget_usd: that global budget.
        errors: calls that failed.
        by_task: USD per task name (``"-"`` for calls without one).
        by_model: USD per model.
    """

    day: str
    total: float
    task_count: int
    remaining: float | None
    budget_usd: float | None
    errors: int = 0
    by_task: dict[str, float] = field(default_factory=dict)
    by_model: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class TrendPoint:
    """Spend of one UTC day in a trend."""

    day: str
    cost_usd: float
    calls: int


def trend_points(aggs: Iterable[Aggregate], start: dt.date, days: int) -> list[TrendPoint]:
    """One point per day from ``start``, zero-filled where nothing was spent."""
    found = {a.key: a for a in aggs}
    out = []
    for i in range(days):
        day = (start + dt.timedelta(days=i)).isoformat()
        a = found.get(day)
        out.append(TrendPoint(day, a.cost_usd if a else 0.0, a.calls if a else 0))
    return out


def _csv_row(record: LedgerRecord) -> dict[str, object]:
    data = record.to_dict()
    data["tags"] = ";".join(record.tags)
    return {k: data[k] for k in CSV_FIELDS}


def write_csv(records: Iterable[LedgerRecord], target: str | Path | IO[str] | None) -> str | None:
    """Write records as CSV to a path or text stream, or return the CSV text for ``None``."""
    if target is None:
        buffer = io.StringIO()
        write_csv(records, buffer)
        return buffer.getvalue()
    if isinstance(target, (str, Path)):
        with open(target, "w", newline="", encoding="utf-8") as fh:
            write_csv(records, fh)
        return None
    writer = csv.DictWriter(target, fieldnames=CSV_FIELDS)
    writer.writeheader()
    for r in records:
        writer.writerow(_csv_row(r))
    return None


def write_json(records: Iterable[LedgerRecord], target: str | Path | IO[str] | None) -> str | None:
    """Write records as a JSON array to a path or text stream, or return it for ``None``."""
    text = json.dumps([r.to_dict() for r in records], indent=1)
    if target is None:
        return text
    if isinstance(target, (str, Path)):
        Path(target).write_text(text, encoding="utf-8")
    else:
        target.write(text)
    return None


def as_dict(rows: Sequence[BreakdownRow]) -> dict[str, float]:
    """``{key: cost}`` of breakdown rows, ``"-"`` standing for an unset key."""
    return {r.key if r.key is not None else "-": r.cost_usd for r in rows}


class LedgerQueries:
    """Reports over the ledger; mixed into :class:`CostTracker`."""

    _backend: LedgerBackend

    def _limits_for(
        self, scope: str, period: Period | None, hard: bool = True
    ) -> list[BudgetLimit]:
        raise NotImplementedError

    def remaining_usd(self, scope: str = "global", period: Period | None = None) -> float | None:
        raise NotImplementedError

    def _query(self, start: TimeLike, end: TimeLike, filters: Mapping[str, str]) -> Query:
        bad = set(filters) - FILTERABLE
        if bad:
            raise ConfigurationError(
                f"cannot filter by {sorted(bad)}; use any of {sorted(FILTERABLE)}"
            )
        return Query(to_ts(start, 0.0), to_ts(end, float("inf")), dict(filters))

    def get_record(self, request_id: str) -> LedgerRecord | None:
        """The ledger record of ``request_id``, if recorded."""
        return self._backend.get(request_id)

    def records(
        self, start: TimeLike = None, end: TimeLike = None, **filters: str
    ) -> list[LedgerRecord]:
        """Records in ``[start, end)`` matching equality ``filters`` (e.g. ``user="ann"``)."""
        return list(self._backend.records(self._query(start, end, filters)))

    def total_usd(self, start: TimeLike = None, end: TimeLike = None, **filters: str) -> float:
        """Total cost of the records in ``[start, end)`` matching ``filters``."""
        aggs = self._backend.aggregate(self._query(start, end, filters), None)
        return sum(a.cost_usd for a in aggs)

    def saved_usd(self, start: TimeLike = None, end: TimeLike = None, **filters: str) -> float:
        """What response-cache hits in ``[start, end)`` saved (their ``saved_usd``), in USD."""
        return sum(r.saved_usd for r in self._backend.records(self._query(start, end, filters)))

    def breakdown(
        self, by: GroupBy, start: TimeLike = None, end: TimeLike = None, **filters: str
    ) -> list[BreakdownRow]:
        """Cost, calls, tokens and efficiency per ``provider``/``model``/``task``/``user``/``day``.

        Rows come highest cost first; ``row.cost_per_1k_output_tokens`` is the efficiency.
        """
        if by not in GROUP_BY:
            raise ConfigurationError(f"cannot break costs down by {by!r}; use one of {GROUP_BY}")
        return breakdown_rows(self._backend.aggregate(self._query(start, end, filters), by))

    def cost_per_task(self, start: TimeLike = None, end: TimeLike = None) -> dict[str, float]:
        """USD per task name in ``[start, end)`` (``"-"``: calls without a task)."""
        return as_dict(self.breakdown("task", start, end))

    def cost_per_user(self, start: TimeLike = None, end: TimeLike = None) -> dict[str, float]:
        """USD per user in ``[start, end)`` (``"-"``: calls without a user)."""
        return as_dict(self.breakdown("user", start, end))

    def cost_per_tag(self, start: TimeLike = None, end: TimeLike = None) -> dict[str, float]:
        """USD per project tag in ``[start, end)``; a call with several tags counts in each."""
        out: dict[str, float] = {}
        for record in self._backend.records(self._query(start, end, {})):
            for tag in record.tags:
                out[tag] = out.get(tag, 0.0) + record.cost_usd
        return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))

    def efficiency(
        self, by: GroupBy = "model", start: TimeLike = None, end: TimeLike = None
    ) -> dict[str, float | None]:
        """USD per 1,000 output tokens per ``by`` value (None where no output tokens)."""
        return {
            r.key if r.key is not None else "-": r.cost_per_1k_output_tokens
            for r in self.breakdown(by, start, end)
        }

    def trend(self, days: int = 30, end: TimeLike = None, **filters: str) -> list[TrendPoint]:
        """Daily spend for the ``days`` UTC days ending with the day of ``end`` (default today)."""
        if days < 1:
            raise ConfigurationError(f"trend needs days >= 1, got {days!r}")
        last = dt.date.fromisoformat(utc_day(to_ts(end, time.time())))
        first = last - dt.timedelta(days=days - 1)
        query = self._query(first, last + dt.timedelta(days=1), filters)
        return trend_points(self._backend.aggregate(query, "day"), first, days)

    def export_csv(
        self,
        target: str | Path | IO[str] | None = None,
        start: TimeLike = None,
        end: TimeLike = None,
        **filters: str,
    ) -> str | None:
        """Write matching records as CSV to a path or stream; return the text if no target."""
        return write_csv(self.records(start, end, **filters), target)

    def export_json(
        self,
        target: str | Path | IO[str] | None = None,
        start: TimeLike = None,
        end: TimeLike = None,
        **filters: str,
    ) -> str | None:
        """Write matching records as a JSON array to a path or stream; return it if no target."""
        return write_json(self.records(start, end, **filters), target)

    def get_daily_report(self, day: TimeLike = None) -> DailyReport:
        """Spend of one UTC day (default today): total, calls, per task and model, remaining."""
        start, end = window_bounds("day", to_ts(day, time.time()))
        query = Query(start, end)
        by_task = breakdown_rows(self._backend.aggregate(query, "task"))
        limits = self._limits_for("global", None)
        return DailyReport(
            day=utc_day(start),
            total=sum(r.cost_usd for r in by_task),
            task_count=sum(r.calls for r in by_task),
            remaining=self.remaining_usd("global"),
            budget_usd=min(limit.limit_usd for limit in limits) if limits else None,
            errors=sum(r.errors for r in by_task),
            by_task=as_dict(by_task),
            by_model=as_dict(breakdown_rows(self._backend.aggregate(query, "model"))),
        )

    def forecast_monthly(
        self, *, lookback_days: float = 7.0, now: TimeLike = None
    ) -> MonthlyForecast:
        """Project this UTC month's spend from month-to-date spend and the recent daily rate.

        ``projected_cost = month_to_date + daily_rate x days_remaining``, where
        ``daily_rate`` is the spend of the last ``lookback_days`` (cut at the month start,
        at least one hour) per day. ``will_exceed`` compares it with the global monthly
        limit (hard, else soft).
        """
        at = to_ts(now, time.time())
        month_start, month_end = window_bounds("month", at)
        win_start, win_len = rate_window(at, month_start, lookback_days)
        limits = self._limits_for("global", "month") or self._limits_for("global", "month", False)
        return project(
            month=window("month", at)[1:],
            now=at,
            month_start=month_start,
            month_end=month_end,
            month_to_date=self.total_usd(month_start, at),
            window_spend=self.total_usd(win_start, at),
            window_length=win_len,
            limit_usd=min(limit.limit_usd for limit in limits) if limits else None,
        )

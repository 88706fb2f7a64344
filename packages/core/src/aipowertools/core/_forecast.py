"""Monthly spend forecast: month-to-date spend plus the recent daily run rate.

Method (documented in ``docs/cost-tracking.md``):

1. ``month_to_date``: spend since the start of the current UTC month.
2. ``daily_rate``: spend over the *rate window* divided by its length in days. The rate window
   is the last ``lookback_days`` (7 by default) before now, cut at the start of the month, and
   at least one hour long, so a quiet first hour of a month does not divide by almost zero.
3. ``projected_cost = month_to_date + daily_rate x days_remaining`` (days as fractions).
4. ``will_exceed`` is True when a monthly limit is known and ``projected_cost`` is above it.
"""

from __future__ import annotations

from dataclasses import dataclass

DAY = 86_400.0
MIN_WINDOW = 3_600.0


@dataclass(frozen=True)
class MonthlyForecast:
    """Projection of this UTC month's spend.

    Attributes:
        month: ``YYYY-MM``.
        month_to_date: USD spent so far this month.
        daily_rate: USD per day over the rate window.
        days_elapsed: days since the month started (fractional).
        days_remaining: days until it ends (fractional).
        projected_cost: ``month_to_date + daily_rate * days_remaining``.
        limit_usd: the global monthly budget, or None.
        will_exceed: whether ``projected_cost`` is above ``limit_usd``.
    """

    month: str
    month_to_date: float
    daily_rate: float
    days_elapsed: float
    days_remaining: float
    projected_cost: float
    limit_usd: float | None
    will_exceed: bool


def rate_window(now: float, month_start: float, lookback_days: float) -> tuple[float, float]:
    """Start and length (seconds) of the window the daily rate is measured over."""
    start = max(month_start, now - lookback_days * DAY)
    length = max(now - start, MIN_WINDOW)
    return now - length, length


def project(
    *,
    month: str,
    now: float,
    month_start: float,
    month_end: float,
    month_to_date: float,
    window_spend: float,
    window_length: float,
    limit_usd: float | None,
) -> MonthlyForecast:
    """Apply the method above to figures read from the ledger."""
    daily_rate = window_spend / (window_length / DAY)
    days_remaining = max(0.0, (month_end - now) / DAY)
    projected = month_to_date + daily_rate * days_remaining
    return MonthlyForecast(
        month=month,
        month_to_date=month_to_date,
        daily_rate=daily_rate,
        days_elapsed=(now - month_start) / DAY,
        days_remaining=days_remaining,
        projected_cost=projected,
        limit_usd=limit_usd,
        will_exceed=limit_usd is not None and projected > limit_usd,
    )

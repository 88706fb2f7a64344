from __future__ import annotations

import datetime as dt
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aipowertools.core._budget import BudgetAlert, BudgetLimit, Budgets, check_scope
from aipowertools.core._errors import ConfigurationError
from aipowertools.core._forecast import MonthlyForecast, project, rate_window
from aipowertools.core._ledger import (
    Check,
    Threshold,
    bucket_key,
    call_buckets,
    check_namespace,
    from_nanos,
    to_nanos,
    utc_day,
    window,
    window_bounds,
)

T0 = dt.datetime(2026, 2, 28, 23, 30, tzinfo=dt.timezone.utc).timestamp()


@pytest.mark.parametrize("scope", ["global", "user:ann", "task:x", "tag:proj-1", "user:*"])
def test_valid_scopes(scope: str) -> None:
    assert check_scope(scope) == scope


@pytest.mark.parametrize("scope", ["", "users:ann", "user:", "global:x", "tag:a|b", "team:x"])
def test_bad_scope_says_what_is_allowed(scope: str) -> None:
    with pytest.raises(ConfigurationError, match="'global', 'user:<id>'"):
        check_scope(scope)


def test_limit_validation() -> None:
    with pytest.raises(ConfigurationError, match="period 'week'"):
        BudgetLimit("global", "week", 1.0)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=">= 0"):
        BudgetLimit("global", "day", -1.0)
    with pytest.raises(ConfigurationError, match="alert threshold"):
        BudgetLimit("global", "day", 1.0, alert_at_usd=-2)
    with pytest.raises(ConfigurationError, match="must be >= 0"):
        BudgetLimit("global", "day", float("nan"))


def test_alert_level_defaults() -> None:
    assert BudgetLimit("global", "day", 5.0, hard=True).alert_level_usd is None
    assert BudgetLimit("global", "day", 5.0, hard=False).alert_level_usd == 5.0
    assert BudgetLimit("global", "day", 5.0, alert_at_usd=4.0).alert_level_usd == 4.0


def test_windows_are_utc_calendar_periods() -> None:
    assert window("day", T0) == "d2026-02-28"
    assert window("month", T0) == "m2026-02"
    assert window("total", T0) == "all"
    start, end = window_bounds("month", T0)
    assert end - start == 28 * 86_400
    assert (
        window_bounds("day", T0)[1] == dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc).timestamp()
    )
    assert window_bounds("total", T0)[0] == 0.0
    dec = dt.datetime(2026, 12, 5, tzinfo=dt.timezone.utc).timestamp()
    assert dt.datetime.fromtimestamp(window_bounds("month", dec)[1], dt.timezone.utc).year == 2027


def test_call_buckets_cover_each_scope_and_period_once() -> None:
    keys = call_buckets("ann", "sum", ["p", "p", "q"], T0)
    assert len(keys) == len(set(keys)) == 15
    assert "tag:q|m2026-02" in keys
    assert "user:ann|d2026-02-28" in keys
    assert call_buckets(None, None, [], T0) == [
        "global|all",
        "global|d2026-02-28",
        "global|m2026-02",
    ]


def test_nanos_round_up_so_reservations_never_hold_less() -> None:
    assert to_nanos(1e-10) == 1
    assert to_nanos(0.1) == 100_000_000
    assert from_nanos(to_nanos(12.345678901)) == pytest.approx(12.345678901)


def test_namespace_validation() -> None:
    assert check_namespace("Team_A1") == "team_a1"
    for bad in ("", "a-b", "x" * 41, "é"):
        with pytest.raises(ConfigurationError, match="namespace"):
            check_namespace(bad)


def test_rules_bind_wildcards_to_the_calls_own_scope() -> None:
    b = Budgets()
    b.add(BudgetLimit("global", "month", 100.0, alert_at_usd=80.0))
    b.add(BudgetLimit("user:*", "day", 5.0))
    b.add(BudgetLimit("user:bob", "day", 1.0))
    b.add(BudgetLimit("tag:proj", "total", 50.0, hard=False))
    rules = b.rules("ann", None, ["proj"], T0)
    assert sorted(r.bucket for r in rules) == [
        "global|m2026-02",
        "tag:proj|all",
        "user:ann|d2026-02-28",
    ]
    assert sorted(b.checks(rules), key=lambda c: c.bucket) == [
        Check("global|m2026-02", to_nanos(100.0)),
        Check("user:ann|d2026-02-28", to_nanos(5.0)),
    ]
    assert sorted(b.thresholds(rules), key=lambda t: t.bucket) == [
        Threshold("global|m2026-02", to_nanos(80.0)),
        Threshold("tag:proj|all", to_nanos(50.0)),
    ]
    assert len(b.rules("bob", None, [], T0)) == 3  # global, user:* and user:bob


def test_adding_the_same_limit_replaces_it() -> None:
    b = Budgets()
    b.add(BudgetLimit("global", "day", 1.0))
    b.add(BudgetLimit("global", "day", 2.0))
    b.add(BudgetLimit("global", "day", 3.0, hard=False))
    assert [(x.limit_usd, x.hard) for x in b.limits] == [(2.0, True), (3.0, False)]


def test_alerts_are_logged_and_sent_and_a_failing_callback_is_contained(
    caplog: pytest.LogCaptureFixture,
) -> None:
    b = Budgets()
    b.add(BudgetLimit("global", "day", 10.0, alert_at_usd=8.0))
    got: list[BudgetAlert] = []

    def broken(alert: BudgetAlert) -> None:
        raise RuntimeError("sink down")

    b.on_alert(broken)
    b.on_alert(got.append)
    rules = b.rules(None, None, [], T0)
    with caplog.at_level(logging.WARNING, logger="aipowertools.core"):
        alerts = b.alert(rules, [Threshold(bucket_key("global", "day", T0), to_nanos(8.0))])
    assert got == alerts
    (alert,) = alerts
    assert (alert.scope, alert.period, alert.window, alert.threshold_usd) == (
        "global",
        "day",
        "d2026-02-28",
        8.0,
    )
    assert "reached $8.000000 (hard limit $10.000000)" in str(alert)
    assert any(r.message.startswith("budget alert") for r in caplog.records)
    assert any("callback" in r.message and r.exc_info for r in caplog.records)


def test_forecast_method() -> None:
    month_start, month_end = window_bounds("month", T0)
    # 10 days into a 30-day month: $30 spent, $21 of it in the last 7 days -> $3/day.
    now = month_start + 10 * 86_400
    start, length = rate_window(now, month_start, 7)
    assert (now - start, length) == (7 * 86_400, 7 * 86_400)
    f = project(
        month="2026-02",
        now=now,
        month_start=month_start,
        month_end=month_start + 30 * 86_400,
        month_to_date=30.0,
        window_spend=21.0,
        window_length=length,
        limit_usd=100.0,
    )
    assert isinstance(f, MonthlyForecast)
    assert f.daily_rate == pytest.approx(3.0)
    assert f.projected_cost == pytest.approx(30.0 + 3.0 * 20)
    assert not f.will_exceed
    # Early in the month the window is cut at the month start, but never under an hour.
    assert rate_window(month_start + 60, month_start, 7) == (month_start + 60 - 3600, 3600)
    assert rate_window(month_start + 2 * 86_400, month_start, 7)[1] == 2 * 86_400
    tight = project(
        month="2026-02",
        now=now,
        month_start=month_start,
        month_end=month_end,
        month_to_date=30.0,
        window_spend=21.0,
        window_length=length,
        limit_usd=50.0,
    )
    assert tight.will_exceed


@settings(max_examples=500, deadline=None)
@given(st.floats(min_value=-86400 * 365 * 60, max_value=86400 * 365 * 300, allow_nan=False))
def test_window_names_match_the_calendar(ts: float) -> None:
    when = dt.datetime.fromtimestamp(ts, dt.timezone.utc)
    assert utc_day(ts) == when.strftime("%Y-%m-%d")
    assert window("day", ts) == when.strftime("d%Y-%m-%d")
    assert window("month", ts) == when.strftime("m%Y-%m")


def test_window_names_at_day_and_month_edges() -> None:
    midnight = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc).timestamp()
    assert window("day", midnight - 1e-6) == "d2026-02-28"
    assert window("month", midnight - 1e-6) == "m2026-02"
    assert window("day", midnight) == "d2026-03-01"
    assert window("month", midnight) == "m2026-03"
    assert utc_day(-1.0) == "1969-12-31"
    # within half a microsecond of midnight: the same rounding as datetime (and window_bounds)
    assert window("day", midnight - 3e-7) == dt.datetime.fromtimestamp(
        midnight - 3e-7, dt.timezone.utc
    ).strftime("d%Y-%m-%d")

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
import logging
import threading
import time
from pathlib import Path

import pytest

from aipowertools.core import CostTracker, Usage
from aipowertools.core._budget import BudgetAlert
from aipowertools.core._ledger import window_bounds
from aipowertools.core.errors import BudgetExceededError, ConfigurationError, StoreURLError

DAY = 86_400.0


@pytest.fixture
def tracker() -> CostTracker:
    return CostTracker(store="memory://")


def test_seed_api_sync_and_async(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIPOWERTOOLS_HOME", str(tmp_path))
    monkeypatch.delenv("AIPOWERTOOLS_STORE", raising=False)
    tracker = CostTracker(budget_usd=100.0, alert_threshold_usd=80.0)
    usage = Usage(input_tokens=1000, output_tokens=500)

    async def main() -> None:
        async with tracker.track_call(task_name="code_generation", model="gpt-4o") as span:
            span.record(usage)

    asyncio.run(main())
    with tracker.track_call(task_name="summary", model="gpt-4o-mini") as span:
        span.record(usage)
    assert (tmp_path / "ledger.db").exists()  # the embedded default store
    daily = tracker.get_daily_report()
    assert daily.task_count == 2
    assert set(daily.by_task) == {"code_generation", "summary"}
    # gpt-4o: $2.50 / 1M input, $10 / 1M output; gpt-4o-mini: $0.15 / $0.60.
    expected = 1000 * 2.5e-6 + 500 * 10e-6 + 1000 * 0.15e-6 + 500 * 0.6e-6
    assert daily.total == pytest.approx(expected, abs=1e-12)
    assert daily.remaining == pytest.approx(100.0 - expected)
    assert daily.budget_usd == 100.0
    forecast = tracker.forecast_monthly()
    assert forecast.projected_cost >= daily.total
    assert forecast.limit_usd == 100.0
    assert not forecast.will_exceed
    records = tracker.records()
    assert {r.provider for r in records} == {"openai"}
    assert all(r.cost_exact and r.latency_ms is not None for r in records)
    tracker.close()


# litellm's response types make pydantic warn about a TypedDict's ReadOnly item; not ours.
@pytest.mark.filterwarnings("ignore:.*ReadOnly.*qualifier:UserWarning")
def test_responses_of_each_framework_are_accepted(tracker: CostTracker) -> None:
    import litellm
    from langchain_core.messages import AIMessage
    from llama_index.core.base.llms.types import ChatMessage, ChatResponse

    mr = litellm.ModelResponse(
        id="chatcmpl-1",
        model="gpt-4o",
        choices=[{"message": {"role": "assistant", "content": "hi"}}],
        usage={"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30},
    )
    msg = AIMessage(
        content="hi",
        usage_metadata={"input_tokens": 10, "output_tokens": 20, "total_tokens": 30},
        response_metadata={"id": "chatcmpl-2", "model_name": "gpt-4o"},
    )
    chat = ChatResponse(
        message=ChatMessage(role="assistant", content="hi"),
        raw={
            "id": "chatcmpl-3",
            "model": "gpt-4o",
            "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30},
        },
    )
    for response in (mr, msg, chat):
        with tracker.track_call(task_name="t") as span:
            span.record(response)
    ids = sorted(r.request_id for r in tracker.records())
    assert ids == ["chatcmpl-1", "chatcmpl-2", "chatcmpl-3"]
    costs = {round(r.cost_usd, 12) for r in tracker.records()}
    assert costs == {round(10 * 2.5e-6 + 20 * 10e-6, 12)}
    # The same response recorded again (say by a callback handler) is not counted twice.
    assert not tracker.record(mr)
    assert tracker.total_usd() == pytest.approx(3 * (10 * 2.5e-6 + 20 * 10e-6))


def test_record_is_idempotent_on_request_id(tracker: CostTracker) -> None:
    assert tracker.record(model="m", provider="p", request_id="r1", cost_usd=1.0)
    assert not tracker.record(model="m", provider="p", request_id="r1", cost_usd=1.0)
    assert tracker.total_usd() == 1.0
    got = tracker.get_record("r1")
    assert got is not None
    assert got.cost_usd == 1.0


def test_record_needs_a_model_and_a_sane_cost(tracker: CostTracker) -> None:
    with pytest.raises(ConfigurationError, match="model"):
        tracker.record(cost_usd=1.0)
    with pytest.raises(ConfigurationError, match="cost_usd"):
        tracker.record(model="m", provider="p", cost_usd=-1.0)


def test_unknown_model_is_a_typed_error_not_a_silent_zero(tracker: CostTracker) -> None:
    with pytest.raises(KeyError, match="no-such-model"):
        tracker.record(model="no-such-model", usage=Usage(input_tokens=1, output_tokens=1))
    assert tracker.records() == []


def test_hard_budget_refuses_before_the_call(tracker: CostTracker) -> None:
    tracker.add_budget(1.0, period="day")
    calls = []
    with tracker.track_call(model="m", estimate_usd=0.6) as span:
        calls.append(1)
        span.record(cost_usd=0.5, model="m")
    with (
        pytest.raises(BudgetExceededError) as info,
        tracker.track_call(model="m", estimate_usd=0.6),
    ):
        calls.append(2)
    assert calls == [1]
    err = info.value
    assert (err.scope, err.limit_usd, err.requested_usd) == ("global", 1.0, 0.6)
    assert err.spent_usd == pytest.approx(0.5)
    # Without an estimate, calls go through until the budget is used up, then stop.
    with tracker.track_call(model="m") as span:
        span.record(cost_usd=0.5, model="m")
    with pytest.raises(BudgetExceededError), tracker.track_call(model="m"):
        pass
    assert tracker.remaining_usd() == 0.0


async def test_async_hard_budget(tracker: CostTracker) -> None:
    tracker.add_budget(1.0)
    async with tracker.track_call(model="m", estimate_usd=0.9) as span:
        assert tracker.reserved_usd() == pytest.approx(0.9)
        span.record(cost_usd=0.2, model="m")
    assert tracker.reserved_usd() == 0.0
    assert tracker.spent_usd() == pytest.approx(0.2)
    with pytest.raises(BudgetExceededError):
        async with tracker.track_call(model="m", estimate_usd=0.9):
            pass


def test_failed_call_releases_and_is_recorded_as_error(tracker: CostTracker) -> None:
    tracker.add_budget(1.0)
    with (
        pytest.raises(RuntimeError),
        tracker.track_call(model="m", task_name="t", estimate_usd=0.9),
    ):
        raise RuntimeError("provider down")
    assert tracker.reserved_usd() == 0.0
    (r,) = tracker.records()
    assert (r.status, r.cost_usd, r.task) == ("error", 0.0, "t")
    assert tracker.get_daily_report().errors == 1


async def test_async_failed_call_releases(tracker: CostTracker) -> None:
    tracker.add_budget(1.0)
    with pytest.raises(RuntimeError):
        async with tracker.track_call(model="m", estimate_usd=0.9):
            raise RuntimeError("boom")
    assert tracker.remaining_usd() == 1.0


def test_span_without_record_releases_and_warns(
    tracker: CostTracker, caplog: pytest.LogCaptureFixture
) -> None:
    tracker.add_budget(1.0)
    with (
        caplog.at_level(logging.WARNING, logger="aipowertools.core"),
        tracker.track_call(model="m", task_name="t", estimate_usd=0.9),
    ):
        pass
    assert "without span.record()" in caplog.text
    assert tracker.remaining_usd() == 1.0
    assert tracker.records() == []


async def test_async_span_without_record_releases(tracker: CostTracker) -> None:
    tracker.add_budget(1.0)
    async with tracker.track_call(model="m", estimate_usd=0.9):
        pass
    assert tracker.remaining_usd() == 1.0


def test_reserve_estimates_from_messages(tracker: CostTracker) -> None:
    tracker.add_budget(1.0)
    res = tracker.reserve(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], max_tokens=100
    )
    # Worst case: the prompt's tokens at the input price plus 100 output tokens at $10/1M.
    assert 100 * 10e-6 < res.amount_usd < 100 * 10e-6 + 50 * 2.5e-6
    assert tracker.release(res)
    assert not tracker.release(res)
    with pytest.raises(ConfigurationError, match="estimate_usd"):
        tracker.reserve(-1.0)


def test_settle_uses_the_reservation_scopes(tracker: CostTracker) -> None:
    tracker.add_budget(2.0, scope="user:*", period="day")
    res = tracker.reserve(1.5, user="ann", task="t", tags=("p",), request_id="req-9")
    assert tracker.remaining_usd("user:ann") == pytest.approx(0.5)
    assert tracker.remaining_usd("user:bob") == 2.0
    assert tracker.remaining_usd("task:t") is None
    with pytest.raises(BudgetExceededError) as info:
        tracker.reserve(1.0, user="ann")
    assert info.value.scope == "user:ann"
    tracker.reserve(1.0, user="bob")
    assert tracker.settle(res, model="m", provider="p", cost_usd=0.25)
    (r,) = tracker.records()
    assert (r.request_id, r.user, r.task, r.tags) == ("req-9", "ann", "t", ("p",))
    assert tracker.spent_usd("tag:p", "total") == 0.25
    assert tracker.remaining_usd("user:ann") == pytest.approx(1.75)
    # Settling a second time records nothing new and holds nothing.
    assert not tracker.settle(res, model="m", provider="p", cost_usd=0.25)


def test_reserve_waits_for_other_reservations_when_that_helps() -> None:
    # A long wait budget: the verdicts below count what happened, not how long it took.
    tracker = CostTracker(store="memory://", reserve_wait_s=30.0)
    tracker.add_budget(1.0)
    first = tracker.reserve(0.8)
    order: list[str] = []

    def settle_later() -> None:
        time.sleep(0.1)
        order.append("settled")
        tracker.settle(first, model="m", provider="p", cost_usd=0.3)

    thread = threading.Thread(target=settle_later)
    thread.start()
    second = tracker.reserve(0.6)
    order.append("reserved")
    thread.join()
    assert order == ["settled", "reserved"]  # it waited for the settle, then fit
    assert second.amount_usd == 0.6
    # Settled spend alone leaves no room: no waiting, refused at once (a wait would take
    # the whole 30 s reserve_wait_s, since nothing can ever free room).
    started = time.monotonic()
    with pytest.raises(BudgetExceededError):
        tracker.reserve(0.8)
    assert time.monotonic() - started < 15
    with pytest.raises(BudgetExceededError):
        tracker.reserve(0.2, wait_s=0.05)


async def test_areserve_waits_too() -> None:
    tracker = CostTracker(store="memory://", reserve_wait_s=30.0)  # ends at the settle
    tracker.add_budget(1.0)
    first = await tracker.areserve(0.8)

    async def settle_later() -> None:
        await asyncio.sleep(0.1)
        await tracker.asettle(first, model="m", provider="p", cost_usd=0.3)

    task = asyncio.create_task(settle_later())
    second = await tracker.areserve(0.6)
    await task
    with pytest.raises(BudgetExceededError):
        await tracker.areserve(0.8)  # 0.3 spent: can never fit, refused without waiting
    with pytest.raises(BudgetExceededError):
        await tracker.areserve(0.2, wait_s=0.0)  # would fit after `second`, but no waiting
    assert await tracker.arelease(second)
    await tracker.arecord(model="m", provider="p", cost_usd=0.1)
    assert tracker.spent_usd() == pytest.approx(0.4)


def test_expired_reservation_returns_budget(
    tracker: CostTracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aipowertools.core import _tracker

    class FakeTime:  # the tracker's epoch clock, moved by hand; waiting stays real
        monotonic = staticmethod(time.monotonic)
        sleep = staticmethod(time.sleep)

        def __init__(self) -> None:
            self.now = time.time()

        def time(self) -> float:
            return self.now

    fake = FakeTime()
    monkeypatch.setattr(_tracker, "time", fake)
    tracker.add_budget(1.0)
    tracker.reserve(0.9, ttl_s=0.05)
    with pytest.raises(BudgetExceededError):
        tracker.reserve(0.5, wait_s=0.0)
    assert tracker.sweep_expired() == 0  # not yet: however slow the machine, no time passed
    fake.now += 0.1
    assert tracker.sweep_expired() == 1
    assert tracker.reserve(0.5).amount_usd == 0.5


def test_soft_alert_fires_once_per_crossing(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[BudgetAlert] = []
    tracker = CostTracker(
        budget_usd=10.0, alert_threshold_usd=8.0, store="memory://", on_alert=seen.append
    )
    tracker.add_budget(3.0, scope="task:chat", period="day", hard=False)
    later: list[BudgetAlert] = []
    tracker.on_alert(later.append)
    with caplog.at_level(logging.WARNING, logger="aipowertools.core"):
        for i in range(5):
            tracker.record(model="m", provider="p", task="chat", cost_usd=2.0, request_id=f"r{i}")
    assert [(a.scope, a.threshold_usd, a.hard) for a in seen] == [
        ("task:chat", 3.0, False),
        ("global", 8.0, True),
    ]
    assert later == seen
    assert caplog.text.count("budget alert") == 2


def test_alert_threshold_without_budget_is_a_soft_limit() -> None:
    seen: list[BudgetAlert] = []
    tracker = CostTracker(alert_threshold_usd=1.0, store="memory://", on_alert=seen.append)
    tracker.record(model="m", provider="p", cost_usd=5.0)
    assert [a.hard for a in seen] == [False]
    assert tracker.remaining_usd() is None
    assert tracker.forecast_monthly().limit_usd == 1.0


def test_bad_settings_are_typed_errors() -> None:
    with pytest.raises(ConfigurationError, match="reservation_ttl_s"):
        CostTracker(store="memory://", reservation_ttl_s=0)
    with pytest.raises(ConfigurationError, match="reserve_wait_s"):
        CostTracker(store="memory://", reserve_wait_s=-1)
    with pytest.raises(StoreURLError, match="cost ledger cannot live"):
        CostTracker(store="diskcache:///tmp/x")
    with pytest.raises(ConfigurationError, match="namespace"):
        CostTracker(store="memory://", namespace="a b")


def test_wrong_types_are_typed_errors_not_crashes(tracker: CostTracker) -> None:
    from aipowertools.core import ModelCatalog, cost

    with pytest.raises(ConfigurationError, match="budget limit must be a number of USD"):
        CostTracker(store="memory://", budget_usd="10")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="finite"):
        CostTracker(store="memory://", budget_usd=float("inf"))
    with pytest.raises(StoreURLError, match="is a string"):
        CostTracker(store=5)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="model must be a model name"):
        tracker.record(model=5, cost_usd=1.0)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="cost_usd must be a number"):
        tracker.record(model="gpt-4o", cost_usd="1")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="estimate_usd must be a number"):
        tracker.reserve(model="gpt-4o", estimate_usd=True)
    with pytest.raises(ConfigurationError, match="named by a string"):
        cost(Usage(1, 1), None)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="named by a string"):
        ModelCatalog().get(5)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="tags must be strings"):
        tracker.record(model="gpt-4o", cost_usd=1.0, tags=(1,))  # type: ignore[arg-type]
    assert tracker.records() == []


def test_a_lone_tag_string_is_one_tag(tracker: CostTracker) -> None:
    tracker.record(model="gpt-4o", cost_usd=1.0, tags="proj-x")
    with tracker.track_call(model="gpt-4o", tags="proj-y") as span:  # type: ignore[arg-type]
        span.record(usage=Usage(10, 10))
    assert tracker.cost_per_tag() == {"proj-x": 1.0, "proj-y": pytest.approx(span_cost())}


def span_cost() -> float:
    from aipowertools.core import cost

    return cost(Usage(10, 10), "gpt-4o")


def test_time_bounds_accept_iso_strings_and_reject_nonsense(tracker: CostTracker) -> None:
    ts = dt.datetime(2026, 1, 5, 12, tzinfo=dt.timezone.utc).timestamp()
    tracker.record(model="gpt-4o", cost_usd=2.0, ts=ts)
    assert tracker.get_daily_report("2026-01-05").total == 2.0
    assert tracker.total_usd(start="2026-01-05T12:00:00Z") == 2.0
    assert tracker.total_usd(start="2026-01-05T12:00:01+00:00") == 0.0
    assert tracker.total_usd(end=str(ts + 1)) == 2.0
    with pytest.raises(ConfigurationError, match="cannot read the time 'yesterday'"):
        tracker.get_daily_report("yesterday")
    with pytest.raises(ConfigurationError, match="cannot read a time from object"):
        tracker.records(start=object())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="cannot read a time from bool"):
        tracker.total_usd(start=True)


def _seed(tracker: CostTracker, now: float) -> None:
    rows = [
        ("a", 0, "openai/gpt-4o", "ann", "chat", 1.0, 100),
        ("b", 0, "openai/gpt-4o", "bob", "chat", 2.0, 400),
        ("c", 1, "anthropic/claude", "ann", "code", 4.0, 0),
        ("d", 3, "openai/gpt-4o-mini", None, None, 8.0, 800),
    ]
    for rid, days_ago, model, user, task, cost_usd, out in rows:
        tracker.record(
            model=model,
            request_id=rid,
            user=user,
            task=task,
            cost_usd=cost_usd,
            usage=Usage(input_tokens=10, output_tokens=out),
            ts=now - days_ago * DAY,
            tags=("proj",),
        )


def test_breakdowns_efficiency_trend(tracker: CostTracker) -> None:
    now = time.time()
    _seed(tracker, now)
    by_model = tracker.breakdown("model")
    assert [r.key for r in by_model] == ["openai/gpt-4o-mini", "anthropic/claude", "openai/gpt-4o"]
    assert by_model[0].share == pytest.approx(8 / 15)
    assert {r.key: r.calls for r in tracker.breakdown("provider")} == {"openai": 3, "anthropic": 1}
    assert tracker.cost_per_user() == {"-": 8.0, "ann": 5.0, "bob": 2.0}
    assert tracker.cost_per_task(start=now - 2 * DAY) == {"code": 4.0, "chat": 3.0}
    eff = tracker.efficiency()
    assert eff["openai/gpt-4o"] == pytest.approx(3.0 * 1000 / 500)
    assert eff["anthropic/claude"] is None
    assert tracker.breakdown("model")[1].cost_per_call == 4.0
    trend = tracker.trend(days=5)
    assert [p.cost_usd for p in trend] == [0.0, 8.0, 0.0, 4.0, 3.0]
    assert trend[-1].day == dt.datetime.fromtimestamp(now, dt.timezone.utc).date().isoformat()
    assert tracker.total_usd(user="ann") == 5.0
    with pytest.raises(ConfigurationError, match="filter"):
        tracker.total_usd(colour="red")
    with pytest.raises(ConfigurationError, match="break costs down"):
        tracker.breakdown("colour")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="days"):
        tracker.trend(days=0)
    tracker.record(model="openai/x", cost_usd=0.5, tags=("proj", "beta"), ts=now)
    assert tracker.cost_per_tag() == {"proj": 15.5, "beta": 0.5}
    assert tracker.cost_per_tag(start=now + 1) == {}


def test_exports(tracker: CostTracker, tmp_path: Path) -> None:
    _seed(tracker, time.time())
    text = tracker.export_csv()
    assert text is not None
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["request_id"] for r in rows] == ["d", "c", "a", "b"]
    assert rows[0]["tags"] == "proj"
    assert rows[0]["cost_usd"] == "8.0"
    tracker.export_csv(tmp_path / "x.csv", user="ann")
    assert len((tmp_path / "x.csv").read_text().splitlines()) == 3
    data = json.loads(tracker.export_json() or "")
    assert {d["request_id"] for d in data} == {"a", "b", "c", "d"}
    assert data[0]["time"].endswith("+00:00")
    tracker.export_json(tmp_path / "x.json", model="anthropic/claude")
    assert len(json.loads((tmp_path / "x.json").read_text())) == 1
    stream = io.StringIO()
    tracker.export_json(stream)
    assert len(json.loads(stream.getvalue())) == 4


def test_daily_report_of_a_past_day_and_forecast(tracker: CostTracker) -> None:
    now = time.time()
    tracker.add_budget(20.0)
    _seed(tracker, now)
    past = tracker.get_daily_report(dt.datetime.fromtimestamp(now - DAY, dt.timezone.utc).date())
    assert (past.total, past.task_count, past.by_task, past.by_model) == (
        4.0,
        1,
        {"code": 4.0},
        {"anthropic/claude": 4.0},
    )
    month_start, _ = window_bounds("month", now)
    spent_this_month = sum(r.cost_usd for r in tracker.records(start=month_start))
    assert tracker.get_daily_report().remaining == pytest.approx(20.0 - spent_this_month)
    # Fixed clock: 10 days into the month, $15 spent in the last 7 days.
    at = dt.datetime(2026, 4, 11, tzinfo=dt.timezone.utc)
    t2 = CostTracker(store="memory://", budget_usd=50.0)
    for i in range(10):
        t2.record(
            model="m",
            provider="p",
            cost_usd=1.0 if i < 5 else 3.0,
            ts=at.timestamp() - (10 - i) * DAY + 1,
        )
    f = t2.forecast_monthly(now=at)
    assert f.month == "2026-04"
    assert f.month_to_date == pytest.approx(20.0)
    assert f.daily_rate == pytest.approx((2 * 1.0 + 5 * 3.0) / 7)
    assert f.projected_cost == pytest.approx(20.0 + f.daily_rate * 20)
    assert f.will_exceed


def test_tracker_is_a_context_manager(tmp_path: Path) -> None:
    with CostTracker(store=f"sqlite:///{tmp_path}/l.db") as t:
        t.record(model="m", provider="p", cost_usd=1.0)
    with CostTracker(store=f"sqlite:///{tmp_path}/l.db") as t:
        assert t.total_usd() == 1.0


def test_namespaces_keep_ledgers_apart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/l.db"
    a = CostTracker(store=url, namespace="a")
    b = CostTracker(store=url, namespace="b")
    a.record(model="m", provider="p", cost_usd=1.0)
    assert b.total_usd() == 0.0


def test_without_limits_nothing_is_held(tracker: CostTracker) -> None:
    res = tracker.reserve(5.0, user="ann")
    assert tracker.reserved_usd() == 0.0
    assert tracker.remaining_usd() is None
    assert tracker.settle(res, model="m", provider="p", cost_usd=1.0)
    assert tracker.get_daily_report().remaining is None


async def test_async_without_limits(tracker: CostTracker) -> None:
    res = await tracker.areserve(5.0)
    assert await tracker.asettle(res, model="m", provider="p", cost_usd=1.0)
    async with tracker.track_call(model="m", provider="p") as span:
        assert span.reservation is None
        span.record(cost_usd=0.5)
    assert span.result is not None
    assert span.result.provider == "p"
    assert tracker.total_usd() == 1.5


def test_a_record_that_cannot_be_built_releases_its_reservation(tracker: CostTracker) -> None:
    tracker.add_budget(1.0)
    res = tracker.reserve(0.9)
    with pytest.raises(ConfigurationError, match="without its usage"):
        tracker.settle(res, model="m", provider="p")
    assert tracker.reserved_usd() == 0.0
    assert tracker.records() == []
    with (
        pytest.raises(ConfigurationError, match="without its model"),
        tracker.track_call(estimate_usd=0.5) as span,
    ):
        span.record(cost_usd=0.1)
    assert tracker.reserved_usd() == 0.0


def test_cost_exact_and_naive_datetimes(tracker: CostTracker) -> None:
    when = dt.datetime(2026, 5, 1, 12, 0)  # naive: UTC
    tracker.record(model="m", provider="p", cost_usd=0.2, cost_exact=False, ts=when)
    (r,) = tracker.records(start=dt.datetime(2026, 5, 1), end=dt.datetime(2026, 5, 2))
    assert not r.cost_exact
    assert r.ts == dt.datetime(2026, 5, 1, 12, tzinfo=dt.timezone.utc).timestamp()
    assert tracker.get_daily_report(when).total == 0.2


def test_public_tracker_api_is_locked() -> None:
    import aipowertools.core as core

    tracker_names = {
        "BreakdownRow",
        "BudgetAlert",
        "BudgetLimit",
        "CallSpan",
        "CostTracker",
        "DailyReport",
        "LedgerRecord",
        "MonthlyForecast",
        "Reservation",
        "TrendPoint",
    }
    assert tracker_names <= set(core.__all__)
    methods = {n for n in dir(CostTracker) if not n.startswith("_")}
    assert methods == {
        "add_budget",
        "arecord",
        "arelease",
        "areserve",
        "asettle",
        "breakdown",
        "close",
        "cost_per_tag",
        "cost_per_task",
        "cost_per_user",
        "efficiency",
        "export_csv",
        "export_json",
        "flush_journal",
        "forecast_monthly",
        "get_daily_report",
        "get_total",
        "get_record",
        "on_alert",
        "record",
        "records",
        "release",
        "remaining_usd",
        "reserve",
        "reserved_usd",
        "saved_usd",
        "settle",
        "spent_usd",
        "sweep_expired",
        "total_usd",
        "track_call",
        "trend",
    }


def test_recording_a_failed_call_never_masks_its_exception(
    tracker: CostTracker, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> object:
        raise OSError("disk full")

    monkeypatch.setattr(tracker._backend, "write", broken)
    with pytest.raises(RuntimeError, match="provider down"), tracker.track_call(model="m"):
        raise RuntimeError("provider down")
    assert "could not record the failed call (RuntimeError: provider down)" in caplog.text
    with pytest.raises(OSError, match="disk full"), tracker.track_call(model="m") as span:
        span.record(cost_usd=0.1, model="m")


async def test_async_failed_and_cancelled_calls(
    tracker: CostTracker, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = asyncio.Event()

    async def call() -> None:
        async with tracker.track_call(model="m", provider="p", task_name="slow"):
            started.set()
            await asyncio.sleep(10)

    task = asyncio.create_task(call())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (r,) = tracker.records()
    assert (r.status, r.task) == ("cancelled", "slow")

    def broken(*args: object, **kwargs: object) -> object:
        raise OSError("disk full")

    monkeypatch.setattr(tracker._backend, "write", broken)
    with pytest.raises(RuntimeError, match="boom"):
        async with tracker.track_call(model="m"):
            raise RuntimeError("boom")
    assert "could not record the failed call" in caplog.text
    with pytest.raises(OSError, match="disk full"):
        async with tracker.track_call(model="m") as span:
            span.record(cost_usd=0.1, model="m")


def test_track_call_prices_the_model_that_answered(tmp_path) -> None:
    """A response from another model (failover) is priced at that model, not the tracked one."""
    from aipowertools.core import CostTracker, Usage, cost

    tracker = CostTracker(store="memory://")
    usage = {"prompt_tokens": 1000, "completion_tokens": 1000, "total_tokens": 2000}
    answered = {"id": "r-mini", "model": "gpt-4o-mini", "usage": usage}
    with tracker.track_call(task_name="t", model="gpt-4o") as span:
        span.record(answered)
    assert span.result is not None
    assert span.result.model == "gpt-4o-mini"
    expected = cost(Usage(input_tokens=1000, output_tokens=1000), "gpt-4o-mini")
    assert span.result.cost_usd == pytest.approx(expected, abs=1e-12)

    snapshot = {"id": "r-snap", "model": "gpt-4o-2024-08-06", "usage": usage}
    with tracker.track_call(task_name="t", model="gpt-4o") as span:
        span.record(snapshot)
    assert span.result is not None
    assert span.result.model == "gpt-4o", "a dated snapshot keeps the tracked name"


def test_a_span_left_in_another_context_clears_itself() -> None:
    import contextvars

    from aipowertools.core import current_call

    tracker = CostTracker(store="memory://")
    span = tracker.track_call("t")
    span.__enter__()
    assert current_call() is span
    other = contextvars.copy_context()
    other.run(span._leave)  # exited where it was not entered: cleared there, no error
    assert other.run(current_call) is None
    span._leave()  # a second exit is a no-op
    assert current_call() is span  # this context was not the one left
    span.__exit__(None, None, None)
    from aipowertools.core._span import _CURRENT

    _CURRENT.set(None)  # this test's own context: leave no span behind for later tests
    assert current_call() is None

import asyncio
import time
from datetime import datetime, timezone

import pytest

from aipowertools.core.errors import ConfigurationError, RateLimitExceededError
from aipowertools.resilience import Limit, QuotaManager, RateLimiter, rate_limit

MID_MONTH = datetime(2026, 4, 11, tzinfo=timezone.utc).timestamp()  # 10 days into 30


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_check_and_wait_queues_and_reports_stats():
    clock = Clock(100.0)  # the limiter's windows stand still until the test moves them
    limiter = RateLimiter(
        smooth=False, limits=[Limit("requests", 2, 0.5)], clock=clock, max_sleep=0.002
    )
    quota = QuotaManager(limiter=limiter)  # 2 per half second
    await quota.check_and_wait(tokens=10)
    await quota.check_and_wait(tokens=10)
    waiting = [asyncio.create_task(quota.check_and_wait(tokens=10)) for _ in range(3)]
    while quota.get_stats().queued_tasks < 3:
        await asyncio.sleep(0.001)
    stats = quota.get_stats()
    assert stats.queued_tasks == 3
    assert stats.estimated_wait_seconds == pytest.approx(0.75)  # 3 more at 2 per 0.5 s
    clock.now += 0.5
    await asyncio.gather(*waiting[:2])
    assert quota.get_stats().queued_tasks == 1
    clock.now += 0.5
    await waiting[2]
    stats = quota.get_stats()
    assert stats.queued_tasks == 0
    assert stats.month_requests == 5
    assert stats.month_tokens == 50


def test_monthly_quota_forecast_and_exhaustion():
    clock = Clock(MID_MONTH)
    quota = QuotaManager(monthly_token_quota=3_000_000, clock=clock)
    quota.check_and_wait_sync(tokens=1_000_000)  # 1M in the first 10 days
    projected, exhaustion = quota.forecast()
    assert projected == pytest.approx(3_000_000, rel=0.01)  # 100k/day over 30 days
    assert exhaustion is None or exhaustion >= datetime(2026, 4, 30, tzinfo=timezone.utc)
    quota.record(500_000)  # the pace now says 1.5M per 10 days -> runs out on day 20
    _, exhaustion = quota.get_stats().projected_month_tokens, quota.get_stats().exhaustion_at
    assert exhaustion is not None
    assert exhaustion.day == 21
    with pytest.raises(RateLimitExceededError) as info:
        quota.check_and_wait_sync(tokens=2_000_000)
    assert info.value.retry_after == pytest.approx(20 * 86400, rel=0.01)  # next month
    clock.now = datetime(2026, 5, 1, 1, tzinfo=timezone.utc).timestamp()
    assert quota.get_stats().month_tokens == 0  # a new month starts from zero
    assert quota.get_stats().month == "2026-05"


def test_settle_corrects_both_the_limiter_and_the_month():
    quota = QuotaManager(tokens_per_minute=10_000)
    r = quota.check_and_wait_sync(tokens=4000)
    quota.settle(r, 1500)
    assert quota.get_stats().month_tokens == 1500
    assert quota.limiter.get_stats().keys["default"].usage["tokens_per_60s"][0] == 1500


def test_rate_limit_decorator_sync_and_async():
    @rate_limit(requests_per_second=2, priority="high")
    def sync_job(x: int) -> int:
        return x

    start = time.monotonic()
    assert [sync_job(i) for i in range(3)] == [0, 1, 2]
    assert time.monotonic() - start >= 0.95

    shared = RateLimiter(tokens_per_minute=100)

    @rate_limit(limiter=shared, key="k", tokens=lambda text: len(text))
    async def async_job(text: str) -> str:
        return text.upper()

    assert asyncio.run(async_job("x" * 60)) == "X" * 60
    assert shared.try_acquire("k", tokens=50) is None
    assert async_job.limiter is shared  # type: ignore[attr-defined]


def test_bad_quota_config():
    with pytest.raises(ConfigurationError):
        QuotaManager(limiter=RateLimiter(), requests_per_second=1)
    with pytest.raises(ConfigurationError):
        QuotaManager(monthly_token_quota=0)
    with pytest.raises(ConfigurationError):
        rate_limit(limiter=RateLimiter(), requests_per_second=1)

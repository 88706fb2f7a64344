import asyncio
import itertools
import time
import tracemalloc

import pytest

from aipowertools.core.errors import ConfigurationError, RateLimitExceededError, StoreURLError
from aipowertools.resilience import Limit, RateLimiter
from aipowertools.resilience._adaptive import parse_duration, parse_headers


class FakeClock:
    """Monotonic seconds for the ``memory://`` windows that move only when a test says so.

    Counts its reads, so a test can wait until the limiter has looked at the time again
    instead of sleeping and hoping it did.
    """

    def __init__(self) -> None:
        self.now = 100.0
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now


async def until(condition, what: str = "condition") -> None:
    """Yield to the loop until ``condition()``: counts events, never wall-clock gaps."""

    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.001)

    try:
        await asyncio.wait_for(poll(), 30)  # only a broken limiter gets anywhere near this
    except asyncio.TimeoutError:
        raise AssertionError(f"never happened: {what}") from None


async def rechecked(clock: FakeClock) -> None:
    """Wait until the scheduler has read the (fake) clock again: it re-decided."""
    seen = clock.reads
    await until(lambda: clock.reads > seen + 1, "the scheduler re-checks the window")


async def test_requests_per_window_is_exact():
    clock = FakeClock()  # steps of 0.125 s are exact in binary: no rounding at the edges
    limiter = RateLimiter(
        smooth=False, limits=[Limit("requests", 20, 0.25)], clock=clock, max_sleep=0.002
    )
    admitted_at: list[float] = []

    async def one() -> None:
        await limiter.acquire("k")
        admitted_at.append(clock.now)

    tasks = [asyncio.create_task(one()) for _ in range(50)]
    await until(lambda: len(admitted_at) == 20)
    await rechecked(clock)
    for expected in (20, 40, 40, 50):  # 20 at t=0, 20 at t=0.25, 10 at t=0.5
        clock.now += 0.125
        await until(lambda n=expected: len(admitted_at) == n, f"{expected} admitted")
        if expected < 50:
            await rechecked(clock)
            assert len(admitted_at) == expected  # and not one more before the window moves
    await asyncio.gather(*tasks)
    assert admitted_at == [100.0] * 20 + [100.25] * 20 + [100.5] * 10
    assert limiter.get_stats().admitted == 50


async def test_tokens_reserve_then_correct_frees_capacity():
    limiter = RateLimiter(smooth=False, tokens_per_minute=1000)
    r = await limiter.acquire("m", tokens=900)
    assert limiter.try_acquire("m", tokens=200) is None
    await r.acorrect(100)  # the real call used far less
    assert limiter.try_acquire("m", tokens=200) is not None
    usage = limiter.get_stats("m").keys["m"].usage["tokens_per_60s"]
    assert usage == (300.0, 1000.0)
    r.correct(150)
    assert limiter.get_stats("m").keys["m"].usage["tokens_per_60s"][0] == 350.0


async def test_release_gives_everything_back():
    limiter = RateLimiter(smooth=False, requests_per_minute=1, tokens_per_minute=100)
    r = await limiter.acquire("k", tokens=50)
    assert limiter.try_acquire("k") is None
    await r.arelease()
    assert limiter.try_acquire("k", tokens=50) is not None
    r.release()  # idempotent


def test_sync_acquire_waits_and_try_acquire_does_not():
    limiter = RateLimiter(smooth=False, requests_per_second=5)
    start = time.monotonic()
    for _ in range(10):
        limiter.acquire_sync("s")
    assert time.monotonic() - start >= 0.95  # a lower bound: a slow machine only adds to it
    clock = FakeClock()
    still = RateLimiter(smooth=False, requests_per_second=5, clock=clock)
    for _ in range(5):
        still.acquire_sync("s")  # all fit at once: never waits on the frozen clock
    assert still.try_acquire("s") is None
    assert still.get_stats().rejected == 1


async def test_timeout_raises_rate_limit_exceeded_with_retry_after():
    limiter = RateLimiter(smooth=False, requests_per_minute=1)
    await limiter.acquire("k")
    with pytest.raises(RateLimitExceededError) as info:
        await limiter.acquire("k", timeout=0.05)
    assert info.value.key == "k"
    assert info.value.retry_after is not None
    assert info.value.retry_after > 50


async def test_timeout_of_a_queued_waiter():
    limiter = RateLimiter(smooth=False, requests_per_second=1)
    await limiter.acquire("k")
    first = asyncio.create_task(limiter.acquire("k"))
    await asyncio.sleep(0)
    with pytest.raises(RateLimitExceededError):
        await asyncio.wait_for(limiter.acquire("k", timeout=0.2), 5)
    await first
    assert limiter.get_stats().queued_total == 0


async def test_cancelled_waiter_leaves_no_trace():
    clock = FakeClock()
    limiter = RateLimiter(smooth=False, requests_per_second=2, clock=clock, max_sleep=0.002)
    await asyncio.gather(limiter.acquire("k"), limiter.acquire("k"))
    task = asyncio.create_task(limiter.acquire("k"))
    await until(lambda: limiter.get_stats().queued_total == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert limiter.get_stats().queued_total == 0
    clock.now += 1.0
    r = await asyncio.wait_for(limiter.acquire("k"), 30)
    assert r.key == "k"


async def test_multiple_limits_and_key_limits():
    limiter = RateLimiter(
        requests_per_minute=100,
        key_limits={"small": {"requests_per_minute": 2}, "lims": [Limit("tokens", 10, 60)]},
        smooth=False,  # the strict sliding windows: a minute's quota at once
    )
    assert limiter.try_acquire("small")
    assert limiter.try_acquire("small")
    assert limiter.try_acquire("small") is None
    assert limiter.try_acquire("big") is not None
    assert limiter.try_acquire("lims", tokens=10) is not None
    assert limiter.try_acquire("lims", tokens=1) is None
    with pytest.raises(ConfigurationError, match="can never fit"):
        limiter.try_acquire("lims", tokens=11)
    with pytest.raises(ConfigurationError):
        limiter.set_limits("x", ["nope"])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"requests_per_minute": 0}, "positive"),
        ({"requests_per_minute": "5"}, "number"),
        ({"aging_seconds": -1}, "aging"),
        ({"max_sleep": 0}, "max_sleep"),
    ],
)
def test_bad_configuration_is_typed(kwargs, match):
    with pytest.raises(ConfigurationError, match=match):
        RateLimiter(smooth=False, **kwargs)


def test_bad_arguments_are_typed():
    limiter = RateLimiter(smooth=False, requests_per_second=1)
    with pytest.raises(ConfigurationError, match="priority"):
        limiter.acquire_sync("k", priority="urgent")
    with pytest.raises(ConfigurationError, match="tokens"):
        limiter.try_acquire("k", tokens=-1)
    with pytest.raises(ConfigurationError, match="key"):
        limiter.try_acquire("")
    with pytest.raises(StoreURLError):
        RateLimiter(smooth=False, store="sqlite:///x.db")
    with pytest.raises(ConfigurationError, match="clock applies to the memory:// store only"):
        RateLimiter(
            smooth=False, requests_per_second=1, store="redis://127.0.0.1:1/0", clock=FakeClock()
        )
    r = limiter.try_acquire("k")
    assert r is not None
    with pytest.raises(ConfigurationError):
        r.correct(-1)
    with pytest.raises(ConfigurationError):
        Limit("bytes", 1, 1)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        Limit("tokens", 1, 0)


async def test_priority_high_goes_first_under_saturation():
    """Counted in admissions, not seconds: a high request that arrives while 150 low ones
    wait is admitted in the next window, ahead of every low one already queued."""
    clock = FakeClock()
    limiter = RateLimiter(
        smooth=False,
        limits=[Limit("requests", 10, 0.125)],
        aging_seconds=30,
        clock=clock,
        max_sleep=0.002,
    )
    await asyncio.gather(*(limiter.acquire("k") for _ in range(10)))  # saturate
    order: list[str] = []  # "arrive:high", "high", "low" in the order they happened

    async def one(priority: str) -> None:
        if priority == "high":
            order.append("arrive:high")
        await limiter.acquire("k", priority=priority)
        order.append(priority)

    lows = [asyncio.create_task(one("low")) for _ in range(150)]
    await until(lambda: limiter.get_stats().queued_total == 150)
    highs: list[asyncio.Task[None]] = []
    for _ in range(5):  # high-priority requests keep arriving into the saturated queue
        highs += [asyncio.create_task(one("high")) for _ in range(4)]
        arrived = len(highs)
        await until(lambda n=arrived: order.count("arrive:high") == n)
        clock.now += 0.125  # the next window opens
        served = order.count("high") + order.count("low")
        await until(lambda n=served: order.count("high") + order.count("low") == n + 10)
    await asyncio.gather(*highs)
    while not all(task.done() for task in lows):
        clock.now += 0.125
        await rechecked(clock)
    admitted = [who for who in order if who != "arrive:high"]
    assert len(admitted) == 170  # every low-priority request was served too
    # each window admitted the 4 new high requests first, then 6 of the waiting low ones
    assert admitted[:50] == (["high"] * 4 + ["low"] * 6) * 5
    assert admitted[50:] == ["low"] * 120


@pytest.mark.parametrize("aging", [0.04, 0.0])
async def test_aging_lets_low_priority_through_a_steady_high_stream(aging):
    limiter = RateLimiter(smooth=False, limits=[Limit("requests", 20, 0.2)], aging_seconds=aging)
    await asyncio.gather(*(limiter.acquire("k") for _ in range(20)))  # saturate
    low = asyncio.create_task(limiter.acquire("k", priority="low"))
    served_highs = 0
    highs_before_low: list[int] = []

    async def high_loop() -> None:  # 30 of these: more high-priority work than each window holds
        nonlocal served_highs
        for _ in range(5):
            await limiter.acquire("k", priority="high")
            served_highs += 1
            if low.done() and not highs_before_low:
                highs_before_low.append(served_highs)

    await asyncio.gather(*(high_loop() for _ in range(30)))
    await low
    if aging:
        assert highs_before_low
        assert highs_before_low[0] < 90  # served long before the 150 highs were done
    else:  # without aging the low request starves until the highs are gone
        assert not highs_before_low


async def test_fairness_round_robin_between_users():
    limiter = RateLimiter(smooth=False, requests_per_second=10, aging_seconds=0)
    await asyncio.gather(*(limiter.acquire("k") for _ in range(10)))
    order: list[str] = []

    async def one(user: str) -> None:
        await limiter.acquire("k", user=user)
        order.append(user)

    # user a floods first, b arrives after: b still gets every other slot.
    tasks = [asyncio.create_task(one("a")) for _ in range(8)]
    await asyncio.sleep(0)
    tasks += [asyncio.create_task(one("b")) for _ in range(2)]
    await asyncio.gather(*tasks)
    assert order.index("b") <= 2
    assert order[:4].count("b") == 2


async def test_a_flooding_user_does_not_starve_another_under_contention():
    """User a keeps 100 requests queued at all times; user b asks one at a time. In arrival
    order b would wait behind ~100 of a's each time; round-robin serves b in every window.
    Counted in admissions, not seconds, so a loaded machine cannot make this flaky."""
    limiter = RateLimiter(smooth=False, limits=[Limit("requests", 10, 0.05)], aging_seconds=0)
    await asyncio.gather(*(limiter.acquire("k") for _ in range(10)))  # saturate
    order: list[str] = []

    async def flood() -> None:
        while True:
            await limiter.acquire("k", user="a")
            order.append("a")

    flooders = [asyncio.create_task(flood()) for _ in range(100)]
    await asyncio.sleep(0)  # all of a's requests are queued before b's first one
    for _ in range(5):
        await limiter.acquire("k", user="b")
        order.append("b")
    for task in flooders:
        task.cancel()
    await asyncio.gather(*flooders, return_exceptions=True)
    b_at = [i for i, who in enumerate(order) if who == "b"]
    gaps = [b_at[0], *(later - earlier - 1 for earlier, later in itertools.pairwise(b_at))]
    # b, asking one at a time, gets a slot in every window (10 per window): at most 9 of a's
    # between two of b's (one window's worth, 20 with slack), where arrival order gives ~100
    assert max(gaps) <= 20, gaps
    assert order.count("a") >= 4  # and a keeps being served too


async def test_stats_report_queue_wait_and_utilisation():
    clock = FakeClock()
    limiter = RateLimiter(smooth=False, requests_per_second=5, clock=clock, max_sleep=0.002)
    await asyncio.gather(*(limiter.acquire("k") for _ in range(5)))
    tasks = [asyncio.create_task(limiter.acquire("k", priority=p)) for p in ["high", "low", 3]]
    await until(lambda: limiter.get_stats().queued_total == 3)
    stats = limiter.get_stats()
    assert stats.queued == {"high": 1, "low": 1, "3": 1}
    assert stats.utilisation == 1.0
    assert stats.estimated_wait_seconds == pytest.approx(0.6)  # 3 more at 5/s
    clock.now += 1.0
    await asyncio.gather(*tasks)
    assert limiter.get_stats().queued_total == 0


async def test_ten_thousand_waiters_one_loop_no_lost_wakeups_bounded_memory():
    # 2,500 per 250 ms: 7,500 of the 10,000 have to wait, all on one loop.
    limiter = RateLimiter(smooth=False, limits=[Limit("requests", 2500, 0.25)], aging_seconds=0)
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    results = await asyncio.wait_for(
        asyncio.gather(*(limiter.acquire("k", user=str(i % 7)) for i in range(10_000))), 50
    )  # ~1 s on an idle machine; the bound only catches lost wakeups (hangs)
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    print(f"10,000 waiters on one loop: peak {peak / 2**20:.1f} MiB traced")  # pytest -s
    assert len({r.id for r in results}) == 10_000  # every waiter woke, exactly once
    assert limiter.get_stats().queued_total == 0
    assert peak < 40 * 1024 * 1024, peak  # ~10k waiters + window entries, well under 40 MB
    # the scheduler is gone once the queue is empty
    assert not any(limiter._schedulers.values())


async def test_adaptive_pause_and_learned_limit():
    clock = FakeClock()
    limiter = RateLimiter(smooth=False, requests_per_second=100, clock=clock, max_sleep=0.002)
    limiter.observe("k", headers={"retry-after": "0.3", "x-ratelimit-limit-requests": "600"})
    stats = limiter.get_stats("k").keys["k"]
    assert stats.paused_seconds == pytest.approx(0.3)
    assert stats.usage["requests_per_1s"][1] == pytest.approx(9.5)  # 600/min = 10/s, 95 % of it
    admitted_at: list[float] = []

    async def one() -> None:
        await limiter.acquire("k")
        admitted_at.append(clock.now)

    tasks = [asyncio.create_task(one()) for _ in range(11)]
    await rechecked(clock)
    assert admitted_at == []  # paused
    clock.now += 0.25
    await rechecked(clock)
    assert admitted_at == []  # still paused: 0.05 s to go
    clock.now += 0.05
    await until(lambda: len(admitted_at) == 9, "9 admitted")  # 9.5 per second: 9 fit
    clock.now += 0.75
    await rechecked(clock)
    assert len(admitted_at) == 9  # not one more until the first second has passed
    clock.now += 0.25
    await asyncio.gather(*tasks)
    assert admitted_at == [100.3] * 9 + [101.3] * 2


async def test_adaptive_bare_429_halves_then_recovers():
    from aipowertools.core.errors import RateLimitedError
    from aipowertools.resilience import AdaptiveConfig

    limiter = RateLimiter(
        smooth=False, requests_per_second=100, adaptive=AdaptiveConfig(recovery_per_second=1.0)
    )
    await limiter.aobserve("k", exc=RateLimitedError("429", retry_after=None))
    cap = limiter.get_stats("k").keys["k"].usage["requests_per_1s"][1]
    assert 50 <= cap < 55
    await asyncio.sleep(0.3)
    assert limiter.get_stats("k").keys["k"].usage["requests_per_1s"][1] > cap + 20
    off = RateLimiter(smooth=False, requests_per_second=100, adaptive=False)
    off.observe("k", retry_after=5)
    assert off.get_stats("k").keys["k"].paused_seconds == 0


def test_header_parsing():
    assert parse_duration("6m0s") == 360
    assert parse_duration("20ms") == pytest.approx(0.02)
    assert parse_duration("1.5") == 1.5
    assert parse_duration("") is None
    assert parse_duration("soon") is None
    obs = parse_headers(
        {
            "Retry-After-Ms": "1500",
            "x-ratelimit-limit-tokens": "90000",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": "2s",
        },
        rate_limited=True,
    )
    assert obs.retry_after == 1.5
    assert obs.limits == {"tokens": 90000}
    assert obs.resets == {"requests": 2.0}
    anthropic = parse_headers(
        {"anthropic-ratelimit-requests-limit": "50", "retry-after": "3"}, rate_limited=True
    )
    assert anthropic.limits == {"requests": 50}
    assert anthropic.retry_after == 3


def test_limit_decorator_and_wait_alias():
    limiter = RateLimiter(smooth=False, requests_per_second=3)

    @limiter.limit(priority="high")
    def work(x: int) -> int:
        return x * 2

    start = time.monotonic()
    assert [work(i) for i in range(4)] == [0, 2, 4, 6]
    assert time.monotonic() - start >= 0.95
    assert asyncio.run(limiter.wait("other")).key == "other"


async def test_settle_counts_the_request_from_its_answer():
    clock = FakeClock()
    limits = [Limit("requests", 1, 0.5), Limit("tokens", 100, 0.5)]
    limiter = RateLimiter(smooth=False, limits=limits, clock=clock)
    r = await limiter.acquire("k", tokens=80)
    clock.now += 0.25  # the call takes 0.25 s; the provider stamped it on arrival
    await r.asettle(30)
    assert r.tokens == 30
    clock.now += 0.375  # 0.625 s after admission, but only 0.375 s after the answer
    assert limiter.try_acquire("k") is None
    clock.now += 0.125  # 0.5 s after the answer: its slot leaves the window
    r2 = limiter.try_acquire("k", tokens=10)
    assert r2 is not None
    r2.settle()  # no token change, restamp only
    assert limiter.get_stats("k").keys["k"].usage["tokens_per_0_5s"] == (10.0, 100.0)


async def test_a_store_failure_fails_the_waiters_instead_of_hanging_them(caplog):
    from aipowertools.core.errors import StoreUnavailableError
    from aipowertools.resilience._backend import MemoryBackend

    class Flaky(MemoryBackend):
        broken = False

        async def areserve(self, key, limits, tokens):
            if self.broken:
                raise StoreUnavailableError("redis://x", "connection refused")
            return self.reserve(key, limits, tokens)

    clock = FakeClock()  # never moves: no waiter can be admitted before the store breaks
    limiter = RateLimiter(smooth=False, requests_per_second=1, max_sleep=0.002)
    backend = Flaky(clock=clock)
    limiter.backend = backend
    await limiter.acquire("k")
    waiters = [asyncio.create_task(limiter.acquire("k")) for _ in range(3)]
    await until(lambda: limiter.get_stats().queued_total == 3)
    backend.broken = True
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(r, StoreUnavailableError) for r in results)
    assert "scheduler failed" in caplog.text
    assert limiter.get_stats().queued_total == 0


def test_store_follows_a_redis_aipowertools_store_only(monkeypatch):
    from aipowertools.resilience import CircuitBreaker
    from aipowertools.resilience._backend import MemoryBackend
    from aipowertools.resilience._store import resolve_store

    monkeypatch.setenv("AIPOWERTOOLS_STORE", "sqlite:///tmp/ledger.db")
    assert isinstance(RateLimiter(smooth=False, requests_per_second=1).backend, MemoryBackend)
    assert resolve_store(None, "x") == ("memory://", False)
    monkeypatch.setenv("AIPOWERTOOLS_STORE", "redis://127.0.0.1:6379/0")
    assert resolve_store(None, "x") == ("redis://127.0.0.1:6379/0", True)
    assert resolve_store("memory://", "x") == ("memory://", False)
    with pytest.raises(StoreURLError):
        CircuitBreaker("x", store="postgresql://localhost/db")
    monkeypatch.delenv("AIPOWERTOOLS_STORE")
    assert resolve_store(None, "x") == ("memory://", False)

import asyncio
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from aipowertools.core.errors import CircuitOpenError, TransientProviderError
from aipowertools.resilience import CircuitBreaker, CircuitState, Limit, RateLimiter

WORKER = textwrap.dedent(
    """
    import sys
    from aipowertools.resilience import Limit, RateLimiter
    url, prefix = sys.argv[1], sys.argv[2]
    limiter = RateLimiter(
        smooth=False, limits=[Limit("requests", 20, 60.0)], store=url, prefix=prefix
    )
    print("ready", flush=True)
    sys.stdin.readline()  # all four start together, once all are up
    print(sum(1 for _ in range(15) if limiter.try_acquire("shared") is not None), flush=True)
    limiter.close()
    """
)


def test_four_processes_share_one_budget(redis_url):
    """Counted, not timed: 4 processes ask 15 times each inside one 60 s window; exactly the
    20 the shared budget holds are admitted (four budgets of their own would admit 60)."""
    prefix = f"t:{uuid.uuid4().hex}"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, redis_url, prefix],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for proc in procs:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    admitted = []
    for proc in procs:
        out, _ = proc.communicate(timeout=40)
        assert proc.returncode == 0
        admitted.append(int(out))
    assert sum(admitted) == 20, admitted
    usage = RateLimiter(
        smooth=False, limits=[Limit("requests", 20, 60.0)], store=redis_url, prefix=prefix
    )
    assert usage.get_stats("shared").keys["shared"].usage["requests_per_60s"] == (20.0, 20.0)
    usage.close()


async def test_redis_limiter_tokens_correct_release_and_adaptive(redis_url):
    prefix = f"t:{uuid.uuid4().hex}"
    limiter = RateLimiter(
        smooth=False, tokens_per_minute=1000, requests_per_minute=10, store=redis_url, prefix=prefix
    )
    r = await limiter.acquire("m", tokens=900)
    assert await limiter.atry_acquire("m", tokens=200) is None
    await r.acorrect(100)
    assert limiter.try_acquire("m", tokens=200) is not None
    usage = limiter.get_stats("m").keys["m"].usage
    assert usage["tokens_per_60s"] == (300.0, 1000.0)
    assert usage["requests_per_60s"] == (2.0, 10.0)
    r.correct(50)
    await r.arelease()
    usage = limiter.get_stats("m").keys["m"].usage
    assert usage["tokens_per_60s"] == (200.0, 1000.0)
    assert usage["requests_per_60s"] == (1.0, 10.0)
    limiter.observe("m", headers={"x-ratelimit-limit-requests": "5"}, retry_after=30)
    stats = limiter.get_stats("m").keys["m"]
    assert stats.usage["requests_per_60s"][1] == pytest.approx(4.75)
    assert 15 < stats.paused_seconds <= 30  # the pause runs on the Redis server's clock
    from aipowertools.core.errors import RateLimitedError

    await limiter.aobserve("m", exc=RateLimitedError("429"))
    assert limiter.get_stats("m").keys["m"].usage["requests_per_60s"][1] == pytest.approx(
        2.375, abs=0.01
    )
    other = RateLimiter(smooth=False, requests_per_second=5, store=redis_url, prefix=prefix)
    start = time.monotonic()
    await asyncio.gather(*(other.acquire("q") for _ in range(8)))
    assert time.monotonic() - start >= 0.9
    limiter.close()


BREAKER = textwrap.dedent(
    """
    import sys
    from aipowertools.core.errors import CircuitOpenError
    from aipowertools.resilience import CircuitBreaker
    b = CircuitBreaker(sys.argv[2], store=sys.argv[1], prefix=sys.argv[3], recovery_timeout=30)
    try:
        b.call(lambda: "called")
    except CircuitOpenError as exc:
        print("open", round(exc.retry_after))
    else:
        print("closed")
    """
)


def test_breaker_state_is_shared_with_a_second_process(redis_url):
    prefix, name = f"t:{uuid.uuid4().hex}", "provider-x"
    changes = []
    b = CircuitBreaker(
        name,
        store=redis_url,
        prefix=prefix,
        failure_threshold=2,
        recovery_timeout=30,
        on_state_change=changes.append,
    )

    def other_process() -> str:
        out = subprocess.run(
            [sys.executable, "-c", BREAKER, redis_url, name, prefix],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return out.stdout.strip()

    for _ in range(2):
        with pytest.raises(TransientProviderError):
            b.call(lambda: (_ for _ in ()).throw(TransientProviderError("503")))
    assert b.state is CircuitState.OPEN
    assert other_process().startswith("open")
    snap = b.snapshot()
    assert snap.opened_at is not None
    with pytest.raises(CircuitOpenError):
        b.call(lambda: 1)
    b.reset()
    assert other_process() == "closed"
    assert [c.new.value for c in changes] == ["open", "closed"]


async def test_shared_breaker_half_open_probe(redis_url):
    prefix = f"t:{uuid.uuid4().hex}"
    b = CircuitBreaker(
        "hp",
        store=redis_url,
        prefix=prefix,
        failure_threshold=1,
        recovery_timeout=1.0,  # the OPEN checks below must run within it: 1 s, not 0.2 s
        failure_rate_threshold=0.5,
        minimum_requests=2,
    )

    async def boom():
        raise TransientProviderError("503")

    async def fine():
        return "ok"

    with pytest.raises(TransientProviderError):
        await b.acall(boom)
    await asyncio.sleep(1.05)
    probe = b.enter()
    with pytest.raises(CircuitOpenError):
        b.enter()  # one probe at a time
    probe.finish(TransientProviderError("503"))
    assert b.state is CircuitState.OPEN
    await asyncio.sleep(1.05)
    assert await b.acall(fine) == "ok"
    assert b.state is CircuitState.CLOSED
    assert b.snapshot().failures == 0


def test_hosts_with_skewed_clocks_share_one_budget(redis_url, monkeypatch):
    """A host whose clock is an hour behind must not get a budget of its own: the limiter's
    clock is the Redis server's TIME, not the caller's."""
    prefix = f"t:{uuid.uuid4().hex}"
    real_time = time.time
    behind = RateLimiter(smooth=False, requests_per_minute=5, store=redis_url, prefix=prefix)
    monkeypatch.setattr(time, "time", lambda: real_time() - 3600.0)
    assert all(behind.try_acquire("m") is not None for _ in range(5))
    assert behind.try_acquire("m") is None
    monkeypatch.setattr(time, "time", real_time)
    on_time = RateLimiter(smooth=False, requests_per_minute=5, store=redis_url, prefix=prefix)
    assert on_time.try_acquire("m") is None  # the hour-behind admissions still count
    assert on_time.get_stats("m").keys["m"].usage["requests_per_60s"][0] == 5.0
    behind.close()
    on_time.close()


def test_set_state_on_a_shared_store_is_seen_by_every_breaker(redis_url):
    name = f"forced-{uuid.uuid4().hex}"
    changes = []
    here = CircuitBreaker(name, store=redis_url, on_state_change=changes.append)
    there = CircuitBreaker(name, store=redis_url)
    here.set_state("open")
    assert there.state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError):
        there.enter()
    here.set_state("open")  # again: no transition
    here.set_state("half_open")
    assert there.state is CircuitState.HALF_OPEN
    here.set_state("half_open")
    there.set_state("closed")
    assert here.state is CircuitState.CLOSED
    assert [(c.old.value, c.new.value) for c in changes] == [
        ("closed", "open"),
        ("open", "half_open"),
    ]


def test_redis_remaining_tokens_and_retry_after_match_memory(redis_url):
    prefix = f"t:{uuid.uuid4().hex}"
    limits = [Limit("tokens", 1000, 60.0), Limit("requests", 5, 60.0)]
    limiter = RateLimiter(limits=limits, store=redis_url, prefix=prefix, smooth=False)
    assert limiter.remaining_tokens("k") == 1000.0
    assert limiter.retry_after("k", tokens=1000) == 0.0
    assert limiter.try_acquire("k", tokens=700) is not None
    assert limiter.remaining_tokens("k") == 300.0
    assert limiter.retry_after("k", tokens=300) == 0.0
    wait = limiter.retry_after("k", tokens=301)
    assert 55.0 < wait <= 60.0  # until the 700 expire (server clock)
    assert limiter.remaining_tokens("k") == 300.0  # the peek recorded nothing
    assert limiter.get_stats("k").keys["k"].usage["requests_per_60s"][0] == 1.0
    limiter.close()

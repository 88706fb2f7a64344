"""A limiter's shared store going down: local fallback or a typed error, and the retry schedule."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from aipowertools.core.errors import ConfigurationError, StoreUnavailableError
from aipowertools.resilience import RateLimiter
from aipowertools.resilience._adaptive import AdaptiveConfig, Observation
from aipowertools.resilience._backend import MemoryBackend
from aipowertools.resilience._fallback import (
    LOCAL_PREFIX,
    FallbackBackend,
    StoreFallback,
    check_store_down,
)
from aipowertools.resilience._limits import limits_from_kwargs

LIMITS = limits_from_kwargs(requests_per_minute=2, tokens_per_minute=100)


class Flaky(MemoryBackend):
    """A 'shared' backend that fails (or stalls) on demand, counting the calls it gets."""

    def __init__(self) -> None:
        super().__init__(AdaptiveConfig())
        self.down = False
        self.stall = False
        self.calls = 0

    def _gate(self) -> None:
        self.calls += 1
        if self.down:
            raise StoreUnavailableError("redis://:***@h/0", "connection refused")

    def reserve(self, key: str, limits: Any, tokens: int) -> Any:
        self._gate()
        return super().reserve(key, limits, tokens)

    async def areserve(self, key: str, limits: Any, tokens: int) -> Any:
        if self.stall:
            await asyncio.sleep(60)
        self._gate()
        return super().reserve(key, limits, tokens)

    def adjust(self, *args: Any) -> None:
        self._gate()
        super().adjust(*args)

    def release(self, *args: Any) -> None:
        self._gate()
        super().release(*args)

    def observe(self, *args: Any) -> None:
        self._gate()
        super().observe(*args)

    def usage(self, *args: Any) -> Any:
        self._gate()
        return super().usage(*args)

    def paused_for(self, key: str) -> float:
        self._gate()
        return super().paused_for(key)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _backend(mode: str = "local") -> tuple[FallbackBackend, Flaky, Clock]:
    clock = Clock()
    shared = Flaky()
    fb = StoreFallback("the rate limiter", "redis://h/0", clock=clock)
    backend = FallbackBackend(
        shared,
        MemoryBackend(),
        fb,
        store_down=mode,
        store_timeout=0.05,  # type: ignore[arg-type]
    )
    return backend, shared, clock


def test_fails_open_to_local_limits_and_retries_on_schedule(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend, shared, clock = _backend()
    assert backend.reserve("k", LIMITS, 10).reservation_id is not None
    shared.down = True
    d = backend.reserve("k", LIMITS, 10)
    assert d.admitted
    assert d.reservation_id
    assert d.reservation_id.startswith(LOCAL_PREFIX)
    assert not backend.shared_ok
    assert "using this process's state" in caplog.text
    # the local limit is the same limit: 2 per minute in this process
    assert backend.reserve("k", LIMITS, 10).admitted
    assert not backend.reserve("k", LIMITS, 10).admitted
    calls = shared.calls
    # before the retry time the shared store is not asked at all
    backend.reserve("k", LIMITS, 10)
    assert shared.calls == calls
    delays = []
    for _ in range(6):  # 0.1 s doubling, capped at 1 s
        delays.append(round(backend.fallback.retry_at - clock.now, 3))
        clock.now = backend.fallback.retry_at
        backend.reserve("k", LIMITS, 10)
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    shared.down = False
    clock.now = backend.fallback.retry_at  # at most 1 s after the store is back
    assert backend.reserve("k2", LIMITS, 10).reservation_id is not None
    assert backend.shared_ok
    assert backend.fallback.recoveries == 1
    assert "answers again" in caplog.text


def test_local_reservations_are_corrected_and_released_locally() -> None:
    backend, shared, _ = _backend()
    shared.down = True
    d = backend.reserve("k", LIMITS, 60)
    assert d.reservation_id is not None
    rid = d.reservation_id
    backend.adjust("k", LIMITS, rid, -50, True)
    assert [u.used for u in backend.local.usage("k", LIMITS)] == [1, 10]
    backend.release("k", LIMITS, rid)
    assert [u.used for u in backend.local.usage("k", LIMITS)] == [0, 0]


def test_shared_corrections_are_best_effort() -> None:
    backend, shared, clock = _backend()
    d = backend.reserve("k", LIMITS, 60)
    assert d.reservation_id is not None
    shared.down = True
    backend.adjust("k", LIMITS, d.reservation_id, -10, False)  # no error: dropped
    assert backend.fallback.failures == 1
    backend.release("k", LIMITS, d.reservation_id)  # skipped until the retry time
    assert backend.fallback.failures == 1
    shared.down = False
    clock.now = backend.fallback.retry_at
    backend.release("k", LIMITS, d.reservation_id)
    assert backend.shared_ok
    backend.observe("k", LIMITS, Observation(retry_after=5.0, rate_limited=True))
    assert backend.local.paused_for("k") > 0
    assert shared.paused_for("k") > 0
    assert backend.paused_for("k") > 0
    assert len(backend.usage("k", LIMITS)) == 2
    backend.close()


async def test_async_paths_and_a_stalled_store() -> None:
    backend, shared, clock = _backend()
    d = await backend.areserve("k", LIMITS, 10)
    assert d.reservation_id is not None
    assert not d.reservation_id.startswith(LOCAL_PREFIX)
    await backend.aadjust("k", LIMITS, d.reservation_id, 5, True)
    await backend.arelease("k", LIMITS, d.reservation_id)
    shared.stall = True  # a frozen server: the call times out after store_timeout
    d = await backend.areserve("k", LIMITS, 10)
    assert d.reservation_id is not None
    assert d.reservation_id.startswith(LOCAL_PREFIX)
    await backend.aadjust("k", LIMITS, d.reservation_id, 5, True)
    await backend.arelease("k", LIMITS, d.reservation_id)
    await backend.aobserve("k", LIMITS, Observation(retry_after=1.0))
    shared.stall, shared.down = False, True
    clock.now = backend.fallback.retry_at
    await backend.aadjust("k", LIMITS, "shared-id", 5, True)  # fails quietly
    await backend.arelease("k", LIMITS, "shared-id")  # skipped: before the retry time
    assert backend.fallback.failures == 2


async def test_fail_closed_raises_typed_errors() -> None:
    backend, shared, clock = _backend("raise")
    shared.down = True
    with pytest.raises(StoreUnavailableError, match="did not answer"):
        backend.reserve("k", LIMITS, 1)
    with pytest.raises(StoreUnavailableError, match="retry shortly"):
        backend.reserve("k", LIMITS, 1)
    with pytest.raises(StoreUnavailableError, match="retry shortly"):
        await backend.areserve("k", LIMITS, 1)
    clock.now = backend.fallback.retry_at
    with pytest.raises(StoreUnavailableError, match="did not answer"):
        await backend.areserve("k", LIMITS, 1)


def test_arguments_are_checked() -> None:
    assert check_store_down("raise") == "raise"
    with pytest.raises(ConfigurationError, match="store_down"):
        check_store_down("open")
    with pytest.raises(ConfigurationError, match="store_timeout"):
        RateLimiter(requests_per_minute=1, store_timeout=0)
    with pytest.raises(ConfigurationError, match="store_down"):
        RateLimiter(requests_per_minute=1, store_down="maybe")


def test_a_redis_limiter_gets_the_fallback(closed_redis_url: str) -> None:
    limiter = RateLimiter(requests_per_minute=1, store=closed_redis_url)
    assert isinstance(limiter.backend, FallbackBackend)
    # nothing answers on that port: the limiter still admits, by the local limit
    assert limiter.try_acquire("k") is not None
    assert limiter.try_acquire("k") is None
    assert ":***@" in limiter.backend.fallback.url


@pytest.fixture
def closed_redis_url() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"redis://:hunter2@127.0.0.1:{port}/0"


def test_breaker_store_falls_back_to_local_state() -> None:
    from aipowertools.resilience._breaker_store import BreakerConfig, MemoryBreakerStore
    from aipowertools.resilience._fallback import FallbackBreakerStore

    config = BreakerConfig(2, 30.0, 60.0, None, 10, 1, 1)

    class FlakyStore(MemoryBreakerStore):
        down = False

        def before(self) -> Any:
            if self.down:
                raise ConnectionRefusedError("refused")
            return super().before()

        def after(self, outcome: Any, probe: bool) -> Any:
            if self.down:
                raise ConnectionRefusedError("refused")
            return super().after(outcome, probe)

    clock = Clock()
    shared = FlakyStore(config)
    store = FallbackBreakerStore(
        shared, MemoryBreakerStore(config), StoreFallback("breaker", "redis://h", clock=clock)
    )
    assert store.before().allowed
    shared.down = True
    assert store.before().allowed  # served locally
    store.after("failure", False)
    assert store.after("failure", False) == ("closed", "open")  # local circuit trips
    assert store.snapshot().state == "open"
    shared.down = False
    clock.now = store.fallback.retry_at
    assert store.snapshot().state == "closed"  # shared state again
    assert store.reset() is None

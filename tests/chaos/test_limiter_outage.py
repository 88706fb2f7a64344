"""The rate limiter's Redis goes away under a router: deployments stay healthy, calls go on.

Policy under test (docs/resilience.md, "When the store is down"): the limiter fails open to a
per-process limit of the same size while its Redis does not answer, and goes back to the shared
store at its next retry (at most ``store_retry_max_s`` = 1 s after a failure).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

from aipowertools.core.stores import async_redis_client
from aipowertools.resilience import RateLimiter
from aipowertools.router import Completion, Deployment, LLMRouter

from .conftest import RedisServer, Tally


class Instant:
    """A provider that always answers."""

    def __init__(self) -> None:
        self.calls = 0

    async def complete(
        self, d: Deployment, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any]
    ) -> Completion:
        self.calls += 1
        await asyncio.sleep(0)
        return Completion("ok", input_tokens=4, output_tokens=4)

    async def stream(self, d: Deployment, messages: Any, params: Any) -> Any:
        raise NotImplementedError


def _router(url: str, transport: Instant) -> LLMRouter:
    free = {"input_cost_per_token": 0.0, "output_cost_per_token": 0.0}
    return LLMRouter(
        [Deployment("openai/a", name="a", rpm=100_000, timeout=2.0, **free),
         Deployment("openai/b", name="b", rpm=100_000, timeout=2.0, **free)],
        transport=transport, catalog={}, monitor=False, strategy="quality_first",
        rate_limit_store=url,
    )  # fmt: skip


async def test_router_survives_limiter_store_kill(redis_server: RedisServer, tally: Tally) -> None:
    transport = Instant()
    router = _router(redis_server.url, transport)
    for _ in range(5):
        await router.route(task="x")
    redis_server.kill()
    down = 0
    for _ in range(30):  # every call while Redis is down
        tally.tried()
        try:
            await router.route(task="x")
        except Exception:
            tally.lost()
        else:
            tally.survived()
            down += 1
    # no deployment paid for the store's outage
    assert all(s.open_until == 0.0 and s.parked_until == 0.0 for s in _states(router))
    assert all(s.consecutive_failures == 0 for s in _states(router))
    assert down == 30
    redis_server.start()
    limiter = router.rate_limiter
    assert limiter is not None
    fallback = limiter.backend.fallback  # type: ignore[attr-defined]
    # at most retry_max_s (1 s) after the store is back, the next call asks it again
    fallback.clock = lambda: fallback.retry_at + 0.0
    for _ in range(30):
        tally.tried()
        await router.route(task="x")
        tally.survived()
    assert limiter.backend.shared_ok  # type: ignore[attr-defined]
    await async_redis_client(redis_server.url).aclose()  # type: ignore[attr-defined]


def _states(router: LLMRouter) -> list[Any]:
    return list(router.engine.states.values())


async def test_limiter_acquire_bounded_when_store_frozen(
    redis_server: RedisServer, tally: Tally
) -> None:
    limiter = RateLimiter(smooth=False, requests_per_minute=1000, store=redis_server.url)
    await limiter.acquire("k", timeout=2)
    redis_server.freeze()
    try:
        for _ in range(3):
            tally.tried()
            # fails open to the local limit within the timeout, never waits for the freeze
            r = await asyncio.wait_for(limiter.acquire("k", timeout=0.5), 10)
            assert r.key == "k"
            tally.survived()
    finally:
        redis_server.thaw()
    await async_redis_client(redis_server.url).aclose()  # type: ignore[attr-defined]


async def test_shared_breaker_survives_store_kill(redis_server: RedisServer, tally: Tally) -> None:
    from aipowertools.resilience import CircuitBreaker

    breaker = CircuitBreaker("dep", failure_threshold=3, store=redis_server.url)

    async def ok() -> str:
        await asyncio.sleep(0)
        return "ok"

    async def bad() -> str:
        raise ConnectionError("dependency down")

    assert await breaker.acall(ok) == "ok"
    redis_server.kill()
    for _ in range(50):  # the dependency is fine; only the breaker's store is gone
        tally.tried()
        try:
            await breaker.acall(ok)
        except Exception:
            tally.lost()
        else:
            tally.survived()
    assert tally.scenario.lost == 0
    # the dependency failing during the outage still trips the (local) circuit
    for _ in range(3):
        with contextlib.suppress(ConnectionError):
            await breaker.acall(bad)
    assert breaker.state.value == "open"
    redis_server.start()
    store = breaker._store
    store.fallback.clock = lambda: store.fallback.retry_at  # type: ignore[attr-defined]
    assert breaker.state.value == "closed"  # the shared state again: Redis never saw them
    assert not store.fallback.down  # type: ignore[attr-defined]

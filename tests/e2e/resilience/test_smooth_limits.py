"""Request limits are paced by default; the strict sliding window bursts into 429s.

The simulator enforces 600 requests per minute the way providers do: also pro rata over any
second (``sub_window_s=1``: at most 10 requests in any second). The strict sliding window
(``smooth=False``) lets a cold burst of 30 calls go at once and draws the provider's 429s;
by default a limiter paces requests (``requests_per_minute=600``: one slot every 0.1 s).
Counted from the simulator's answers and the limits; no timing is asserted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from aipowertools.core import litellm
from aipowertools.resilience import RateLimiter, rate_limit
from aipowertools.testing import SimModel, Simulator

CALLS = 30


@pytest.fixture
def sim() -> Simulator:
    with Simulator(
        models=[SimModel("gpt-4o-mini", reply="ok", rpm=600, sub_window_s=1.0)]
    ) as simulator:
        litellm()  # the simulator counts tokens with it: loaded before the first request
        yield simulator


async def _burst(call: Callable[[], Awaitable[int]]) -> dict[int, int]:
    statuses = await asyncio.gather(*(call() for _ in range(CALLS)))
    return {s: statuses.count(s) for s in set(statuses)}


def _poster(sim: Simulator, client: object) -> Callable[[], Awaitable[int]]:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}

    async def post() -> int:
        response = await client.post(sim.base_url("openai") + "/chat/completions", json=body)  # type: ignore[attr-defined]
        return int(response.status_code)

    return post


def test_the_seeds_decorator_is_smooth_by_default() -> None:
    from aipowertools.resilience import Limit

    @rate_limit(requests_per_minute=600)
    async def call() -> None:
        return None

    limiter = call.limiter  # type: ignore[attr-defined]
    assert Limit("requests", 1.0, 0.1) in limiter.default_limits


async def test_the_strict_sliding_window_bursts_into_the_providers_429s(sim: Simulator) -> None:
    import httpx

    limiter = RateLimiter(requests_per_minute=600, smooth=False)
    async with httpx.AsyncClient(timeout=30) as client:
        post = _poster(sim, client)

        async def strict() -> int:
            await limiter.acquire("gpt-4o-mini")
            return await post()

        counts = await _burst(strict)
    assert counts.get(429, 0) > 0  # a minute's quota at once exceeds the per-second share


def test_burst_and_smooth_shape_the_limits() -> None:
    from aipowertools.core.errors import ConfigurationError
    from aipowertools.resilience import Limit

    paced = RateLimiter(requests_per_minute=600, tokens_per_minute=90_000)
    assert Limit("requests", 1.0, 0.1) in paced.default_limits
    assert not any(lim.unit == "tokens" and lim.period < 60 for lim in paced.default_limits)
    bursty = RateLimiter(requests_per_minute=600, burst=10)
    assert Limit("requests", 10.0, 1.0) in bursty.default_limits
    strict = RateLimiter(requests_per_minute=600, smooth=False)
    assert strict.default_limits == (Limit("requests", 600.0, 60.0),)
    with pytest.raises(ConfigurationError, match="burst"):
        RateLimiter(requests_per_minute=1, burst=0)


def test_pacing_on_a_fake_clock_from_a_cold_start() -> None:
    """One request per 0.1 s slot at 600 per minute, counted on the limiter's own clock."""
    now = [1000.0]
    limiter = RateLimiter(requests_per_minute=600, clock=lambda: now[0])
    admitted = 0
    for _ in range(20):  # 2 s of 0.1 s slots, 5 tries per slot
        for _ in range(5):
            if limiter.try_acquire("k") is not None:
                admitted += 1
        now[0] += 0.1
    assert admitted == 20  # one per slot: never a burst above the per-second share
    strict = RateLimiter(requests_per_minute=600, smooth=False, clock=lambda: now[0])
    assert sum(strict.try_acquire("k") is not None for _ in range(30)) == 30  # all at once
    bursty = RateLimiter(requests_per_minute=600, burst=10, clock=lambda: now[0])
    assert sum(bursty.try_acquire("k") is not None for _ in range(30)) == 10

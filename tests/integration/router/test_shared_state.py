"""Routers in several processes share budget, rate limits and deployment health through Redis
(budget also through PostgreSQL)."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from aipowertools.core import CostTracker
from aipowertools.core.errors import ConfigurationError, RateLimitedError, TransientProviderError
from aipowertools.router import Chunk, Completion, Deployment, HealthPolicy, LLMRouter


class Instant:
    """Answers at once with fixed usage (the provider is not what is tested here)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def complete(
        self, d: Deployment, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any]
    ) -> Completion:
        self.calls.append(d.name)
        await asyncio.sleep(0.001)
        return Completion("ok", input_tokens=4, output_tokens=100)  # what was reserved

    async def stream(self, d: Deployment, messages: Any, params: Any) -> Any:
        raise NotImplementedError


def _deployments(**kw: Any) -> list[Deployment]:
    return [
        Deployment(
            "openai/pricey",
            name="pricey",
            local=False,
            quality=0.9,
            input_cost_per_token=1e-4,
            output_cost_per_token=1e-4,
            **kw,
        ),
        Deployment("ollama_chat/free", name="free", quality=0.5),
    ]


@pytest.mark.parametrize("backend", ["redis", "postgres"])
async def test_two_routers_never_overspend_one_budget(
    backend: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("redis_url" if backend == "redis" else "postgres_url")
    namespace = f"router{uuid.uuid4().hex[:8]}"
    trackers = [CostTracker(budget_usd=0.5, store=url, namespace=namespace) for _ in range(2)]
    transports = [Instant(), Instant()]
    routers = [
        LLMRouter(
            _deployments(),
            transport=t,
            cost_tracker=c,
            catalog={},
            monitor=False,
            strategy="quality_first",
        )
        for t, c in zip(transports, trackers, strict=True)
    ]
    # Each pricey call costs $0.0104 (4 prompt + 100 output tokens): 48 would fit at cost;
    # reservations hold the prompt's upper bound (the documented margin), so concurrent calls
    # admit a few fewer, never more.
    results = await asyncio.gather(
        *(routers[i % 2].route(task="x", max_tokens=100) for i in range(70))
    )
    pricey = sum(r.deployment == "pricey" for r in results)
    assert 40 <= pricey <= 48
    assert all(r.deployment == "free" for r in results if r.deployment != "pricey")
    assert trackers[0].total_usd() == pytest.approx(pricey * 0.0104)
    assert trackers[0].total_usd() <= 0.5
    assert trackers[1].remaining_usd("global") == pytest.approx(0.5 - pricey * 0.0104)
    for t in trackers:
        t.close()


async def test_rate_limit_shared_through_redis(redis_url: str) -> None:
    transports = [Instant(), Instant()]
    deployments = _deployments(rpm=5, timeout=0.2)
    name = f"pricey-{uuid.uuid4().hex[:6]}"  # fresh limiter keys in the shared database
    deployments[0] = deployments[0].replace(name=name)
    routers = [
        LLMRouter(
            deployments,
            transport=t,
            catalog={},
            monitor=False,
            strategy="quality_first",
            rate_limit_store=redis_url,
        )
        for t in transports
    ]
    results = [await routers[i % 2].route(task="x") for i in range(8)]
    assert sum(r.deployment == name for r in results) == 5


# --------------------------------------------------------------------------- shared health


class Scripted:
    """Answers at once, except that deployments in ``failing`` raise ``error()``."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.failing: set[str] = set()
        self.error: Any = lambda d: TransientProviderError("down", model=d.model)

    async def complete(
        self, d: Deployment, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any]
    ) -> Completion:
        self.calls.append(d.name)
        await asyncio.sleep(0)
        if d.name in self.failing:
            raise self.error(d)
        return Completion("ok", input_tokens=4, output_tokens=4)

    async def stream(self, d: Deployment, messages: Any, params: Any) -> Any:
        self.calls.append(d.name)
        if d.name in self.failing:
            raise self.error(d)
        yield Chunk(content="ok")
        yield Chunk(finish_reason="stop", input_tokens=4, output_tokens=1)


_FREE: dict[str, Any] = {"input_cost_per_token": 0.0, "output_cost_per_token": 0.0}


def _pair(url: str, cooldown_s: float) -> tuple[str, str, list[LLMRouter], list[Scripted]]:
    """Two routers sharing ``url`` (nothing shared in Python), preferring ``x`` over ``y``."""
    x, y = f"x-{uuid.uuid4().hex[:8]}", f"y-{uuid.uuid4().hex[:8]}"  # fresh keys
    transports = [Scripted(), Scripted()]
    routers = [
        LLMRouter(
            [
                Deployment("openai/x", name=x, quality=0.9, local=False, **_FREE),
                Deployment("openai/y", name=y, quality=0.6, local=False, **_FREE),
            ],
            transport=t,
            catalog={},
            monitor=False,
            strategy="quality_first",
            health=HealthPolicy(failure_threshold=2, cooldown_s=cooldown_s),
            health_store=url,
            health_refresh_s=0.05,
        )
        for t in transports
    ]
    return x, y, routers, transports


async def test_open_circuit_is_shared_through_redis(redis_url: str) -> None:
    # 2 s of cooldown: the checks while x is open must run inside it even on a loaded machine.
    x, y, (a, b), (ta, tb) = _pair(redis_url, cooldown_s=2.0)
    assert (await b.route(task="hi")).deployment == x  # healthy everywhere at first
    ta.failing.add(x)
    for _ in range(2):  # two failures open x's circuit in router a (each fails over to y)
        assert (await a.route(task="hi")).deployment == y
    assert "2 consecutive failures" in a.state(x).unavailable_reason(time.monotonic())
    await asyncio.sleep(0.1)  # b's refresh interval
    tb.calls.clear()
    result = await b.route(task="hi")
    assert result.deployment == y
    assert tb.calls == [y]
    why = dict(result.decision.rejected)[x]
    assert "circuit open" in why
    assert "2 consecutive failures" in why
    assert "reported by another router" in why
    assert "reported by another router" in b.state(x).unavailable_reason(time.monotonic())
    # Streams refresh too (their decision was taken before the refresh could run).
    stream = b.stream(task="hi")
    assert [c.content async for c in stream if c.content] == ["ok"]
    assert stream.deployment == y
    # After the cooldown the key has expired and both routers let a trial call through.
    ta.failing.clear()
    await asyncio.sleep(2.05)  # a lower bound: waiting longer changes nothing
    assert (await a.route(task="hi")).deployment == x
    assert (await b.route(task="hi")).deployment == x
    assert a.state(x).open_until == 0.0
    assert b.state(x).open_until == 0.0


async def test_retry_after_parking_is_shared_through_redis(redis_url: str) -> None:
    x, y, (a, b), (ta, tb) = _pair(redis_url, cooldown_s=30.0)
    ta.failing.add(x)
    # 2 s of Retry-After: the checks while x is parked must run inside it, even under load.
    ta.error = lambda d: RateLimitedError("429", model=d.model, retry_after=2.0)
    assert (await a.route(task="hi")).deployment == y  # one 429 parks x in a
    assert a.state(x).open_until == 0.0  # a 429 is not the deployment's failure
    await asyncio.sleep(0.1)
    tb.calls.clear()
    result = await b.route(task="hi")
    assert result.deployment == y
    assert tb.calls == [y]
    why = dict(result.decision.rejected)[x]
    assert "rate limited" in why
    assert "Retry-After (reported by another router)" in why
    assert b.state(x).open_until == 0.0  # parked, not open: no half-open trial afterwards
    ta.failing.clear()
    await asyncio.sleep(2.0)  # a lower bound: waiting longer changes nothing
    assert (await b.route(task="hi")).deployment == x
    assert (await a.route(task="hi")).deployment == x


async def test_dead_health_store_never_fails_a_call(caplog: pytest.LogCaptureFixture) -> None:
    x, y, routers, transports = _pair("redis://127.0.0.1:1/0", cooldown_s=30.0)
    router, transport = routers[0], transports[0]
    transport.failing.add(x)
    caplog.set_level(logging.WARNING, logger="aipowertools.router")
    results = [await router.route(task="hi") for _ in range(4)]
    assert [r.deployment for r in results] == [y] * 4  # x opened locally after two failures
    assert "consecutive failures" in router.state(x).unavailable_reason(time.monotonic())
    assert [c.content async for c in router.stream(task="hi") if c.content] == ["ok"]
    errors = [r for r in caplog.records if getattr(r, "event", "") == "router.health_store_error"]
    assert errors
    assert getattr(errors[0], "operation", None) == "refresh"
    assert getattr(errors[0], "store", None) == "redis://127.0.0.1:1/0"
    # Publishing to a dead store is a warning too, after the back-off.
    shared = router._shared_health
    assert shared is not None
    shared._down_until = 0.0
    caplog.clear()
    state = router.state(y)
    state.failure(time.monotonic(), counts=False, retry_after=5.0)
    shared.report(y, state, 0.0, 0.0)
    await shared.drain()
    assert [getattr(r, "operation", "") for r in caplog.records] == ["publish"]


@pytest.mark.parametrize(
    "url", ["postgresql://localhost/db", "sqlite:///tmp/health.db", "s3://bucket/p", "nope://x"]
)
def test_health_store_must_be_redis_or_memory(url: str) -> None:
    d = Deployment("openai/m", **_FREE)
    with pytest.raises(ConfigurationError, match=r"health_store|bad store URL") as info:
        LLMRouter([d], catalog={}, monitor=False, health_store=url)
    if url.startswith("postgresql"):
        assert "Redis only" in str(info.value)
        assert "PostgreSQL is not needed" in str(info.value)

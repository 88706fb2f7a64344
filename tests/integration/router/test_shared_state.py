"""Routers in several processes share budget and rate limits through Redis / PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from aipowertools.core import CostTracker
from aipowertools.router import Completion, Deployment, LLMRouter


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
    # Each pricey call reserves and costs $0.0104 (4 prompt + 100 output tokens): 48 fit.
    results = await asyncio.gather(
        *(routers[i % 2].route(task="x", max_tokens=100) for i in range(70))
    )
    pricey = sum(r.deployment == "pricey" for r in results)
    assert pricey == 48
    assert all(r.deployment == "free" for r in results if r.deployment != "pricey")
    assert trackers[0].total_usd() == pytest.approx(48 * 0.0104)
    assert trackers[1].remaining_usd("global") == pytest.approx(0.5 - 48 * 0.0104)
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

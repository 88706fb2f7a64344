"""Acceptance figures against the simulator: failover, hedging, concurrency.

Each test prints its figure (run with ``-s`` to see them); the bench reports the same with
more requests.
"""

from __future__ import annotations

import asyncio
import gc
import resource
import time
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from aipowertools.router import (
    Chunk,
    Completion,
    Deployment,
    HealthPolicy,
    LiteLLMTransport,
    LLMRouter,
    Race,
)
from aipowertools.testing import Fault, SimModel, Simulator

pytestmark = pytest.mark.filterwarnings(
    "ignore:Item .* is using the `ReadOnly` qualifier:UserWarning"
)

REPLY = "word " * 60  # output-heavy answers, like most chat traffic


def deployment(sim: Simulator, name: str, price: float = 1e-6, **kw: Any) -> Deployment:
    return Deployment(
        f"openai/{name}", name=name, api_base=sim.base_url("openai", name), api_key="sk-sim",
        local=False, input_cost_per_token=price, output_cost_per_token=price * 4, **kw,
    )  # fmt: skip


class CircuitCheckingTransport(LiteLLMTransport):
    """litellm, plus a record of any attempt sent while its deployment's circuit was open."""

    def __init__(self) -> None:
        super().__init__()
        self.router: LLMRouter | None = None
        self.sent_to_open: list[str] = []

    def _check(self, d: Deployment) -> None:
        assert self.router is not None
        state = self.router.state(d.name)
        # begin() has run: a half-open trial is marked "probing"; anything else open is a bug.
        if state.open_until and not state.probing:
            self.sent_to_open.append(d.name)

    async def complete(
        self, d: Deployment, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any]
    ) -> Completion:
        self._check(d)
        return await super().complete(d, messages, params)

    def stream(
        self, d: Deployment, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any]
    ) -> Any:
        self._check(d)
        return super().stream(d, messages, params)


async def _many(router: LLMRouter, n: int, concurrency: int, **kw: Any) -> list[Any]:
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> Any:
        async with gate:
            try:
                return await router.route(task=f"request {i}", max_tokens=100, **kw)
            except Exception as exc:
                return exc

    return await asyncio.gather(*(one(i) for i in range(n)))


async def test_failover_primary_30pct_failing_secondary_down() -> None:
    n = 500  # bench/bench_router.py runs the full 2,000
    models = [SimModel(m, reply="ok") for m in ("primary", "secondary", "tertiary")]
    models[0].fault_rates = {"server_error": 0.3}
    with Simulator(models=models, seed=7) as sim:
        sim.down("secondary")
        transport = CircuitCheckingTransport()
        router = LLMRouter(
            [deployment(sim, "primary", 1e-7), deployment(sim, "secondary", 2e-7),
             deployment(sim, "tertiary", 5e-7)],
            transport=transport, strategy="fallback", monitor=False,
            health=HealthPolicy(failure_threshold=5, cooldown_s=120),
        )  # fmt: skip
        transport.router = router
        start = time.perf_counter()
        results = await _many(router, n, concurrency=50)
        elapsed = time.perf_counter() - start
        ok = [r for r in results if not isinstance(r, BaseException)]
        rate = len(ok) / n
        by_model = sim.stats().by_model
        print(
            f"\nfailover: {len(ok)}/{n} = {rate:.4%} succeeded in {elapsed:.1f} s; "
            f"simulator saw {by_model['primary'].requests} primary, "
            f"{by_model['tertiary'].requests} tertiary requests"
        )
        assert rate >= 0.999
        assert transport.sent_to_open == []
        # The dead secondary was tried until its circuit opened, and never again.
        secondary = router.state("secondary")
        assert secondary.open_until > 0
        tried = sum(1 for r in ok for a in r.attempts if a.deployment == "secondary")
        assert tried <= 50 + 5  # at most what was in flight when the circuit opened
        assert {r.deployment for r in ok} <= {"primary", "tertiary"}


async def test_race_answers_every_slowed_request_from_the_hedge() -> None:
    """Race takes the tail off: no request waits for a slow first token.

    The latency and cost figures (p99 with and without hedging) are measured by
    ``bench/bench_router.py``. Here the verdict counts who answered, so a loaded machine
    cannot flip it: a's slowed answers would take 30 s, the hedge fires after 0.1 s.
    """
    n = 60
    models = [SimModel(m, reply=REPLY, ttft_ms=10) for m in ("a", "b")]
    slow = Fault("slow_first_token", delay_s=30.0)
    with Simulator(models=models, seed=3) as sim:
        sim.schedule("a", [slow if i % 10 == 0 else None for i in range(n)])
        router = LLMRouter(
            [deployment(sim, "a", 1e-6), deployment(sim, "b", 1e-6)],
            strategy=Race("fallback", hedge_after=0.1),
            monitor=False,
        )
        results = await _many(router, n, concurrency=4)
        assert all(not isinstance(r, BaseException) for r in results)
        assert sim.wait_idle(30.0)
        stats = sim.stats()
    assert stats.by_model["a"].requests == n  # every request went to the primary first
    # The 6 slowed calls to a never answered: each was cancelled once a hedge on b answered
    # (on a loaded machine a hedge may also beat an unslowed a: then a is cancelled too).
    slowed = [
        r
        for r in results
        if any(a.deployment == "a" and a.error_kind == "cancelled" for a in r.attempts)
    ]
    assert len(slowed) >= n // 10
    assert all(r.deployment == "b" for r in slowed)
    assert all(any(a.hedge and a.ok for a in r.attempts) for r in slowed)
    assert stats.cancelled >= n // 10
    hedges = sum(1 for r in results for a in r.attempts if a.hedge)
    extra = sum(a.cost_usd for r in results for a in r.attempts if a.deployment != r.deployment)
    print(f"\nrace: {hedges} hedges for {n} requests, losers cost ${extra:.6f}")
    assert all(r.cost == pytest.approx(sum(a.cost_usd for a in r.attempts)) for r in results)


async def test_1000_concurrent_requests_no_errors_bounded_memory() -> None:
    with Simulator(
        models=[SimModel("a", reply="ok", ttft_ms=50), SimModel("b", reply="ok")], seed=1
    ) as sim:
        router = LLMRouter(
            [deployment(sim, "a", 1e-7), deployment(sim, "b", 1e-6)],
            strategy="least_busy",
            monitor=False,
        )
        await router.route(task="warm up")
        rss = []
        for _ in range(2):
            results = await _many(router, 1000, concurrency=1000)
            errors = [r for r in results if isinstance(r, BaseException)]
            assert errors == []
            gc.collect()
            rss.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        print(f"\n1000 concurrent x2: 0 errors, max RSS {rss[0]:.0f} MB then {rss[1]:.0f} MB")
        assert rss[1] - rss[0] < 50  # a second wave does not keep growing the process
        assert all(router.state(n).inflight == 0 for n in ("a", "b"))


def test_chunk_type_is_exported() -> None:  # keeps the import above honest for readers
    assert Chunk(content="x").content == "x"

"""Reservations are an upper bound: providers billing more than we counted never overspend.

Hypothesis draws calls whose billed prompt exceeds our (estimated) count by anything up to
the documented margin (``prompt_upper_bound``: x1.25 plus chat framing) and whose output is
anything up to ``max_tokens``. Two processes (threads for ``memory://``) reserve
``worst_case_cost`` and settle the billed cost against one hard budget, on every backend;
the settled total never passes the budget. A settle above its reservation (a provider
billing beyond the margin) is logged, recorded at its real cost and immediately reduces
what is left.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aipowertools.core import (
    CostTracker,
    Usage,
    cost,
    prompt_upper_bound,
    worst_case_cost,
)
from aipowertools.core.errors import BudgetExceededError

MODEL = "gpt-4o-mini"
MAX_TOKENS = 50

WORKER = r"""
import json, sys
from aipowertools.core import CostTracker, Usage, worst_case_cost
from aipowertools.core.errors import BudgetExceededError

args = json.loads(sys.argv[1])
tracker = CostTracker(
    budget_usd=args["budget"], store=args["store"], namespace=args["ns"], budget_period="total"
)
ok = 0
for counted, billed_in, billed_out in args["calls"]:
    worst = worst_case_cost(args["model"], counted, args["max_tokens"], estimated=True)
    try:
        res = tracker.reserve(worst)
    except BudgetExceededError:
        continue
    tracker.settle(res, model=args["model"], usage=Usage(billed_in, billed_out))
    ok += 1
tracker.close()
print(json.dumps({"ok": ok}))
"""


@st.composite
def billed_calls(draw: st.DrawFn) -> tuple[int, int, int]:
    """(counted prompt tokens, billed prompt tokens up to the margin, billed output)."""
    counted = draw(st.integers(1, 400))
    bound = prompt_upper_bound(counted, estimated=True, messages=1)
    return counted, draw(st.integers(counted, bound)), draw(st.integers(0, MAX_TOKENS))


schedules = st.lists(billed_calls(), min_size=20, max_size=60)


def _budget(calls: list[tuple[int, int, int]]) -> float:
    """About half of what the calls would cost: enough that some are refused."""
    return sum(cost(Usage(i, o), MODEL) for _, i, o in calls) / 2 + 1e-7


@given(billed_calls())
@settings(max_examples=300, deadline=None)
def test_billed_within_the_margin_never_costs_more_than_its_reservation(
    call: tuple[int, int, int],
) -> None:
    counted, billed_in, billed_out = call
    worst = worst_case_cost(MODEL, counted, MAX_TOKENS, estimated=True)
    assert cost(Usage(billed_in, billed_out), MODEL) <= worst


@given(schedules)
@settings(max_examples=25, deadline=None)
def test_no_overspend_with_margin_billing_memory_threads(calls: list[tuple[int, int, int]]) -> None:
    budget = _budget(calls)
    tracker = CostTracker(budget_usd=budget, store="memory://", budget_period="total")

    def run(part: list[tuple[int, int, int]]) -> None:
        for counted, billed_in, billed_out in part:
            try:
                res = tracker.reserve(worst_case_cost(MODEL, counted, MAX_TOKENS, estimated=True))
            except BudgetExceededError:
                continue
            tracker.settle(res, model=MODEL, usage=Usage(billed_in, billed_out))

    threads = [threading.Thread(target=run, args=(calls[i::2],)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert tracker.total_usd() <= budget


@pytest.fixture(scope="module")
def worker_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(tmp_path_factory.mktemp("pycache"))
    subprocess.run(
        [sys.executable, "-c", "import aipowertools.core, redis, psycopg"],
        env=env,
        check=True,
        timeout=120,
    )
    return env


@pytest.fixture(params=["sqlite", "redis", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/ledger.db"
    else:
        yield request.getfixturevalue({"redis": "redis_url"}.get(request.param, "postgres_url"))


@given(calls=schedules)
@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_overspend_with_margin_billing_across_processes(
    store: str, worker_env: dict[str, str], calls: list[tuple[int, int, int]]
) -> None:
    budget = _budget(calls)
    ns = f"m{uuid.uuid4().hex[:12]}"
    base: dict[str, Any] = {
        "store": store, "ns": ns, "budget": budget, "model": MODEL, "max_tokens": MAX_TOKENS
    }  # fmt: skip
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, json.dumps({**base, "calls": calls[i::2]})],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=worker_env,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=50) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    tracker = CostTracker(store=store, namespace=ns, budget_usd=budget, budget_period="total")
    try:
        assert tracker.total_usd() <= budget
        assert sum(json.loads(o.splitlines()[-1])["ok"] for o, _ in outs) == len(
            list(tracker.records())
        )
    finally:
        tracker.close()


def test_a_settle_above_its_reservation_is_logged_recorded_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tracker = CostTracker(budget_usd=1.0, store="memory://", budget_period="total")
    res = tracker.reserve(0.10)
    with caplog.at_level(logging.WARNING, logger="aipowertools.core"):
        tracker.settle(res, model=MODEL, cost_usd=0.30, request_id="over")
    assert "above its reservation" in caplog.text
    (event,) = [r for r in caplog.records if getattr(r, "event", None) == "budget.overrun"]
    assert event.reserved_usd == pytest.approx(0.10)
    assert tracker.get_record("over").cost_usd == pytest.approx(0.30)
    assert tracker.remaining_usd("global") == pytest.approx(0.70)  # the full cost, at once
    with pytest.raises(BudgetExceededError):
        tracker.reserve(0.71)


def test_the_router_never_admits_more_than_the_budget_when_billed_above_its_count() -> None:
    """The issue's case: a provider billing a few prompt tokens more than the router counts."""
    import asyncio
    from collections.abc import Mapping, Sequence

    from aipowertools.router import Completion, Deployment, LLMRouter, NoDeploymentError
    from aipowertools.router._context import prepare

    task = "Summarise: " + "lorem ipsum " * 3
    counted = prepare(task, None).tokens
    billed = prompt_upper_bound(counted, estimated=True, messages=1)

    class Billing:
        async def complete(
            self, d: Deployment, m: Sequence[Mapping[str, Any]], p: Mapping[str, Any]
        ) -> Completion:
            return Completion("ok", input_tokens=billed, output_tokens=p["max_tokens"])

        async def stream(self, *a: Any) -> Any:  # pragma: no cover - not streamed here
            raise NotImplementedError

    one = cost(Usage(billed, 10), MODEL)
    tracker = CostTracker(budget_usd=80 * one, store="memory://", budget_period="month")
    router = LLMRouter(
        deployments=[Deployment(f"openai/{MODEL}", local=False)],
        transport=Billing(),
        cost_tracker=tracker,
    )

    async def calls() -> int:
        admitted = 0
        for _ in range(120):
            try:
                await router.route(task, max_tokens=10)
            except (BudgetExceededError, NoDeploymentError):  # refused before any call
                continue
            admitted += 1
        return admitted

    admitted = asyncio.run(calls())
    assert admitted <= 80
    assert tracker.total_usd() <= 80 * one + 1e-12

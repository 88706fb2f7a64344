"""The budget store dies between reserve and settle: the billed cost is journaled, not lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from aipowertools.core import CostTracker

from .conftest import RedisServer, Tally


def test_settle_while_redis_is_down_is_never_lost(
    redis_server: RedisServer, tally: Tally, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIPOWERTOOLS_HOME", str(tmp_path))
    redis_server.persistent = True  # AOF: the restart keeps what was acknowledged
    redis_server.restart()
    tracker = CostTracker(store=redis_server.url, budget_usd=100.0)
    billed = 0.0
    for i in range(5):
        res = tracker.reserve(1.0, request_id=f"call-{i}")
        redis_server.kill()  # the provider is answering; the budget store is gone
        tally.tried()
        tracker.settle(res, model="gpt-4o", cost_usd=0.25)  # no error: journaled
        billed += 0.25
        redis_server.start()
    assert tracker._journal is not None
    assert tracker._journal.pending() == 5
    assert tracker.flush_journal() == 5
    spent = tracker.spent_usd()
    survived = round(spent / 0.25)
    tally.survived(survived)
    tally.lost(5 - survived)
    assert spent == pytest.approx(billed)
    # the holds were settled by the replayed writes: nothing is reserved any more
    assert tracker.remaining_usd("global") == pytest.approx(100.0 - billed)
    tracker.close()


def test_redis_budget_problems_names_missing_persistence(redis_server: RedisServer) -> None:
    import redis

    from aipowertools.core.stores import redis_budget_problems

    problems = redis_budget_problems(redis_server.url)
    assert len(problems) == 1
    assert "persistence is off" in problems[0]
    r = redis.Redis.from_url(redis_server.url)
    r.config_set("appendonly", "yes")
    r.config_set("maxmemory-policy", "allkeys-lru")
    problems = redis_budget_problems(redis_server.url)
    assert [p.split(" ")[0] for p in problems] == ["maxmemory-policy"]
    r.config_set("maxmemory-policy", "noeviction")
    assert redis_budget_problems(redis_server.url) == []
    r.close()

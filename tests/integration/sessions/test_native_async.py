"""Backends with native async methods (Redis, PostgreSQL) are awaited directly, same semantics."""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any

import pytest

from aipowertools.core.errors import SessionConflictError
from aipowertools.sessions import Session, SessionLimitError
from aipowertools.sessions._postgres import PostgresBackend
from aipowertools.sessions._redis import RedisBackend


@pytest.fixture
def redis_backend(redis_url: str) -> RedisBackend:
    return RedisBackend(redis_url, prefix=f"t{uuid.uuid4().hex[:8]}")


@pytest.fixture(params=["redis", "postgresql"])
def native(request: pytest.FixtureRequest) -> Any:
    if request.param == "redis":
        return request.getfixturevalue("redis_backend")
    return PostgresBackend(request.getfixturevalue("postgres_url"))


async def test_async_paths_match_sync(native: Any) -> None:
    ns = f"a{uuid.uuid4().hex[:8]}"
    s = Session("native", store=native, namespace=ns, ttl=60)
    assert await s.aset("v", {"a": 1}, expected_version=0) == 1
    with pytest.raises(SessionConflictError):
        await s.aset("v", {"a": 2}, expected_version=0)
    await s.aextend("h", range(6))
    await s.aextend("h", [])
    assert await s.alength("h") == 6
    assert await s.aitems("h", -2) == [4, 5]
    assert await s.aitems("h", 1, -3) == [1, 2]
    assert await s.aget("h") == list(range(6))
    assert await s.aget("v") == {"a": 1}
    assert await s.aget("missing", "dflt") == "dflt"
    assert s.get("h") == list(range(6))  # the sync side sees the same data
    assert Session.list_sessions(native, namespace=ns) == ["native"]
    if isinstance(native, RedisBackend):  # the list got the session's TTL
        assert native._r.pttl(native._base(ns, "native") + "l:h") > 0


async def test_async_limits(native: Any) -> None:
    ns = f"a{uuid.uuid4().hex[:8]}"
    window = Session("w", store=native, namespace=ns, max_items=3)
    for i in range(5):
        await window.aappend("h", i)
    assert await window.aget("h") == [2, 3, 4]
    strict = Session("s", store=native, namespace=ns, max_items=2, trim="error")
    await strict.aextend("h", [1, 2])
    with pytest.raises(SessionLimitError):
        await strict.aappend("h", 3)
    await native.aappend(ns, "big", "h", [b"x"] * 4500)  # past one RPUSH's batch
    assert await native.alength(ns, "big", "h") == 4500


async def test_async_buffered_session_uses_the_buffer(native: Any) -> None:
    ns = f"a{uuid.uuid4().hex[:8]}"
    s = Session("buf", store=native, namespace=ns, auto_save=False)
    await s.aset("v", 1)
    await s.aappend("h", "x")
    assert await s.aget("h") == ["x"]
    assert Session("buf", store=native, namespace=ns).keys() == []
    await s.asave()
    assert Session("buf", store=native, namespace=ns).get_all() == {"h": ["x"], "v": 1}


async def test_script_cache_miss_falls_back_to_eval(redis_backend: RedisBackend) -> None:
    script = SimpleNamespace(sha="0" * 40, script="return 7")
    assert await redis_backend._aeval(script, [], []) == 7


def test_lock_held_past_its_ttl_is_reported(redis_backend: RedisBackend) -> None:
    import time

    from aipowertools.sessions import SessionLockError

    s = Session("l", store=redis_backend, namespace=f"a{uuid.uuid4().hex[:8]}")
    with pytest.raises(SessionLockError), s.lock("edit", ttl=0.05):
        time.sleep(0.15)  # the lock expired: someone else could have taken it


async def test_expired_postgres_session_is_renewed_empty(postgres_url: str) -> None:
    import asyncio

    backend = PostgresBackend(postgres_url)
    ns = f"a{uuid.uuid4().hex[:8]}"
    await Session("gone", store=backend, namespace=ns, ttl=0.2).aappend("h", "old")
    await asyncio.sleep(0.3)
    again = Session("gone", store=backend, namespace=ns)
    await again.aappend("h", "new")
    assert await again.aget("h") == ["new"]

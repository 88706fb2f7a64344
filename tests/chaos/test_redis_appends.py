"""Redis frozen mid-append: the reply is lost after the command was sent, the append is resent.

An append carries an id, so the resend stores nothing more: every message is stored at most
once, and exactly once when the call returned normally.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from aipowertools.sessions import Session
from aipowertools.sessions._redis import RedisBackend

from .conftest import RedisServer, Tally


def _client(url: str, asynchronous: bool = False) -> Any:
    """A client that gives up reading after 0.2 s and retries for ~2 s (outlasting a freeze)."""
    import redis
    import redis.asyncio
    import redis.asyncio.retry
    import redis.retry
    from redis.backoff import ConstantBackoff

    cls = redis.asyncio.Redis if asynchronous else redis.Redis
    Retry = redis.asyncio.retry.Retry if asynchronous else redis.retry.Retry
    return cls.from_url(
        url, socket_timeout=0.2, socket_connect_timeout=0.2,
        retry=Retry(ConstantBackoff(0.1), 20), retry_on_timeout=True, max_connections=100,
    )  # fmt: skip


def _freeze_for(server: RedisServer, seconds: float) -> threading.Timer:
    server.freeze()
    timer = threading.Timer(seconds, server.thaw)
    timer.start()
    return timer


def test_sync_append_during_a_freeze_is_stored_once(
    redis_server: RedisServer, tally: Tally
) -> None:
    client = _client(redis_server.url)
    backend = RedisBackend(redis_server.url, client=client)
    assert backend._lane is not None  # the fast lane is what loses the reply here
    s = Session("frozen", store=backend)
    s.append("log", "warm")  # connections and the script are ready
    returned: list[str] = []
    for i in range(3):
        tally.tried()
        timer = _freeze_for(redis_server, 0.6)
        try:
            s.append("log", f"m{i}")
        except Exception:
            tally.refused()
        else:
            returned.append(f"m{i}")
        timer.join()
    stored = s.get("log")
    for i in range(3):
        n = stored.count(f"m{i}")
        if n > 1 or (f"m{i}" in returned and n != 1):
            tally.lost()
        elif f"m{i}" in returned:
            tally.survived()
    assert all(stored.count(f"m{i}") <= 1 for i in range(3)), stored
    assert all(stored.count(m) == 1 for m in returned), stored
    client.close()


async def test_async_append_during_a_freeze_is_stored_once(
    redis_server: RedisServer, tally: Tally
) -> None:
    backend = RedisBackend(redis_server.url, client=_client(redis_server.url))
    aclient = _client(redis_server.url, asynchronous=True)
    backend._ar = lambda: aclient  # type: ignore[method-assign]
    s = Session("afrozen", store=backend)
    await s.aappend("log", "warm")
    returned: list[str] = []
    for i in range(3):
        tally.tried()
        timer = _freeze_for(redis_server, 0.6)
        try:
            await s.aappend("log", f"a{i}")
        except Exception:
            tally.refused()
        else:
            returned.append(f"a{i}")
        await asyncio.to_thread(timer.join)
    stored = await s.aget("log")
    for i in range(3):
        n = stored.count(f"a{i}")
        if n > 1 or (f"a{i}" in returned and n != 1):
            tally.lost()
        elif f"a{i}" in returned:
            tally.survived()
    assert all(stored.count(f"a{i}") <= 1 for i in range(3)), stored
    assert all(stored.count(m) == 1 for m in returned), stored
    await aclient.aclose()


@pytest.mark.parametrize("n", [1])
def test_drop_forgets_append_ids(redis_server: RedisServer, n: int) -> None:
    import redis

    s = Session("dropped", store=redis_server.url)
    s.append("log", n)
    r = redis.Redis.from_url(redis_server.url)
    assert any(k.endswith(b":a") for k in r.keys("*"))
    s.clear()
    assert not any(k.endswith(b":a") for k in r.keys("*"))
    r.close()

from __future__ import annotations

import asyncio
import threading
import uuid

from aipowertools.core.stores import (
    async_postgres_pool,
    async_redis_client,
    parse_store_url,
    postgres_pool,
    redis_client,
)


def test_redis_client_is_shared_and_works(redis_url: str) -> None:
    clients: list[object] = []
    threads = [
        threading.Thread(target=lambda: clients.append(redis_client(redis_url))) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(c is clients[0] for c in clients)
    assert redis_client(parse_store_url(redis_url, default="")) is clients[0]
    client = redis_client(redis_url)
    key = f"core-test:{uuid.uuid4()}"
    client.set(key, "v", ex=30)
    assert client.get(key) == b"v"  # bytes replies, as every backend expects
    client.delete(key)


def test_async_redis_client_is_per_loop(redis_url: str) -> None:
    key = f"core-test:{uuid.uuid4()}"

    async def use() -> object:
        first = async_redis_client(redis_url)
        assert async_redis_client(redis_url) is first
        await first.set(key, "1", ex=30)
        assert await first.incr(key) == 2
        await first.delete(key)
        await first.aclose()  # type: ignore[attr-defined]  # stubs predate aclose
        return first

    one = asyncio.run(use())
    two = asyncio.run(use())  # a new loop gets its own client, and the old one still worked
    assert one is not two


def test_postgres_pool_is_shared_and_works(postgres_url: str) -> None:
    pool = postgres_pool(postgres_url)
    assert postgres_pool(postgres_url) is pool
    table = f"core_test_{uuid.uuid4().hex[:8]}"
    with pool.connection() as conn:
        conn.execute(f"CREATE TABLE {table} (n int)")
        conn.execute(f"INSERT INTO {table} VALUES (41)")
    with pool.connection() as conn:
        row = conn.execute(f"SELECT n + 1 FROM {table}").fetchone()
        conn.execute(f"DROP TABLE {table}")
    assert row == (42,)


async def test_async_postgres_pool(postgres_url: str) -> None:
    pools = await asyncio.gather(*(async_postgres_pool(postgres_url) for _ in range(3)))
    pool = await async_postgres_pool(postgres_url)
    assert all(p is pool for p in pools[-1:])
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT 1 + 1")
        assert await cur.fetchone() == (2,)
    for p in {id(p): p for p in [*pools, pool]}.values():
        await p.close()


def test_exhausted_pool_gives_typed_error(postgres_url: str) -> None:
    import psycopg_pool
    import pytest

    from aipowertools.core.errors import StoreUnavailableError

    pool = postgres_pool(postgres_url)
    held = [pool.getconn() for _ in range(pool.max_size)]
    try:
        with pytest.raises(StoreUnavailableError) as info:
            pool.getconn(timeout=0.05)
        assert isinstance(info.value, psycopg_pool.PoolTimeout)
    finally:
        for conn in held:
            pool.putconn(conn)


async def test_exhausted_async_pool_gives_typed_error(postgres_url: str) -> None:
    import pytest

    from aipowertools.core.errors import StoreUnavailableError

    pool = await async_postgres_pool(postgres_url)
    held = [await pool.getconn() for _ in range(pool.max_size)]
    try:
        with pytest.raises(StoreUnavailableError):
            await pool.getconn(timeout=0.05)
    finally:
        for conn in held:
            await pool.putconn(conn)
        await pool.close()

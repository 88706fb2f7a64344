"""LLMCache on real Redis and PostgreSQL: the same behaviour as the embedded stores."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from aipowertools.cache import Answer, LLMCache
from aipowertools.core import CostTracker

from .conftest import Clock, words

Q = [{"role": "user", "content": "What is the capital of France?"}]
MODEL = "gpt-4o-mini"


def test_hit_miss_ttl_invalidate_clear(make: Any, clock: Clock) -> None:
    cache = make(ttl=60, scope="user")
    assert cache.lookup(Q, model=MODEL, user="ann") is None
    assert cache.store("Paris.", messages=Q, model=MODEL, user="ann", input_tokens=1000)
    assert cache.lookup(Q, model=MODEL, user="bob") is None
    hit = cache.lookup(Q, model=MODEL, user="ann")
    assert hit is not None
    assert hit.value == "Paris."
    assert hit.saved_usd == pytest.approx(0.00015)
    cache.store("x", messages="b", model="gpt-4o", user="bob", tags=["faq"], ttl=None)
    clock.advance(61)
    assert cache.lookup(Q, model=MODEL, user="ann") is None  # expired
    assert cache.lookup("b", model="gpt-4o", user="bob") is not None
    assert cache.invalidate("tag:fa*") == 1
    assert cache.lookup("b", model="gpt-4o", user="bob") is None
    cache.store("y", messages="c", model=MODEL, user="ann")
    cache.store("z", messages="d", model=MODEL, user="ann")
    assert cache.invalidate("user:bob") == 0
    assert cache.clear() == 2
    assert cache.lookup("c", model=MODEL, user="ann") is None


def test_backend_edges(make: Any) -> None:
    cache = make(semantic=words)
    backend = cache._open()
    assert backend.delete([]) == 0
    cache.store("Paris.", messages=Q, model=MODEL)
    (vector,) = backend.vectors(cache._request_key(Q, MODEL, None, "model", {}).partition)
    backend.drop_vector("p", vector[0])  # a no-op on PostgreSQL, an HDEL on Redis


def test_namespaces_are_separate(make: Any) -> None:
    a = make()
    b = make(namespace="other_ns_cache")
    a.store("A", messages=Q, model=MODEL)
    assert b.lookup(Q, model=MODEL) is None
    b.clear()


def test_corrupt_entry_is_a_miss_and_deleted(make: Any) -> None:
    cache = make()
    cache.store("Paris.", messages=Q, model=MODEL)
    key = cache.key(Q, model=MODEL)
    cache._open().put(key, b"garbage", ttl=None)
    assert cache.lookup(Q, model=MODEL) is None
    assert cache._open().get(key) is None


def test_semantic_on_the_server(make: Any) -> None:
    cache = make(semantic=words, threshold=0.8)
    cache.store("Paris.", messages=Q, model=MODEL, ttl=600)
    hit = cache.lookup("what is the capital of france", model=MODEL)
    assert hit is not None
    assert hit.semantic
    assert cache.lookup("how tall is everest", model=MODEL) is None
    assert cache.lookup("what is the capital of france", model=MODEL, semantic=False) is None
    cache.store("Paris!", messages="capital of France", model=MODEL)  # no TTL
    assert cache.invalidate("*") == 2


def test_hits_in_a_shared_ledger(make: Any, server_url: str) -> None:
    tracker = CostTracker(store=server_url, namespace="cachetest" + str(time.time_ns())[-6:])
    cache = make(cost_tracker=tracker)
    cache.store("Paris.", messages=Q, model=MODEL, input_tokens=1000, output_tokens=500)
    cache.lookup(Q, model=MODEL)
    assert tracker.saved_usd() == pytest.approx(0.00045)
    assert tracker.total_usd() == 0.0
    tracker.close()


def test_single_flight_across_threads(make: Any) -> None:
    cache = make(single_flight=True)
    calls: list[int] = []
    started = threading.Event()
    release = threading.Event()

    def slow() -> Answer:
        calls.append(1)
        started.set()
        release.wait(10)
        return Answer("Paris.")

    out: list[Any] = []
    first = threading.Thread(target=lambda: out.append(cache.call(slow, messages=Q, model=MODEL)))
    first.start()
    started.wait(10)
    second = threading.Thread(target=lambda: out.append(cache.call(slow, messages=Q, model=MODEL)))
    second.start()
    release.set()
    first.join(10)
    second.join(10)
    assert out == ["Paris.", "Paris."]
    assert len(calls) == 1


async def test_async_api(make: Any) -> None:
    cache = make()

    async def answer() -> str:
        return "Paris."

    assert await cache.acall(answer, messages=Q, model=MODEL) == "Paris."
    hit = await cache.alookup(Q, model=MODEL)
    assert hit is not None
    assert await cache.aclear() == 1


def test_redis_keys_carry_the_ttl(redis_url: str) -> None:
    import redis

    cache = LLMCache(redis_url, ttl=120, namespace="ttlcheck", semantic=words)
    cache.store("Paris.", messages=Q, model=MODEL)
    client = redis.Redis.from_url(redis_url)
    names = list(client.scan_iter(match="aipt:cache:ttlcheck:*"))
    assert len(names) == 2  # the entry and its partition's vector index
    for name in names:
        assert 0 < client.pttl(name) <= 120_000
    cache.clear()
    assert not list(client.scan_iter(match="aipt:cache:ttlcheck:*"))
    client.close()


def test_postgres_table_index_and_expired_row_cleanup(postgres_url: str) -> None:
    import psycopg

    from aipowertools.cache import _postgres

    cache = LLMCache(postgres_url, ttl=0.001, namespace="cleanup")
    for i in range(3):
        cache.store(str(i), messages=f"q{i}", model=MODEL)
    backend = cache._open()
    time.sleep(0.01)  # past the 1 ms TTL (a cleanup, not a timing assertion)
    assert backend.cleanup() == 3  # type: ignore[attr-defined]
    with psycopg.connect(postgres_url) as conn:
        indexes = {
            r[0]
            for r in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'aipt_cache_cleanup'"
            )
        }
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                "EXPLAIN SELECT blob FROM aipt_cache_cleanup WHERE key = 'k' "
                "AND (expires_at IS NULL OR expires_at > 0)"
            )
        )
    assert {
        "aipt_cache_cleanup_pkey",
        "aipt_cache_cleanup_exp",
        "aipt_cache_cleanup_part",
    } <= indexes
    assert "aipt_cache_cleanup_pkey" in plan  # one index read per lookup
    # every CLEANUP_EVERY writes of a process also delete expired rows
    writes = _postgres.CLEANUP_EVERY - backend._writes % _postgres.CLEANUP_EVERY  # type: ignore[attr-defined]
    for i in range(writes):
        cache.store(str(i), messages=f"w{i}", model=MODEL)
    with psycopg.connect(postgres_url) as conn:
        (left,) = conn.execute("SELECT count(*) FROM aipt_cache_cleanup").fetchone()  # type: ignore[misc]
    assert left < writes
    cache.clear()


def test_down_server_is_a_miss(caplog: pytest.LogCaptureFixture) -> None:
    cache = LLMCache("postgresql://postgres@127.0.0.1:1/nothing")
    assert cache.call(lambda: "fresh", messages=Q, model=MODEL) == "fresh"
    assert "treated as a miss" in caplog.text

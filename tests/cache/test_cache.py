"""LLMCache on the embedded stores (memory and diskcache): the behaviour every backend shares."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from aipowertools.cache import Answer, CacheStats, LLMCache
from aipowertools.core import CostTracker
from aipowertools.core.errors import ConfigurationError, StoreUnavailableError

from .conftest import Clock, WordEmbedder

Q = [{"role": "user", "content": "What is the capital of France?"}]
MODEL = "gpt-4o-mini"


def test_hit_miss_and_stats_with_money_saved(make: Any) -> None:
    cache = make()
    assert cache.lookup(Q, model=MODEL) is None
    assert cache.store("Paris.", messages=Q, model=MODEL, input_tokens=1000, output_tokens=500)
    hit = cache.lookup(Q, model=MODEL)
    assert hit is not None
    assert hit.value == "Paris."
    assert hit.kind == "hit"
    assert not hit.semantic
    assert hit.saved_usd == pytest.approx(0.00045)  # gpt-4o-mini catalog prices
    assert cache.lookup(Q, model="gpt-4o") is None  # model scope: another model misses
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.hit_rate) == (1, 2, pytest.approx(1 / 3))
    assert stats.tokens_saved == 1500
    assert stats.saved_usd == pytest.approx(0.00045)
    assert stats.by_model[MODEL].hits == 1
    assert stats.by_model["gpt-4o"].misses == 1
    assert stats.by_scope["model"].lookups == 3
    cache.reset_stats()
    assert cache.stats() == CacheStats()


def test_hits_are_recorded_in_the_ledger_as_free_calls_with_savings(make: Any) -> None:
    tracker = CostTracker(store="memory://")
    cache = make(cost_tracker=tracker)
    cache.store("Paris.", messages=Q, model=MODEL, input_tokens=1000, output_tokens=500)
    cache.lookup(Q, model=MODEL, user="ann", tags=["faq"])
    (record,) = tracker.records()
    assert record.cost_usd == 0.0
    assert record.saved_usd == pytest.approx(0.00045)
    assert record.user == "ann"
    assert set(record.tags) == {"faq", "cache:hit"}
    assert tracker.saved_usd() == pytest.approx(0.00045)
    assert tracker.total_usd() == 0.0


def test_a_broken_ledger_never_fails_a_hit(make: Any, caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def record(self, **kwargs: Any) -> None:
            raise OSError("disk full")

    cache = make(cost_tracker=Broken())
    cache.store("Paris.", messages=Q, model=MODEL)
    with caplog.at_level(logging.WARNING, "aipowertools.cache"):
        assert cache.lookup(Q, model=MODEL) is not None
    assert "ledger failed" in caplog.text


def test_ttl_per_cache_and_per_entry(make: Any, clock: Clock) -> None:
    cache = make(ttl=60)
    cache.store("a", messages="one", model=MODEL)
    cache.store("b", messages="two", model=MODEL, ttl=600)
    cache.store("c", messages="three", model=MODEL, ttl=None)
    clock.advance(61)
    assert cache.lookup("one", model=MODEL) is None
    assert cache.lookup("two", model=MODEL).value == "b"
    clock.advance(600)
    assert cache.lookup("two", model=MODEL) is None
    assert cache.lookup("three", model=MODEL).value == "c"


def test_user_scope_never_serves_one_users_answer_to_another(make: Any) -> None:
    cache = make(scope="user")
    cache.store("Ann's answer", messages=Q, model=MODEL, user="ann")
    assert cache.lookup(Q, model=MODEL, user="bob") is None
    assert cache.lookup(Q, model=MODEL, user="ann").value == "Ann's answer"
    with pytest.raises(ConfigurationError, match="user"):
        cache.lookup(Q, model=MODEL)


def test_content_scope_lets_any_model_answer(make: Any) -> None:
    cache = make(scope="content")
    cache.store("Paris.", messages=Q, model="gpt-4o", input_tokens=100, output_tokens=10)
    hit = cache.lookup(Q, model="gpt-4o-mini")
    assert hit is not None
    assert hit.model == "gpt-4o"
    # priced at the model asked for, not the one that answered
    assert hit.saved_usd == pytest.approx(100 * 0.15e-6 + 10 * 0.6e-6)
    # the default scope of the same store keeps models apart; per-call override works
    assert cache.lookup(Q, model="gpt-4o-mini", scope="model") is None


def test_invalidate_by_model_user_and_tag_globs(make: Any) -> None:
    cache = make(scope="user")
    cache.store("1", messages="a", model="gpt-4o", user="ann", tags=["faq-en"])
    cache.store("2", messages="b", model="gpt-4o-mini", user="bob", tags=["faq-de"])
    cache.store("3", messages="c", model="claude-haiku", user="ann", tags=["support"])
    assert cache.invalidate("tag:faq-*") == 2
    assert cache.lookup("c", model="claude-haiku", user="ann").value == "3"
    cache.store("1", messages="a", model="gpt-4o", user="ann")
    assert cache.invalidate("user:bob") == 0
    assert cache.invalidate("gpt-*") == 1  # no prefix: the model
    assert cache.invalidate("model:claude-*") == 1
    with pytest.raises(ConfigurationError, match="pattern"):
        cache.invalidate(["gpt-*"])


def test_clear(make: Any) -> None:
    cache = make()
    cache.store("1", messages="a", model=MODEL)
    cache.store("2", messages="b", model=MODEL)
    assert cache.clear() == 2
    assert cache.lookup("a", model=MODEL) is None
    assert asyncio.run(cache.aclear()) == 0


def test_what_is_never_cached(make: Any) -> None:
    cache = make()
    assert not cache.store("cut", messages="a", model=MODEL, finish_reason="content_filter")
    assert not cache.store("err", messages="a", model=MODEL, finish_reason="error")
    assert cache.store("ok", messages="a", model=MODEL, finish_reason="tool_calls")
    assert cache.store("ok", messages="b", model=MODEL, finish_reason="end_turn")
    assert cache.store("ok", messages="c", model=MODEL, finish_reason=None)
    assert not cache.store("x", messages="d", model=MODEL, logit_bias=object())

    calls = []

    def failing() -> str:
        calls.append(1)
        raise RuntimeError("provider down")

    for _ in range(2):
        with pytest.raises(RuntimeError):
            cache.call(failing, messages="e", model=MODEL)
    assert len(calls) == 2  # errors are not cached


def test_confidential_requests_stay_on_the_embedded_store(make: Any) -> None:
    cache = make()
    # memory and diskcache are embedded: confidential requests are cached there
    assert cache.store("secret", messages="a", model=MODEL, tags=["confidential"])
    assert cache.lookup("a", model=MODEL, tags=["confidential"]).value == "secret"


def test_confidential_requests_skip_shared_stores_unless_allowed() -> None:
    shared = LLMCache("redis://127.0.0.1:1/0")  # never reached: refused before any I/O
    assert not shared.store("secret", messages="a", model=MODEL, confidential=True)
    assert shared.lookup("a", model=MODEL, tags=["confidential"]) is None
    assert shared.stats().errors == 0


def test_streams_are_cached_when_complete_and_replay_as_streams(make: Any) -> None:
    cache = make()

    def summarize(chunks: list[Any]) -> Answer:
        return Answer("".join(c["text"] for c in chunks[:-1]), **chunks[-1]["usage"])

    def provider(cut: bool = False) -> Any:
        yield {"text": "Par"}
        if cut:
            raise ConnectionError("stream dropped")
        yield {"text": "is."}
        yield {"text": "", "usage": {"input_tokens": 10, "output_tokens": 2}}

    with pytest.raises(ConnectionError):
        list(cache.cache_stream(provider(cut=True), messages=Q, model=MODEL, summarize=summarize))
    assert cache.lookup(Q, model=MODEL) is None  # a cut-off stream is not cached
    got = list(cache.cache_stream(provider(), messages=Q, model=MODEL, summarize=summarize))
    assert len(got) == 3
    hit = cache.lookup(Q, model=MODEL)
    assert hit.value == "Paris."
    assert hit.input_tokens == 10
    assert list(hit.replay()) == got

    async def replay() -> list[Any]:
        return [c async for c in hit.areplay()]

    assert asyncio.run(replay()) == got


async def test_async_streams(make: Any) -> None:
    cache = make()

    async def provider() -> Any:
        for text in ("a", "b"):
            yield text

    def summarize(chunks: list[Any]) -> Answer:
        return Answer("".join(chunks), finish_reason="stop")

    out = [
        c
        async for c in cache.acache_stream(provider(), messages=Q, model=MODEL, summarize=summarize)
    ]
    assert out == ["a", "b"]
    hit = await cache.alookup(Q, model=MODEL)
    assert [c async for c in hit.areplay()] == ["a", "b"]
    plain = await cache.astore("v", messages="x", model=MODEL)
    assert plain
    assert list((await cache.alookup("x", model=MODEL)).replay()) == ["v"]


def test_lru_bound_on_entries(make: Any) -> None:
    cache = make(max_entries=3)
    for i in range(3):
        cache.store(str(i), messages=f"q{i}", model=MODEL)
    assert cache.lookup("q0", model=MODEL) is not None  # q0 is now the most recently used
    cache.store("3", messages="q3", model=MODEL)
    assert cache.lookup("q1", model=MODEL) is None  # least recently used: evicted
    assert {h for h in ("q0", "q2", "q3") if cache.lookup(h, model=MODEL)} == {"q0", "q2", "q3"}


def test_lru_bound_on_bytes(clock: Clock) -> None:
    cache = LLMCache("memory://", max_bytes=2000, clock=clock)
    for i in range(10):
        cache.store("x" * 300, messages=f"q{i}", model=MODEL)
    assert cache.lookup("q0", model=MODEL) is None
    assert cache.lookup("q9", model=MODEL) is not None


def test_diskcache_byte_bound_evicts(tmp_path: Path) -> None:
    cache = LLMCache(f"diskcache://{tmp_path}", max_bytes=200_000)
    for i in range(60):
        cache.store("x" * 10_000, messages=f"q{i}", model=MODEL)
    kept = sum(cache.lookup(f"q{i}", model=MODEL) is not None for i in range(60))
    assert 0 < kept < 60


def test_corrupt_entry_is_a_miss_and_is_deleted(
    make: Any, caplog: pytest.LogCaptureFixture
) -> None:
    cache = make()
    cache.store("Paris.", messages=Q, model=MODEL)
    key = cache.key(Q, model=MODEL)
    backend = cache._open()
    backend.put(key, b"\x00not json", ttl=None)
    with caplog.at_level(logging.WARNING, "aipowertools.cache"):
        assert cache.lookup(Q, model=MODEL) is None
    assert "corrupt" in caplog.text
    assert backend.get(key) is None
    backend.put(key, b'{"f": 1, "k": "another key", "v": 1, "m": "m"}', ttl=None)
    assert cache.lookup(Q, model=MODEL) is None
    assert backend.get(key) is None
    backend.put(key, b'{"f": 2}', ttl=None)
    assert cache.lookup(Q, model=MODEL) is None
    backend.put("junk", b"[]", ttl=None)
    assert cache.invalidate("*") == 1  # corrupt entries go with any invalidation


class FailingBackend:
    url = "redis://down"

    def __getattr__(self, name: str) -> Any:
        def fail(*args: Any, **kwargs: Any) -> Any:
            raise ConnectionError("connection refused")

        return fail


def test_store_down_is_a_warning_and_a_miss(clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    cache = LLMCache("memory://", clock=clock)
    cache._backend = FailingBackend()  # type: ignore[assignment]
    with caplog.at_level(logging.WARNING, "aipowertools.cache"):
        assert cache.lookup(Q, model=MODEL) is None
        assert not cache.store("x", messages=Q, model=MODEL)  # skipped while backing off
    assert "treated as a miss" in caplog.text
    assert cache.stats().errors == 1
    assert cache.stats().misses == 1
    assert cache.call(lambda: "fresh", messages=Q, model=MODEL) == "fresh"
    clock.advance(2)  # the back-off is over: the store is tried again
    assert not cache.store("x", messages=Q, model=MODEL)
    assert cache.stats().errors == 2
    cache._backend = None
    clock.advance(5)
    assert cache.store("x", messages=Q, model=MODEL)  # back: it works again
    assert cache.lookup(Q, model=MODEL).value == "x"


def test_strict_raises_a_typed_error() -> None:
    cache = LLMCache("memory://", strict=True)
    cache._backend = FailingBackend()  # type: ignore[assignment]
    with pytest.raises(StoreUnavailableError, match="lookup failed"):
        cache.lookup(Q, model=MODEL)

    class Unavailable(FailingBackend):
        def __getattr__(self, name: str) -> Any:
            def fail(*args: Any, **kwargs: Any) -> Any:
                raise StoreUnavailableError("redis://x", "gone")

            return fail

    cache._backend = Unavailable()  # type: ignore[assignment]
    with pytest.raises(StoreUnavailableError, match="gone"):
        cache.clear()


def test_a_redis_that_is_down_never_fails_the_call(caplog: pytest.LogCaptureFixture) -> None:
    cache = LLMCache("redis://127.0.0.1:1/0")
    with caplog.at_level(logging.WARNING, "aipowertools.cache"):
        assert cache.call(lambda: "answer", messages=Q, model=MODEL) == "answer"
    assert "treated as a miss" in caplog.text


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"ttl": -1}, "ttl"),
        ({"ttl": "1h"}, "ttl"),
        ({"scope": "team"}, "scope"),
        ({"threshold": 1.5}, "threshold"),
        ({"threshold": "high"}, "threshold"),
        ({"normalize": "case"}, "normalize"),
        ({"namespace": "Bad Name"}, "namespace"),
        ({"max_entries": 0}, "max_entries"),
        ({"max_bytes": -5}, "max_bytes"),
        ({"lock_ttl": None}, "lock_ttl"),
        ({"semantic": 42}, "semantic"),
        ({"store": "sqlite:///x.db"}, "store"),
    ],
)
def test_bad_arguments_name_themselves(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        LLMCache(**{"store": "memory://", **kwargs})


def test_bad_call_arguments(make: Any) -> None:
    cache = make()
    with pytest.raises(ConfigurationError, match="ttl"):
        cache.store("x", messages=Q, model=MODEL, ttl=-3)
    with pytest.raises(ConfigurationError, match="model"):
        cache.lookup(Q, model=None)
    with pytest.raises(ConfigurationError, match="scope"):
        cache.lookup(Q, model=MODEL, scope="everyone")


def test_default_store_is_diskcache_under_the_data_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIPOWERTOOLS_HOME", str(tmp_path))
    monkeypatch.delenv("AIPOWERTOOLS_STORE", raising=False)
    cache = LLMCache()
    assert cache.url.scheme == "diskcache"
    assert cache.url.path == tmp_path / "cache"
    assert cache.store("x", messages="a", model=MODEL)
    assert (tmp_path / "cache" / "default").is_dir()
    cache.close()
    monkeypatch.setenv("AIPOWERTOOLS_STORE", "sqlite:///{data_dir}/all.db")
    assert LLMCache().url.scheme == "diskcache"  # an embedded default: the cache's own
    monkeypatch.setenv("AIPOWERTOOLS_STORE", "redis://localhost:6379/3")
    assert LLMCache().url.raw == "redis://localhost:6379/3"  # a server: shared
    assert "redis://localhost:6379/3" in repr(LLMCache())


def test_single_flight_makes_one_call_for_concurrent_misses(make: Any) -> None:
    cache = make(single_flight=True)
    release = threading.Event()
    started = threading.Event()
    calls: list[int] = []

    def slow() -> Answer:
        calls.append(1)
        started.set()
        release.wait(10)
        return Answer("Paris.", input_tokens=5, output_tokens=2)

    results: list[Any] = []
    first = threading.Thread(
        target=lambda: results.append(cache.call(slow, messages=Q, model=MODEL))
    )
    first.start()
    started.wait(10)
    second = threading.Thread(
        target=lambda: results.append(cache.call(slow, messages=Q, model=MODEL))
    )
    second.start()
    release.set()
    first.join(10)
    second.join(10)
    assert results == ["Paris.", "Paris."]
    assert len(calls) == 1
    stats = cache.stats()
    assert (stats.hits, stats.misses) == (1, 1)


def test_without_single_flight_concurrent_misses_both_call(make: Any) -> None:
    cache = make()
    barrier = threading.Barrier(2)
    calls: list[int] = []

    def call() -> str:
        calls.append(1)
        barrier.wait(10)
        return "Paris."

    threads = [
        threading.Thread(target=lambda: cache.call(call, messages=Q, model=MODEL)) for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(calls) == 2


def test_single_flight_waiter_goes_ahead_after_the_lock_expires(make: Any) -> None:
    cache = make(single_flight=True, lock_ttl=0.05)
    key = cache.key(Q, model=MODEL)
    assert cache._open().acquire(key, "someone-else", 60)  # a holder that never answers
    assert cache.call(lambda: "mine", messages=Q, model=MODEL) == "mine"


async def test_async_single_flight(make: Any) -> None:
    cache = make(single_flight=True)
    calls: list[int] = []
    gate = asyncio.Event()

    async def slow() -> str:
        calls.append(1)
        await gate.wait()
        return "Paris."

    first = asyncio.create_task(cache.acall(slow, messages=Q, model=MODEL))
    while not calls:
        await asyncio.sleep(0.001)
    second = asyncio.create_task(cache.acall(slow, messages=Q, model=MODEL))
    await asyncio.sleep(0.05)
    gate.set()
    assert await asyncio.gather(first, second) == ["Paris.", "Paris."]
    assert len(calls) == 1
    assert await cache.acall(slow, messages=Q, model=MODEL) == "Paris."


def test_semantic_hits_are_marked_and_refusable(make: Any) -> None:
    embedder = WordEmbedder()
    cache = make(semantic=embedder, threshold=0.8)
    q1 = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is the capital of France?"},
    ]
    q2 = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "what is the capital of france"},
    ]
    q3 = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "How tall is Everest?"},
    ]
    q4 = [
        {"role": "system", "content": "Be verbose."},
        {"role": "user", "content": "What is the capital of France?"},
    ]
    cache.store("Paris.", messages=q1, model=MODEL, input_tokens=20, output_tokens=2)
    hit = cache.lookup(q2, model=MODEL)
    assert hit is not None
    assert hit.semantic
    assert hit.kind == "semantic"
    assert 0.8 <= hit.similarity < 1
    assert cache.lookup(q2, model=MODEL, semantic=False) is None  # refused per call
    assert cache.lookup(q3, model=MODEL) is None  # not similar enough
    assert cache.lookup(q4, model=MODEL) is None  # another context: another partition
    assert cache.lookup(q2, model="gpt-4o") is None  # another model
    exact = cache.lookup(q1, model=MODEL)
    assert exact is not None
    assert not exact.semantic
    assert cache.stats().semantic_hits == 1


def test_semantic_vectors_of_gone_entries_are_skipped(make: Any, clock: Clock) -> None:
    cache = make(semantic=WordEmbedder(), threshold=0.5)
    cache.store("old", messages="capital of France", model=MODEL, ttl=10)
    cache.store("new", messages="capital of France please", model=MODEL, ttl=1000)
    clock.advance(11)
    hit = cache.lookup("the capital of France", model=MODEL)
    assert hit is not None
    assert hit.value == "new"
    cache.invalidate("*")
    assert cache.lookup("the capital of France", model=MODEL) is None


async def test_semantic_with_async_and_framework_embedders(make: Any) -> None:
    words = WordEmbedder()

    async def async_embed(text: str) -> list[float]:
        return words(text)

    class LangChainLike:
        def embed_query(self, text: str) -> list[float]:
            return words(text)

        async def aembed_query(self, text: str) -> list[float]:
            return words(text)

    class LlamaIndexLike:
        def get_query_embedding(self, text: str) -> list[float]:
            return words(text)

        async def aget_query_embedding(self, text: str) -> list[float]:
            return words(text)

    for embedder in (async_embed, LangChainLike(), LlamaIndexLike()):
        cache = make(semantic=embedder, threshold=0.8)
        await cache.astore("Paris.", messages="What is the capital of France?", model=MODEL)
        hit = await cache.alookup("what is the capital of france", model=MODEL)
        assert hit is not None
        assert hit.semantic
        cache.clear()


def test_async_only_embedder_in_sync_code(make: Any) -> None:
    words = WordEmbedder()

    async def async_embed(text: str) -> list[float]:
        return words(text)

    cache = make(semantic=async_embed, threshold=0.8)
    cache.store("Paris.", messages="What is the capital of France?", model=MODEL)
    assert cache.lookup("what is the capital of france", model=MODEL).semantic


async def test_async_lookup_store_and_call(make: Any) -> None:
    tracker = CostTracker(store="memory://")
    cache = make(cost_tracker=tracker)
    assert await cache.alookup(Q, model=MODEL) is None
    assert await cache.acall(lambda: _answer("Paris."), messages=Q, model=MODEL) == "Paris."
    hit = await cache.alookup(Q, model=MODEL)
    assert hit.value == "Paris."
    assert await cache.ainvalidate("model:gpt-4o-mini") == 1
    assert len(tracker.records()) == 1


async def _answer(value: str) -> Answer:
    return Answer(value, input_tokens=3, output_tokens=1)


def test_unknown_models_save_what_the_entry_cost(make: Any) -> None:
    cache = make()
    cache.store("x", messages=Q, model="my-private-model", input_tokens=10)
    hit = cache.lookup(Q, model="my-private-model")
    assert hit is not None
    assert hit.saved_usd == 0.0

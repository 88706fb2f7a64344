"""The LangGraph Store on the embedded stores, checked against LangGraph's own InMemoryStore."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from langgraph.store.base import GetOp, InvalidNamespaceError, MatchCondition, PutOp
from langgraph.store.memory import InMemoryStore

from aipowertools.core.errors import ConfigurationError
from aipowertools.sessions import AESGCMEncryption, Codec
from aipowertools.sessions.langgraph import Store


def embed(texts: list[str]) -> list[list[float]]:
    """A deterministic 3-d embedding: length, count of 'a', 1."""
    return [[float(len(t)), float(t.count("a")), 1.0] for t in texts]


async def aembed(texts: list[str]) -> list[list[float]]:
    return embed(texts)


@pytest.fixture(params=["memory", "diskcache"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return f"memory://{uuid.uuid4().hex}"
    return f"diskcache://{tmp_path / 'store'}"


def _view(items: Any) -> list[tuple[Any, ...]]:
    return [
        (tuple(i.namespace), i.key, i.value, None if i.score is None else round(i.score, 5))
        for i in items
    ]


def _fill(store: Any) -> None:
    store.put(("users", "u1"), "a", {"text": "banana", "n": 1, "tag": {"k": "x"}})
    store.put(("users", "u1"), "b", {"text": "apple pie", "n": 2})
    store.put(("users", "u2"), "c", {"text": "cherry", "n": 3})
    store.put(("docs",), "d", {"text": "aaaa", "n": 4}, index=False)
    store.put(("docs", "v1"), "e", {"text": "plain", "n": 5, "title": "a title"}, index=["title"])
    store.put(("users", "u1"), "b", {"text": "apple tart", "n": 2})  # an update


SEARCHES: list[dict[str, Any]] = [
    {"prefix": ("users",)},
    {"prefix": ("users",), "filter": {"n": {"$gte": 2}}},
    {"prefix": ("users",), "filter": {"n": {"$gt": 1, "$lt": 3}}},
    {"prefix": ("users",), "filter": {"n": {"$ne": 1}}},
    {"prefix": ("users",), "filter": {"n": {"$lte": 1}}},
    {"prefix": ("users",), "filter": {"n": {"$eq": 3}}},
    {"prefix": (), "filter": {"text": "aaaa"}},
    {"prefix": (), "query": "banana"},
    {"prefix": (), "query": "banana", "limit": 2, "offset": 1},
    {"prefix": ("docs",), "query": "a title"},
]


def _search(store: Any, spec: dict[str, Any]) -> list[tuple[Any, ...]]:
    args = {k: v for k, v in spec.items() if k != "prefix"}
    found = _view(store.search(spec["prefix"], **args))
    # InMemoryStore keeps insertion order without a query; order is not part of the contract
    return found if "query" in spec else sorted(found, key=str)


def test_same_answers_as_langgraphs_in_memory_store(url: str) -> None:
    ours = Store(url, prefix="s" + uuid.uuid4().hex[:8], index={"dims": 3, "embed": embed})
    ref = InMemoryStore(index={"dims": 3, "embed": embed})
    for store in (ours, ref):
        _fill(store)
    for spec in SEARCHES:
        assert _search(ours, spec) == _search(ref, spec), spec
    assert ours.list_namespaces() == ref.list_namespaces()
    assert ours.list_namespaces(max_depth=1) == ref.list_namespaces(max_depth=1)
    assert ours.list_namespaces(prefix=("users",)) == ref.list_namespaces(prefix=("users",))
    assert ours.list_namespaces(suffix=("v1",)) == ref.list_namespaces(suffix=("v1",))
    assert ours.list_namespaces(prefix=("*", "u1")) == [("users", "u1")]
    assert ours.list_namespaces(prefix=("users", "u1", "deeper")) == []
    assert ours.list_namespaces(limit=1, offset=1) == ref.list_namespaces(limit=1, offset=1)
    # (after listing: InMemoryStore.get of a missing namespace creates it)
    for ns, key in ((("users", "u1"), "a"), (("docs", "v1"), "e"), (("nope",), "x")):
        a, b = ours.get(ns, key), ref.get(ns, key)
        assert (a and (a.value, a.key, a.namespace)) == (b and (b.value, b.key, b.namespace))
    for store in (ours, ref):
        store.delete(("users", "u2"), "c")
    assert _search(ours, {"prefix": ("users",)}) == _search(ref, {"prefix": ("users",)})
    assert ("users", "u2") not in ours.list_namespaces()  # an empty namespace is gone


async def test_async_matches_sync(url: str) -> None:
    store = Store(url, prefix="s" + uuid.uuid4().hex[:8], index={"dims": 3, "embed": aembed})
    await store.aput(("a", "b"), "k", {"text": "banana"})
    await store.aput(("a", "b"), "off", {"text": "zzz"}, index=False)
    await store.aput(("a",), "gone", {"text": "x"})
    await store.adelete(("a",), "gone")
    got = await store.aget(("a", "b"), "k")
    assert got is not None
    assert got.value == {"text": "banana"}
    hits = await store.asearch(("a",), query="banana")
    assert [(h.key, h.score is not None) for h in hits] == [("k", True), ("off", False)]
    assert await store.alist_namespaces() == [("a", "b")]
    results = await store.abatch([GetOp(("a", "b"), "k"), PutOp(("a", "b"), "z", {"v": 1})])
    assert results[1] is None
    assert results[0] is not None


def test_ttl_minutes_refresh_on_read_and_sweep(url: str) -> None:
    now = [1_000_000.0]
    store = Store(
        url,
        prefix="s" + uuid.uuid4().hex[:8],
        ttl={"default_ttl": 1.0, "refresh_on_read": True},
        clock=lambda: now[0],
    )
    store.put(("n",), "short", {"v": 1})  # default: 1 minute
    store.put(("n",), "long", {"v": 2}, ttl=10)
    store.put(("n",), "forever", {"v": 3}, ttl=None)
    now[0] += 50
    assert store.get(("n",), "short") is not None  # read at 50 s: renewed to 110 s
    now[0] += 50
    assert store.get(("n",), "short", refresh_ttl=False) is not None  # 100 s < 110 s
    assert [h.key for h in store.search(("n",))] == ["forever", "long", "short"]  # renews all
    now[0] += 61  # short: last renewed at 100 s, gone at 160 s
    assert store.get(("n",), "short") is None
    assert sorted(h.key for h in store.search(("n",))) == ["forever", "long"]
    store.put(("n",), "short", {"v": 9})  # a new life
    assert store.get(("n",), "short").value == {"v": 9}  # type: ignore[union-attr]
    now[0] += 11 * 60
    assert store.sweep() == 2  # long and the new short
    assert [h.key for h in store.search(())] == ["forever"]
    with pytest.raises(ConfigurationError):
        store.put(("n",), "bad", {"v": 1}, ttl=-1)


async def test_async_ttl_refresh_and_sweep(url: str) -> None:
    now = [5_000.0]
    store = Store(url, prefix="s" + uuid.uuid4().hex[:8], clock=lambda: now[0])
    await store.aput(("n",), "k", {"v": 1}, ttl=1)
    now[0] += 40
    assert await store.aget(("n",), "k") is not None  # renewed to 100 s
    now[0] += 40
    assert [h.key for h in await store.asearch(("n",))] == ["k"]  # renewed to 140 s
    now[0] += 59
    assert await store.aget(("n",), "k") is not None
    now[0] += 200
    assert await store.asweep() == 1


def test_refresh_on_read_off(url: str) -> None:
    now = [0.0]
    store = Store(
        url,
        prefix="s" + uuid.uuid4().hex[:8],
        ttl={"refresh_on_read": False},
        clock=lambda: now[0],
    )
    store.put(("n",), "k", {"v": 1}, ttl=1)
    now[0] += 50
    assert store.get(("n",), "k") is not None
    now[0] += 20
    assert store.get(("n",), "k") is None


def test_values_go_through_the_codec(tmp_path: Path) -> None:
    codec = Codec(encryption=AESGCMEncryption({"k": AESGCMEncryption.generate_key()}))
    store = Store(
        f"diskcache://{tmp_path / 's'}",
        prefix="sealed",
        codec=codec,
        index={"dims": 3, "embed": embed, "fields": ["secret"]},
    )
    store.put(("vault",), "k", {"secret": "PLAINTEXT-VALUE"})
    raw = b"".join(p.read_bytes() for p in (tmp_path / "s").glob("langgraph.sqlite3*"))
    assert b"PLAINTEXT-VALUE" not in raw
    assert store.get(("vault",), "k").value == {"secret": "PLAINTEXT-VALUE"}  # type: ignore[union-attr]
    (hit,) = store.search(("vault",), query="PLAINTEXT-VALUE")
    assert hit.score is not None
    assert hit.score > 0.99


def test_configuration_and_namespace_errors() -> None:
    with pytest.raises(ConfigurationError, match="dims"):
        Store("memory://x", index={"embed": embed})  # type: ignore[typeddict-item]
    store = Store("memory://x")
    with pytest.raises(InvalidNamespaceError):
        store.put(("bad\x1flabel",), "k", {"v": 1})
    with pytest.raises(ConfigurationError, match="operator"):
        store.put(("n",), "k", {"v": 1}) or store.search(("n",), filter={"v": {"$in": [1]}})
    with pytest.raises(ConfigurationError, match="unknown store operation"):
        store.batch([object()])  # type: ignore[list-item]
    assert store.search(("n",), filter={"v": {"$gt": "text"}}) == []  # mismatched types
    assert store.search(("n",), filter={"missing.deep": 1}) == []
    assert MatchCondition("prefix", ("n",)) is not None

"""The LangGraph checkpointer and store on real Redis (no modules) and PostgreSQL."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from operator import add
from typing import Annotated, Any

import pytest
from langgraph.checkpoint.conformance.test_utils import (
    generate_checkpoint,
    generate_config,
    generate_metadata,
)
from langgraph.store.memory import InMemoryStore
from typing_extensions import TypedDict

from aipowertools.sessions import AESGCMEncryption, Codec
from aipowertools.sessions.langgraph import CheckpointSaver, Store

pytestmark = pytest.mark.integration


def _prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture(params=["redis", "postgres"])
def url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


async def test_conformance_full(url: str, conformance: Callable[..., Any]) -> None:
    prefix = _prefix()  # one prefix for the run: list(None) must not see other tests' threads

    async def factory() -> AsyncIterator[CheckpointSaver]:
        yield CheckpointSaver(url, prefix=prefix)

    report = await conformance(factory, f"CheckpointSaver({url.split(':')[0]}://)")
    assert report.conformance_level() == "FULL", report.to_dict()
    assert all(r.detected and r.passed for r in report.results.values()), report.to_dict()
    assert len(report.results) == 8


def _put(saver: CheckpointSaver, tid: str, parent: dict[str, Any] | None = None, **md: Any) -> Any:
    config = generate_config(tid)
    if parent is not None:
        config["configurable"]["checkpoint_id"] = parent["configurable"]["checkpoint_id"]
    cp = generate_checkpoint(channel_values={"n": md.get("step", 0)}, channel_versions={"n": 1})
    return saver.put(config, cp, generate_metadata(**md), {"n": 1})


def test_sync_api_round_trip(url: str) -> None:
    codec = Codec(compression="zlib", compress_min_bytes=1)
    saver = CheckpointSaver(url, prefix=_prefix(), codec=codec)
    first = _put(saver, "t1", step=0, source="input", run_id="r1")
    second = _put(saver, "t1", first, step=1, source="loop", run_id="r2")
    child = saver.put(
        generate_config("t1", checkpoint_ns="child:1"),
        generate_checkpoint(),
        generate_metadata(step=5),
        {},
    )
    saver.put_writes(second, [("messages", "hi"), ("__error__", "boom")], "task-a", "p:1")
    saver.put_writes(second, [("messages", "again")], "task-a", "p:1")
    saver.put_writes(second, [("__error__", "replaced")], "task-a", "p:1")
    saver.put_writes(second, [], "task-b")
    latest = saver.get_tuple(generate_config("t1"))
    assert latest is not None
    assert latest.config["configurable"]["checkpoint_id"] == second["configurable"]["checkpoint_id"]
    assert sorted(latest.pending_writes or []) == [
        ("task-a", "__error__", "replaced"),
        ("task-a", "messages", "hi"),
    ]
    assert saver.get_tuple(generate_config("t1", checkpoint_id="missing")) is None
    assert [t.metadata["step"] for t in saver.list(generate_config("t1"))] == [1, 0]
    assert [t.metadata["step"] for t in saver.list({"configurable": {"thread_id": "t1"}})] == [
        5,
        1,
        0,
    ]
    assert [t.metadata["step"] for t in saver.list(None, filter={"source": "input"})] == [0]
    assert [t.metadata["step"] for t in saver.list(generate_config("t1"), before=second)] == [0]
    only = list(
        saver.list(generate_config("t1", checkpoint_id=first["configurable"]["checkpoint_id"]))
    )
    assert [t.metadata["step"] for t in only] == [0]
    saver.copy_thread("t1", "t2")
    saver.copy_thread("nobody", "t3")
    assert [t.metadata["step"] for t in saver.list(generate_config("t2"))] == [1, 0]
    assert saver.get_tuple(child) is not None
    saver.delete_for_runs(["r1"])
    assert [t.metadata["step"] for t in saver.list(generate_config("t1"))] == [1]
    assert [t.metadata["step"] for t in saver.list(generate_config("t2"))] == [1]  # copied too
    _put(saver, "t2", second, step=2)
    saver.prune(["t2"], strategy="keep_latest")
    (kept,) = saver.list(generate_config("t2"))
    assert kept.parent_config is None
    assert kept.metadata["step"] == 2
    saver.prune(["t2"], strategy="delete")
    saver.delete_thread("t1")
    assert list(saver.list(None)) == []


def test_list_pages_through_long_threads(url: str) -> None:
    saver = CheckpointSaver(url, prefix=_prefix())
    parent = None
    for step in range(140):
        parent = _put(saver, "long", parent, step=step)
    _put(saver, "other", step=0)
    steps = [t.metadata["step"] for t in saver.list(generate_config("long"))]
    assert steps == list(range(139, -1, -1))
    assert len(list(saver.list(None))) == 141
    assert len(list(saver.list({"configurable": {"thread_id": "long"}}, limit=70))) == 70


def test_ttl_on_postgres_with_an_injected_clock(postgres_url: str) -> None:
    now = [1_000_000.0]
    saver = CheckpointSaver(postgres_url, prefix=_prefix(), ttl=60, clock=lambda: now[0])
    _put(saver, "a", step=0)
    now[0] += 61
    assert saver.get_tuple(generate_config("a")) is None
    _put(saver, "a", step=1)
    assert [t.metadata["step"] for t in saver.list(generate_config("a"))] == [1]
    now[0] += 61
    assert saver.sweep() == 1


def test_ttl_on_redis_is_native_expiry(redis_url: str) -> None:
    import redis

    prefix = _prefix()
    saver = CheckpointSaver(redis_url, prefix=prefix, ttl=60)
    cfg = _put(saver, "a", step=0, run_id="r")
    saver.put_writes(cfg, [("c", 1)], "task")
    client = redis.Redis.from_url(redis_url)
    keys = [*client.keys(f"{prefix}:{{a}}:*"), f"{prefix}:run:r".encode()]
    assert len(keys) == 6
    for key in keys:
        assert 0 < client.pttl(key) <= 60_000, key
    # a clock an hour behind sets expiry times in the past: Redis drops the thread at once
    late = CheckpointSaver(redis_url, prefix=prefix, ttl=60, clock=lambda: time.time() - 3600)
    _put(late, "b", step=0)
    assert late.get_tuple(generate_config("b")) is None
    assert saver.sweep() == 1  # forgets b (not a) in the listing index
    client.close()


def test_latest_checkpoint_is_one_round_trip_and_one_index_row(postgres_url: str) -> None:
    """O(1) in the thread's length on PostgreSQL: one statement; the plan reads one row."""
    import psycopg

    prefix = _prefix()
    saver = CheckpointSaver(postgres_url, prefix=prefix)
    trips = []
    for length in (3, 300):
        parent = None
        for step in range(length):
            parent = _put(saver, f"len{length}", parent, step=step)
        before = saver._engine.statements
        assert saver.get_tuple(generate_config(f"len{length}")).metadata["step"] == length - 1  # type: ignore[union-attr]
        trips.append(saver._engine.statements - before)
    assert trips == [1, 1]
    sql, params = next(saver._engine.plans.get("len300", "", None, time.time()))
    with psycopg.connect(postgres_url) as conn:
        conn.execute(f"ANALYZE {prefix}_checkpoints")
        plan = conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params).fetchone()[0]
    nodes = []

    def walk(node: dict[str, Any]) -> None:
        nodes.append(node)
        for sub in node.get("Plans", []):
            walk(sub)

    walk(plan[0]["Plan"])
    scans = [n for n in nodes if n.get("Relation Name") == f"{prefix}_checkpoints"]
    assert scans, json.dumps(plan)
    assert all("Index" in n["Node Type"] for n in scans), json.dumps(plan)
    assert all(n["Actual Rows"] <= 1 for n in scans), json.dumps(plan)


def test_latest_checkpoint_on_redis_costs_the_same_commands_at_any_length(own_redis: Any) -> None:
    """O(1) round trips; the script runs the same commands for 3 or 300 checkpoints."""
    import redis

    saver = CheckpointSaver(own_redis.url, prefix="onecheck")
    client = redis.Redis.from_url(own_redis.url)
    costs = []
    for length in (3, 300):
        parent = None
        for step in range(length):
            parent = _put(saver, f"len{length}", parent, step=step)
        saver.put_writes(parent, [("c", 1), ("d", 2)], "task")
        client.config_resetstat()
        before = saver._engine.statements
        got = saver.get_tuple(generate_config(f"len{length}"))
        assert got is not None
        assert got.metadata["step"] == length - 1
        stats = client.info("commandstats")
        costs.append(
            (
                saver._engine.statements - before,
                {k: v["calls"] for k, v in stats.items() if k != "cmdstat_config"},
            )
        )
    assert costs[0] == costs[1]
    assert costs[0][0] == 1
    client.close()


class _State(TypedDict):
    log: Annotated[list[str], add]


async def test_a_real_graph_async_and_sync(url: str) -> None:
    from langgraph.graph import END, START, StateGraph

    builder = StateGraph(_State)
    builder.add_node("a", lambda s: {"log": ["a"]})
    builder.add_node("b", lambda s: {"log": ["b"]})
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("b", END)
    codec = Codec(encryption=AESGCMEncryption({"k": AESGCMEncryption.generate_key()}))
    graph = builder.compile(
        checkpointer=CheckpointSaver(url, prefix=_prefix(), codec=codec), interrupt_before=["b"]
    )
    config = {"configurable": {"thread_id": "g"}}
    assert await graph.ainvoke({"log": ["x"]}, config) == {"log": ["x", "a"]}
    assert graph.invoke(None, config) == {"log": ["x", "a", "b"]}
    assert len([s async for s in graph.aget_state_history(config)]) >= 4


def embed(texts: list[str]) -> list[list[float]]:
    return [[float(len(t)), float(t.count("a")), 1.0] for t in texts]


async def test_store_answers_as_in_memory_store(url: str) -> None:
    now = [10_000.0]
    ours = Store(url, prefix=_prefix(), index={"dims": 3, "embed": embed}, clock=lambda: now[0])
    ref = InMemoryStore(index={"dims": 3, "embed": embed})
    for store in (ours, ref):
        store.put(("users", "u1"), "a", {"text": "banana", "n": 1})
        store.put(("users", "u1"), "b", {"text": "apple pie", "n": 2})
        store.put(("users", "u2"), "c", {"text": "cherry", "n": 3})
        store.put(("docs",), "d", {"text": "aaaa", "n": 4}, index=False)
        store.put(("users", "u1"), "b", {"text": "apple tart", "n": 2})

    def view(items: Any) -> list[Any]:
        return [(tuple(i.namespace), i.key, i.value, i.score and round(i.score, 5)) for i in items]

    assert view(ours.search((), query="banana")) == view(ref.search((), query="banana"))
    assert sorted(view(ours.search(("users",), filter={"n": {"$gte": 2}}))) == sorted(
        view(ref.search(("users",), filter={"n": {"$gte": 2}}))
    )
    assert ours.list_namespaces() == ref.list_namespaces()
    assert ours.list_namespaces(max_depth=1) == ref.list_namespaces(max_depth=1)
    got = await ours.aget(("users", "u1"), "b")
    assert got is not None
    assert got.value == {"text": "apple tart", "n": 2}
    assert got.created_at < got.updated_at or got.created_at == got.updated_at
    await ours.adelete(("users", "u2"), "c")
    assert await ours.alist_namespaces() == [("docs",), ("users", "u1")]
    await ours.aput(("t",), "k", {"v": 1}, ttl=1)
    ours.put(("t",), "sync", {"v": 1}, ttl=1)
    now[0] += 30
    assert [h.key for h in await ours.asearch(("t",))] == ["k", "sync"]  # renewed to 90 s
    now[0] += 59
    assert ours.get(("t",), "k") is not None
    now[0] += 200
    assert [h.key for h in ours.search(("t",))] == []
    assert await ours.asweep() == 2
    assert ours.sweep() == 0

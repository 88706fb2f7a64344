"""The LangGraph checkpointer on the embedded stores (SQLite under diskcache:// and memory://)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from operator import add
from pathlib import Path
from typing import Annotated, Any

import pytest
from langgraph.checkpoint.base import CheckpointTuple
from langgraph.checkpoint.conformance.test_utils import (
    generate_checkpoint,
    generate_config,
    generate_metadata,
)
from typing_extensions import TypedDict

from aipowertools.core.errors import ConfigurationError, StoreURLError
from aipowertools.sessions import AESGCMEncryption, Codec, SessionIntegrityError
from aipowertools.sessions.langgraph import CheckpointSaver


def _prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture(params=["memory", "diskcache"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return f"memory://{uuid.uuid4().hex}"
    return f"diskcache://{tmp_path / 'store'}"


async def test_conformance_full(url: str, conformance: Callable[..., Any]) -> None:
    async def factory() -> AsyncIterator[CheckpointSaver]:
        yield CheckpointSaver(url, prefix=_prefix())

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
    saver = CheckpointSaver(url, prefix=_prefix())
    tid = "t1"
    first = _put(saver, tid, step=0, source="input", run_id="r1")
    second = _put(saver, tid, first, step=1, source="loop", run_id="r2")
    saver.put_writes(second, [("messages", "hi"), ("__error__", "boom")], "task-a", "p:1")
    saver.put_writes(second, [("messages", "again")], "task-a", "p:1")  # idempotent
    saver.put_writes(second, [("__error__", "replaced")], "task-a", "p:1")  # special: replaces
    latest = saver.get_tuple(generate_config(tid))
    assert isinstance(latest, CheckpointTuple)
    assert latest.config["configurable"]["checkpoint_id"] == second["configurable"]["checkpoint_id"]
    assert latest.parent_config is not None
    assert (
        latest.parent_config["configurable"]["checkpoint_id"]
        == (first["configurable"]["checkpoint_id"])
    )
    assert sorted(latest.pending_writes or []) == [
        ("task-a", "__error__", "replaced"),
        ("task-a", "messages", "hi"),
    ]
    assert latest.checkpoint["channel_values"] == {"n": 1}
    assert saver.get(first) is not None
    ids = [t.metadata["step"] for t in saver.list(generate_config(tid))]
    assert ids == [1, 0]
    assert [t.metadata["step"] for t in saver.list(generate_config(tid), limit=1)] == [1]
    assert [t.metadata["step"] for t in saver.list(None, filter={"source": "input"})] == [0]
    assert [t.metadata["step"] for t in saver.list(generate_config(tid), before=second)] == [0]
    listed = list(saver.list({"configurable": {"thread_id": tid}}))  # every namespace
    assert len(listed) == 2

    saver.copy_thread(tid, "t2")
    assert [t.metadata["step"] for t in saver.list(generate_config("t2"))] == [1, 0]
    saver.delete_for_runs(["r1"])
    assert [t.metadata["step"] for t in saver.list(generate_config(tid))] == [1]
    saver.delete_for_runs([])
    saver.prune(["t2"], strategy="keep_latest")
    (kept,) = saver.list(generate_config("t2"))
    assert kept.parent_config is None
    assert kept.metadata["step"] == 1
    saver.prune(["t2"], strategy="delete")
    assert saver.get_tuple(generate_config("t2")) is None
    saver.prune([])
    saver.delete_thread(tid)
    assert saver.get_tuple(generate_config(tid)) is None
    assert list(saver.list(None)) == []


def test_list_pages_through_long_threads(url: str) -> None:
    saver = CheckpointSaver(url, prefix=_prefix())
    parent = None
    for step in range(150):  # more than two pages of 64
        parent = _put(saver, "long", parent, step=step, source="loop" if step % 3 else "input")
    steps = [t.metadata["step"] for t in saver.list(generate_config("long"))]
    assert steps == list(range(149, -1, -1))
    inputs = [t.metadata["step"] for t in saver.list(None, filter={"source": "input"}, limit=60)]
    assert inputs == list(range(147, -1, -3))[:50]
    assert len(inputs) == 50


def test_get_tuple_of_the_latest_is_one_indexed_statement(tmp_path: Path) -> None:
    """O(1) in the thread's length: one statement, and SQLite's plan walks the primary key."""
    url = f"diskcache://{tmp_path / 's'}"
    saver = CheckpointSaver(url, prefix="onecheck")
    engine = saver._engine
    statements = []
    for length in (3, 400):
        tid = f"len{length}"
        parent = None
        for step in range(length):
            parent = _put(saver, tid, parent, step=step)
        before = engine.statements
        found = saver.get_tuple(generate_config(tid))
        assert found is not None
        assert found.metadata["step"] == length - 1
        statements.append(engine.statements - before)
    assert statements == [1, 1]
    db = sqlite3.connect(tmp_path / "s" / "langgraph.sqlite3")
    import re

    sql = engine.plans.get("len400", "", None, 0.0)
    text, params = next(sql)
    plan = db.execute(
        "EXPLAIN QUERY PLAN " + re.sub(r"%\((\w+)\)s", r":\1", text), params
    ).fetchall()
    details = " | ".join(row[-1] for row in plan)
    assert "SEARCH k USING PRIMARY KEY" in details or "SEARCH k USING INDEX" in details, details
    assert "TEMP B-TREE" not in details, details  # no sort: the index gives the order


def test_codec_encrypts_and_compresses_everything(tmp_path: Path) -> None:
    key = AESGCMEncryption.generate_key()
    codec = Codec(compression="zstd", compress_min_bytes=1, encryption=AESGCMEncryption({"k": key}))
    url = f"diskcache://{tmp_path / 's'}"
    saver = CheckpointSaver(url, prefix="sealed", codec=codec)
    cfg = saver.put(
        generate_config("secret-thread"),
        generate_checkpoint(channel_values={"msg": "TOPSECRET" * 20}, channel_versions={"msg": 1}),
        generate_metadata(note="CONFIDENTIAL"),
        {"msg": 1},
    )
    saver.put_writes(cfg, [("msg", "WRITESECRET")], "t")
    raw = (tmp_path / "s" / "langgraph.sqlite3").read_bytes()
    wal = tmp_path / "s" / "langgraph.sqlite3-wal"
    raw += wal.read_bytes() if wal.exists() else b""
    for secret in (b"TOPSECRET", b"CONFIDENTIAL", b"WRITESECRET"):
        assert secret not in raw
    got = saver.get_tuple(cfg)
    assert got is not None
    assert got.checkpoint["channel_values"]["msg"] == "TOPSECRET" * 20
    assert got.pending_writes == [("t", "msg", "WRITESECRET")]
    # the wrong key cannot read it, and says so
    other = Codec(encryption=AESGCMEncryption({"k": AESGCMEncryption.generate_key()}))
    with pytest.raises(SessionIntegrityError):
        CheckpointSaver(url, prefix="sealed", codec=other).get_tuple(cfg)
    with pytest.raises(SessionIntegrityError, match="no keys"):
        CheckpointSaver(url, prefix="sealed").get_tuple(cfg)


def test_ttl_per_thread_with_an_injected_clock(url: str) -> None:
    now = [1_000_000.0]
    saver = CheckpointSaver(url, prefix=_prefix(), ttl=60, clock=lambda: now[0])
    first = _put(saver, "a", step=0)
    _put(saver, "b", step=0)
    now[0] += 30
    _put(saver, "b", step=1)  # renews b only
    now[0] += 45  # a: 75 s since its put, expired; b: 45 s, alive
    assert saver.get_tuple(generate_config("a")) is None
    assert saver.get_tuple(first) is None
    assert list(saver.list(generate_config("a"))) == []
    assert [t.metadata["step"] for t in saver.list(None)] == [1, 0]
    _put(saver, "a", step=7)  # a new life: the expired checkpoints do not come back
    assert [t.metadata["step"] for t in saver.list(generate_config("a"))] == [7]
    now[0] += 61
    assert saver.sweep() == 2
    assert list(saver.list(None)) == []


async def test_async_ttl_copy_and_sweep(url: str) -> None:
    now = [2_000_000.0]
    saver = CheckpointSaver(url, prefix=_prefix(), ttl=10, clock=lambda: now[0])
    cfg = await saver.aput(generate_config("x"), generate_checkpoint(), generate_metadata(), {})
    await saver.acopy_thread("x", "y")
    assert await saver.aget_tuple(generate_config("y")) is not None
    now[0] += 11
    assert await saver.aget_tuple(cfg) is None
    assert await saver.asweep() == 2


def test_prune_refuses_delta_channel_threads(url: str) -> None:
    saver = CheckpointSaver(url, prefix=_prefix())
    _put(saver, "plain", step=0)
    _put(saver, "delta", step=0, counters_since_delta_snapshot={"ch": [1, 1]})
    with pytest.raises(NotImplementedError, match="delta"):
        saver.prune(["plain", "delta"])
    assert len(list(saver.list(generate_config("plain")))) == 1  # nothing was pruned
    saver.prune(["delta"], strategy="delete")  # deleting everything is always safe
    with pytest.raises(TypeError):
        saver.prune("plain")
    with pytest.raises(ValueError, match="strategy"):
        saver.prune(["plain"], strategy="oldest")


async def test_async_prune_refuses_delta_and_bad_arguments(url: str) -> None:
    saver = CheckpointSaver(url, prefix=_prefix())
    await saver.aput(
        generate_config("d"),
        generate_checkpoint(),
        generate_metadata(delta_writes_versioned=True),
        {},
    )
    with pytest.raises(NotImplementedError):
        await saver.aprune(["d"])
    await saver.aprune([])
    await saver.aprune(["d"], strategy="delete")
    assert await saver.aget_tuple(generate_config("d")) is None


def test_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="ttl"):
        CheckpointSaver("memory://x", ttl=0)
    with pytest.raises(ConfigurationError, match="prefix"):
        CheckpointSaver("memory://x", prefix="Bad-Prefix")
    with pytest.raises(StoreURLError, match="s3://"):
        CheckpointSaver("s3://bucket/prefix")
    saver = CheckpointSaver(f"sqlite:///{tmp_path / 'file.db'}", prefix="plain_sqlite")
    assert saver.url.startswith("sqlite:")
    _put(saver, "t", step=0)
    assert (tmp_path / "file.db").exists()


class _State(TypedDict):
    log: Annotated[list[str], add]


def _graph(saver: CheckpointSaver) -> Any:
    from langgraph.graph import END, START, StateGraph

    builder = StateGraph(_State)
    builder.add_node("a", lambda s: {"log": ["a"]})
    builder.add_node("b", lambda s: {"log": ["b"]})
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("b", END)
    return builder.compile(checkpointer=saver, interrupt_before=["b"])


def test_a_real_graph_interrupts_resumes_and_remembers(url: str) -> None:
    saver = CheckpointSaver(url, prefix=_prefix())
    graph = _graph(saver)
    config = {"configurable": {"thread_id": "conversation"}}
    assert graph.invoke({"log": ["start"]}, config) == {"log": ["start", "a"]}
    # a new graph object (another process, say) resumes from the store
    graph = _graph(CheckpointSaver(url, prefix=saver._plans.p))
    assert graph.get_state(config).next == ("b",)
    assert graph.invoke(None, config) == {"log": ["start", "a", "b"]}
    history = list(graph.get_state_history(config))
    assert len(history) >= 4
    assert graph.invoke({"log": ["again"]}, config)["log"][-2:] == ["again", "a"]


async def test_a_real_graph_async(url: str) -> None:
    graph = _graph(CheckpointSaver(url, prefix=_prefix()))
    config = {"configurable": {"thread_id": "async"}}
    assert await graph.ainvoke({"log": ["x"]}, config) == {"log": ["x", "a"]}
    assert (await graph.ainvoke(None, config))["log"] == ["x", "a", "b"]


def test_importing_the_engines_loads_no_framework() -> None:
    probe = (
        "import sys, aipowertools.sessions._graph_sql, aipowertools.sessions._graph_redis, "
        "aipowertools.sessions._graph_engines, aipowertools.sessions._seal\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'langgraph', 'langchain_core', 'langchain'}))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


async def test_async_list_pages_and_limits(url: str) -> None:
    saver = CheckpointSaver(url, prefix=_prefix())
    config: Any = generate_config("long")
    for step in range(70):  # more than one page of 64
        config = await saver.aput(
            generate_config("long") | {"configurable": {**config["configurable"]}},
            generate_checkpoint(),
            generate_metadata(step=step, source="loop" if step % 2 else "input"),
            {},
        )
    steps = [t.metadata["step"] async for t in saver.alist(generate_config("long"))]
    assert steps == list(range(69, -1, -1))
    odd = [t.metadata["step"] async for t in saver.alist(None, filter={"source": "loop"}, limit=3)]
    assert odd == [69, 67, 65]


def test_sqlite_engine_rolls_back_a_failed_transaction(tmp_path: Path) -> None:
    from aipowertools.sessions._graph_sql import SqliteGraphEngine

    engine = SqliteGraphEngine("sqlite:///x", tmp_path / "db.sqlite3", "rb")

    def failing() -> Any:
        yield "INSERT INTO rb_threads (thread_id, expires_at) VALUES (%(t)s, 1)", {"t": "a"}
        raise RuntimeError("boom")

    def threads() -> Any:
        rows = yield "SELECT thread_id FROM rb_threads", {}
        return rows

    with pytest.raises(RuntimeError, match="boom"):
        engine.run(failing(), atomic=True)
    assert engine.run(threads()) == []  # nothing of the failed transaction stayed
    engine.close()
    engine.close()  # closing twice is harmless
    assert engine.run(threads()) == []  # and the next call reconnects

"""Redis-specific paths of the LangGraph engine, on a redis-server of the test's own."""

from __future__ import annotations

from typing import Any

import pytest
from langgraph.checkpoint.conformance.test_utils import (
    generate_checkpoint,
    generate_config,
    generate_metadata,
)

from aipowertools.sessions.langgraph import CheckpointSaver, Store

pytestmark = pytest.mark.integration


def _put(saver: CheckpointSaver, tid: str, ns: str = "", **md: Any) -> Any:
    return saver.put(
        generate_config(tid, checkpoint_ns=ns), generate_checkpoint(), generate_metadata(**md), {}
    )


async def test_scripts_reload_after_script_flush(own_redis: Any) -> None:
    import redis

    saver = CheckpointSaver(own_redis.url, prefix="flush")
    cfg = _put(saver, "t", step=0)
    client = redis.Redis.from_url(own_redis.url)
    client.script_flush()
    _put(saver, "t", step=1)  # NOSCRIPT: loaded again, the batch re-sent
    client.script_flush()
    found = await saver.aget_tuple(generate_config("t"))
    assert found is not None
    assert found.metadata["step"] == 1
    client.script_flush()
    await saver.aput_writes(cfg, [("c", 1)], "task")
    assert (await saver.aget_tuple(cfg)).pending_writes == [("task", "c", 1)]  # type: ignore[union-attr]
    client.close()


def test_listing_edges(own_redis: Any) -> None:
    saver = CheckpointSaver(own_redis.url, prefix="edges", ttl=600)
    first = _put(saver, "t", step=0)
    _put(saver, "t", ns="child:1", step=1)
    cid = first["configurable"]["checkpoint_id"]
    only = list(saver.list({"configurable": {"thread_id": "t", "checkpoint_id": cid}}))
    assert [t.metadata["step"] for t in only] == [0]
    assert list(saver.list({"configurable": {"thread_id": "nobody"}})) == []
    saver.copy_thread("t", "u")  # with a TTL: the copy gets one too
    assert sorted(t.metadata["step"] for t in saver.list({"configurable": {"thread_id": "u"}})) == [
        0,
        1,
    ]
    saver.copy_thread("nobody", "v")
    saver.delete_thread("nobody")
    saver.delete_for_runs(["no-such-run"])


def test_store_item_edges(own_redis: Any) -> None:
    now = [100.0]
    store = Store(own_redis.url, prefix="items", clock=lambda: now[0])
    assert store.search(("none",)) == []
    assert store.sweep() == 0
    store.put(("n",), "k", {"v": 1}, ttl=1)
    store.put(("n",), "plain", {"v": 2})
    now[0] += 61
    assert store.get(("n",), "k") is None  # expired
    store.put(("n",), "k", {"v": 3}, ttl=1)  # a new life: created again
    item = store.get(("n",), "k")
    assert item is not None
    assert item.created_at.timestamp() == now[0]
    store.put(("n",), "k", {"v": 4}, ttl=1)  # an update keeps created_at
    assert store.get(("n",), "k").created_at.timestamp() == now[0]  # type: ignore[union-attr]
    assert [h.key for h in store.search(("n",))] == ["k", "plain"]
    store.delete(("n",), "plain")
    now[0] += 120
    assert store.sweep() == 1

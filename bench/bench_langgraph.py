"""LangGraph persistence: checkpoint put and latest get_tuple p50, ours vs LangGraph's savers.

Run: ``python bench/bench_langgraph.py`` (PostgreSQL and Redis on 127.0.0.1; a fresh database
is created and dropped). Peers, measured in the same run, on the same server or disk, with the
same checkpoints (built before the clock starts):

* PostgreSQL: ``langgraph-checkpoint-postgres`` ``PostgresSaver`` vs ours on ``postgresql://``;
* embedded: ``langgraph-checkpoint-sqlite`` ``SqliteSaver`` (a file) vs ours on
  ``diskcache://`` (an SQLite file in that directory);
* Redis: ours only. ``langgraph-checkpoint-redis`` needs the RedisJSON and RediSearch modules
  (Redis Stack / Redis 8); the server here is Redis 7.0 without modules, where its
  ``setup()`` fails on ``FT.CREATE`` (the bench says so when it tries).

Each checkpoint carries a growing chat (``messages``, 20 messages, a new version every step) and
a static 2 KB ``context`` channel, as an agent's state does. Rounds of ours and the peer
alternate, so load from other processes hits both alike. ``get_tuple`` reads the latest
checkpoint of a thread; ours is timed at two thread lengths to show it does not grow.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Result, percentile, write_results

REDIS_URL = os.environ.get("AIPOWERTOOLS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
PG_ADMIN_URL = os.environ.get(
    "AIPOWERTOOLS_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
ROUNDS, PER_ROUND = 6, 40
SHORT, LONG = 10, 1000  # thread lengths for the latest-read figures


def _checkpoints(n: int) -> list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]:
    """``n`` successive (checkpoint, metadata, new_versions) of a growing conversation."""
    from langchain_core.messages import AIMessage, HumanMessage
    from langgraph.checkpoint.base import empty_checkpoint

    context = {"system": "You are a helpful assistant. " * 70}
    out = []
    for step in range(n):
        cp = empty_checkpoint()
        messages = [
            (HumanMessage if i % 2 == 0 else AIMessage)(f"turn {step}.{i}: " + "lorem ipsum " * 6)
            for i in range(20)
        ]
        cp["channel_values"] = {"messages": messages, "context": context}
        cp["channel_versions"] = {"messages": step + 1, "context": 1}
        new = {"messages": step + 1} if step else {"messages": 1, "context": 1}
        out.append((cp, {"source": "loop", "step": step, "parents": {}}, new))
    return out


def _fill(saver: Any, tid: str, items: list[Any]) -> dict[str, Any]:
    config: dict[str, Any] = {"configurable": {"thread_id": tid, "checkpoint_ns": ""}}
    for cp, md, new in items:
        config = saver.put(config, cp, md, new)
    return config


def _time_puts(saver: Any, tid: str, items: list[Any]) -> list[float]:
    config: dict[str, Any] = {"configurable": {"thread_id": tid, "checkpoint_ns": ""}}
    samples = []
    for cp, md, new in items:
        start = time.perf_counter()
        config = saver.put(config, cp, md, new)
        samples.append(time.perf_counter() - start)
    return samples


def _time_gets(saver: Any, tid: str, n: int) -> list[float]:
    config = {"configurable": {"thread_id": tid, "checkpoint_ns": ""}}
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        found = saver.get_tuple(config)
        samples.append(time.perf_counter() - start)
        assert found is not None
    return samples


def _compare(label: str, ours: Any, peer: Any, peer_name: str, items: list[Any]) -> list[Result]:
    """put and get_tuple p50 of ``ours`` and ``peer`` in alternating rounds."""
    puts: dict[str, list[float]] = {"ours": [], "peer": []}
    gets: dict[str, list[float]] = {"ours": [], "peer": []}
    sides = {"ours": ours, "peer": peer}
    tag = uuid.uuid4().hex[:8]
    for side, saver in sides.items():  # warm up: connections, prepared statements, schema
        _fill(saver, f"warm-{tag}-{side}", items[:5])
    for r in range(ROUNDS):
        for side, saver in sides.items():
            tid = f"b-{tag}-{side}-{r}"
            puts[side] += _time_puts(saver, tid, items[:PER_ROUND])
            gets[side] += _time_gets(saver, tid, PER_ROUND)
    return [
        Result(
            f"{label}: put p50",
            "ms",
            percentile(puts["ours"], 50) * 1e3,
            peer=peer_name,
            peer_median=percentile(puts["peer"], 50) * 1e3,
            target="no slower than the peer",
            notes=f"{ROUNDS * PER_ROUND} puts each, alternating rounds",
        ),
        Result(
            f"{label}: get_tuple (latest) p50",
            "ms",
            percentile(gets["ours"], 50) * 1e3,
            peer=peer_name,
            peer_median=percentile(gets["peer"], 50) * 1e3,
            target="no slower than the peer",
            notes=f"threads of {PER_ROUND} checkpoints",
        ),
    ]


def _flatness(label: str, saver: Any, items: list[Any]) -> Result:
    """Latest read p50 on a thread of LONG checkpoints over one of SHORT."""
    tag = uuid.uuid4().hex[:8]
    _fill(saver, f"short-{tag}", items[:SHORT])
    from langgraph.checkpoint.base.id import uuid6

    # distinct, increasing checkpoint ids: a thread of LONG checkpoints, not LONG overwrites
    long_items = [
        ({**cp, "id": str(uuid6(clock_seq=i))}, {**md, "step": i}, new)
        for i, (cp, md, new) in enumerate((items * (LONG // len(items) + 1))[:LONG])
    ]
    _fill(saver, f"long-{tag}", long_items)
    short, long = [], []
    for _ in range(ROUNDS):
        short += _time_gets(saver, f"short-{tag}", PER_ROUND)
        long += _time_gets(saver, f"long-{tag}", PER_ROUND)
    return Result(
        f"{label}: get_tuple latest, {LONG} vs {SHORT} checkpoints",
        "x",
        percentile(long, 50) / percentile(short, 50),
        target="~1 (O(1) in the thread's length)",
        notes=f"p50 {percentile(short, 50) * 1e3:.3f} ms at {SHORT}, "
        f"{percentile(long, 50) * 1e3:.3f} ms at {LONG}",
    )


@contextlib.contextmanager
def _postgres() -> Iterator[str | None]:
    try:
        import psycopg

        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except Exception as exc:
        print(f"PostgreSQL not available ({exc}); skipping it")
        yield None
        return
    name = f"aipt_bench_lg_{uuid.uuid4().hex[:8]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        from aipowertools.core import stores

        with contextlib.suppress(Exception):
            stores._close_all()
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def bench_postgres(items: list[Any]) -> list[Result]:
    from aipowertools.sessions.langgraph import CheckpointSaver

    with _postgres() as url:
        if url is None:
            return []
        try:
            from langgraph.checkpoint.postgres import PostgresSaver
        except ImportError:
            print("langgraph-checkpoint-postgres not installed (uv sync --group bench)")
            return []
        with PostgresSaver.from_conn_string(url) as peer:
            peer.setup()
            ours = CheckpointSaver(url, prefix="bench")
            results = _compare("postgresql", ours, peer, "PostgresSaver", items)
            results.append(_flatness("postgresql", ours, items))
        return results


def bench_embedded(items: list[Any]) -> list[Result]:
    from aipowertools.sessions.langgraph import CheckpointSaver

    try:
        from langgraph.checkpoint.sqlite import SqliteSaver
    except ImportError:
        print("langgraph-checkpoint-sqlite not installed (uv sync --group bench)")
        return []
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        ours = CheckpointSaver(f"diskcache://{tmp}/ours", prefix="bench")
        # Ours runs SQLite in WAL with synchronous=NORMAL (a commit survives the process being
        # killed, not a power cut). SqliteSaver leaves SQLite's default, synchronous=FULL (an
        # fsync per commit); the first figure sets the peer to NORMAL too, like for like.
        with SqliteSaver.from_conn_string(str(Path(tmp) / "peer-normal.sqlite")) as peer:
            peer.setup()
            peer.conn.execute("PRAGMA synchronous=NORMAL")
            results += _compare("embedded", ours, peer, "SqliteSaver (WAL, NORMAL)", items)
        with SqliteSaver.from_conn_string(str(Path(tmp) / "peer-default.sqlite")) as peer:
            results += _compare("embedded", ours, peer, "SqliteSaver (its defaults)", items)
        results.append(_flatness("embedded", ours, items))
    return results


def bench_redis(items: list[Any]) -> list[Result]:
    import redis

    from aipowertools.sessions.langgraph import CheckpointSaver

    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        client.ping()
    except Exception as exc:
        print(f"Redis not available ({exc}); skipping it")
        return []
    modules = [m.get(b"name", b"").decode() for m in client.execute_command("MODULE", "LIST")]
    version = client.info("server")["redis_version"]
    note = f"Redis {version}, modules: {', '.join(modules) or 'none'}; "
    try:
        from langgraph.checkpoint.redis import RedisSaver  # type: ignore[import-not-found]
    except ImportError:
        note += "langgraph-checkpoint-redis is not installed (it needs RedisJSON + RediSearch)"
    else:  # pragma: no cover - needs Redis Stack
        try:
            with RedisSaver.from_conn_string(REDIS_URL) as peer:
                peer.setup()
        except Exception as exc:
            note += f"langgraph-checkpoint-redis cannot run here: {exc}"
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    ours = CheckpointSaver(REDIS_URL, prefix=prefix)
    try:
        tag = uuid.uuid4().hex[:8]
        _fill(ours, f"warm-{tag}", items[:5])
        puts, gets = [], []
        for r in range(ROUNDS):
            puts += _time_puts(ours, f"r-{tag}-{r}", items[:PER_ROUND])
            gets += _time_gets(ours, f"r-{tag}-{r}", PER_ROUND)
        results = [
            Result("redis: put p50", "ms", percentile(puts, 50) * 1e3, notes=note),
            Result("redis: get_tuple (latest) p50", "ms", percentile(gets, 50) * 1e3, notes=note),
            _flatness("redis", ours, items),
        ]
    finally:  # our keys only (never FLUSHDB a shared server)
        for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            client.delete(key)
        client.close()
    print(note)
    return results


def main() -> None:
    items = _checkpoints(PER_ROUND)
    benches: list[Callable[[list[Any]], list[Result]]] = [
        bench_embedded,
        bench_postgres,
        bench_redis,
    ]
    results: list[Result] = []
    for bench in benches:
        results += bench(items)
    write_results("langgraph", results)


if __name__ == "__main__":
    main()

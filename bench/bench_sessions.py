"""Sessions: append latency per backend, flatness with length, loss under 8 writers, vs peers.

Run: ``python bench/bench_sessions.py`` (Redis and PostgreSQL on 127.0.0.1, moto's S3 server
started in-process); ``--only redis,diskcache`` (or ``AIPOWERTOOLS_BENCH_SESSIONS_ONLY``) runs
only those phases of ``losses, diskcache, redis, postgresql, s3`` and writes
``results/sessions-<phases>.json`` instead of ``results/sessions.json``. Messages are built
before the clock starts: every figure times the append alone, ours and the peers' alike.
Peers are measured in the same run when installed (``uv sync --group bench``): LlamaIndex
``RedisChatStore``, ``PostgresChatStore`` and ``SimpleChatStore`` (its default, persisted to a
JSON file with ``persist(persist_path=...)`` after each add, loaded with
``from_persist_path``), langchain-postgres ``PostgresChatMessageHistory``, langchain-community
``FileChatMessageHistory``, langchain-redis ``RedisChatMessageHistory`` (needs the RediSearch
module) and a bare ``diskcache.Deque`` as the embedded floor.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from _harness import Result, percentile, write_results

REDIS_URL = os.environ.get("AIPOWERTOOLS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
PG_ADMIN_URL = os.environ.get(
    "AIPOWERTOOLS_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
WRITERS, PER_WRITER = 8, 200
S3_PER_WRITER = 200  # the full acceptance load; moto (~100 PUT/s here) makes it the slowest
ROUNDS, PER_ROUND = 10, 50  # many short alternating rounds: noise hits both sides alike
PHASES = ("losses", "diskcache", "redis", "postgresql", "s3")


def _message(i: int) -> Any:
    from langchain_core.messages import HumanMessage

    return HumanMessage(f"message {i}: " + "lorem ipsum " * 8)


def _chat(i: int) -> Any:
    from llama_index.core.llms import ChatMessage

    return ChatMessage(role="user", content=f"message {i}: " + "lorem ipsum " * 8)


def _sqlalchemy_urls(url: str) -> tuple[str, str]:
    """The sync (psycopg 3) and async (asyncpg) SQLAlchemy URLs of a ``postgresql://`` URL."""
    rest = url.split("://", 1)[1]
    return f"postgresql+psycopg://{rest}", f"postgresql+asyncpg://{rest}"


def _llama_pg_store(url: str) -> Any:
    """LlamaIndex ``PostgresChatStore`` on ``url`` (creates its ``peer_chatstore`` table)."""
    from llama_index.storage.chat_store.postgres import PostgresChatStore

    sync_url, async_url = _sqlalchemy_urls(url)
    return PostgresChatStore.from_params(
        connection_string=sync_url, async_connection_string=async_url, table_name="peer_chatstore"
    )


def _dispose_llama_pg(store: Any) -> None:
    """Close a ``PostgresChatStore``'s connection pools (its engines live in its sessionmakers)."""
    import asyncio

    with contextlib.suppress(Exception):
        store._session.kw["bind"].dispose()
    with contextlib.suppress(Exception):
        asyncio.run(store._async_session.kw["bind"].dispose())


def _simple_store_problem(path: Path) -> str | None:
    """Why LlamaIndex ``SimpleChatStore`` cannot persist here (None: it round-trips a message).

    Probed before measuring it: with a ``persist`` that raises, every append would count as
    "lost" for a reason that has nothing to do with concurrent writers.
    """
    try:
        from llama_index.core.storage.chat_store import SimpleChatStore

        store = SimpleChatStore()
        store.add_message("probe", _chat(0))
        store.persist(persist_path=str(path))
        if len(SimpleChatStore.from_persist_path(str(path)).get_messages("probe")) != 1:
            return "not measured: persist/from_persist_path did not round-trip a message"
    except ImportError:
        return None
    except Exception as exc:
        import llama_index.core
        import pydantic

        text = str(exc).splitlines()[0]
        cause = text[text.rfind("TypeError:") :] if "TypeError:" in text else text
        return (
            f"not measured: persist() raises {type(exc).__name__} with pydantic "
            f"{pydantic.VERSION} and llama-index-core {llama_index.core.__version__} "
            f"({cause[:120]})"
        )
    finally:
        path.unlink(missing_ok=True)
    return None


def _built(make: Callable[[int], Any], n: int = ROUNDS * PER_ROUND) -> list[Any]:
    """``n`` messages made up front, so the timed op is the append alone (for every side)."""
    return [make(i) for i in range(n)]


def _timed(op: Callable[[int], object], n: int, offset: int = 0) -> list[float]:
    out = []
    for i in range(n):
        start = time.perf_counter()
        op(offset + i)
        out.append((time.perf_counter() - start) * 1e3)
    return out


def _interleaved(
    ops: dict[str, Callable[[int], object]], rounds: int = ROUNDS, per_round: int = PER_ROUND
) -> dict[str, list[float]]:
    """Per-op milliseconds of each op, measured in alternating rounds (fair under noise)."""
    samples: dict[str, list[float]] = {name: [] for name in ops}
    for r in range(rounds):
        for name, op in ops.items():
            samples[name] += _timed(op, per_round, r * per_round)
    return samples


def _chunks(values: list[float], per_round: int = PER_ROUND) -> list[float]:
    return [statistics.median(values[i : i + per_round]) for i in range(0, len(values), per_round)]


# -- services -----------------------------------------------------------------------------------


@contextlib.contextmanager
def _postgres() -> Iterator[str | None]:
    try:
        import psycopg

        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except Exception as exc:
        print(f"PostgreSQL not available ({exc}); skipping it")
        yield None
        return
    name = f"aipt_bench_{uuid.uuid4().hex[:8]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        from aipowertools.core import stores

        with contextlib.suppress(Exception):
            stores._close_all()
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@contextlib.contextmanager
def _s3() -> Iterator[str | None]:
    try:
        import boto3
        from moto.server import ThreadedMotoServer
    except ImportError:
        yield None
        return
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="aipt-bench")
    try:
        yield f"s3://aipt-bench/b?endpoint_url={endpoint}&region=us-east-1"
    finally:
        server.stop()


def _redis_ok() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping())
    except Exception:
        return False


# -- writers for the loss test (this script re-run with --writer) ------------------------------


def _writer(kind: str, target: str, sid: str, writer: int, count: int) -> None:
    if kind == "ours":
        from aipowertools.sessions.langchain import SessionChatMessageHistory

        ours = SessionChatMessageHistory(sid, store=target, namespace="bench")
        for i in range(count):
            ours.add_message(_message(writer * 10_000 + i))
    elif kind == "file":
        from langchain_community.chat_message_histories import FileChatMessageHistory

        for i in range(count):
            with contextlib.suppress(Exception):  # it raises on a half-written file
                FileChatMessageHistory(target).add_message(_message(writer * 10_000 + i))
    elif kind == "llama-redis":
        from llama_index.storage.chat_store.redis import RedisChatStore

        store = RedisChatStore(redis_url=target)
        for i in range(count):
            store.add_message(sid, _chat(writer * 10_000 + i))
    elif kind == "llama-simple":
        from llama_index.core.storage.chat_store import SimpleChatStore

        for i in range(count):
            with contextlib.suppress(Exception):  # it raises on a half-written file
                simple = SimpleChatStore.from_persist_path(target)
                simple.add_message(sid, _chat(writer * 10_000 + i))
                simple.persist(persist_path=target)
    elif kind == "llama-postgres":
        pg_store = _llama_pg_store(target)
        for i in range(count):
            pg_store.add_message(sid, _chat(writer * 10_000 + i))
        _dispose_llama_pg(pg_store)
    elif kind == "langchain-postgres":
        import psycopg
        from langchain_postgres import PostgresChatMessageHistory

        conn = psycopg.connect(target, autocommit=True)
        history = PostgresChatMessageHistory("peer_history", sid, sync_connection=conn)
        for i in range(count):
            history.add_message(_message(writer * 10_000 + i))


def _preimport() -> None:
    """Import every writer's modules once, so forked writers start instantly."""
    import importlib

    for name in (
        "langchain_core.messages",
        "aipowertools.sessions.langchain",
        "aipowertools.sessions._diskcache",
        "aipowertools.sessions._redis",
        "aipowertools.sessions._postgres",
        "aipowertools.sessions._s3",
        "boto3",
        "psycopg",
        "langchain_community.chat_message_histories",
        "llama_index.storage.chat_store.redis",
        "llama_index.core.storage.chat_store",
        "llama_index.storage.chat_store.postgres",
        "sqlalchemy.dialects.postgresql.psycopg",
        "sqlalchemy.dialects.postgresql.asyncpg",
        "langchain_postgres",
    ):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def _run_writers(kind: str, target: str, sid: str, per_writer: int) -> float:
    # fork: the writers share the parent's imports (start-up would otherwise dominate); the
    # parent opens no store connection before this phase, so none is shared with a child.
    ctx = multiprocessing.get_context("fork")
    start = time.perf_counter()
    procs = [
        ctx.Process(target=_writer, args=(kind, target, sid, w, per_writer)) for w in range(WRITERS)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    return time.perf_counter() - start


def _loss(
    kind: str, target: str, per_writer: int, count: Callable[[str], int]
) -> tuple[int, float]:
    sid = str(uuid.uuid4())
    seconds = _run_writers(kind, target, sid, per_writer)
    return WRITERS * per_writer - count(sid), seconds


# -- measurements ---------------------------------------------------------------------------------


def _ours(url: str) -> Any:
    from aipowertools.sessions.langchain import SessionChatMessageHistory

    return SessionChatMessageHistory(f"b-{uuid.uuid4().hex[:12]}", store=url, namespace="bench")


def _growth(name: str, samples: list[float]) -> str:
    """A peer's last 100 appends against its first 100 (whole-file or whole-array rewrites)."""
    first, last = statistics.median(samples[:100]), statistics.median(samples[-100:])
    return f"{name}: first 100 {first:.3g} ms, last 100 {last:.3g} ms ({last / first:.2g}x)"


def _flatness(
    url: str,
    results: list[Result],
    label: str,
    peer: tuple[str, float] | None,
    per_round: int = PER_ROUND,
) -> None:
    small, big = _ours(url), _ours(url)
    small.add_messages([_message(i) for i in range(10)])
    for start in range(0, 10_000, 1_000):
        big.add_messages([_message(i) for i in range(start, start + 1_000)])
    msgs = _built(_message, ROUNDS * per_round)
    samples = _interleaved(
        {
            "10": lambda i: small.add_message(msgs[i]),
            "10k": lambda i: big.add_message(msgs[i]),
        },
        ROUNDS,
        per_round,
    )
    ratio = statistics.median(samples["10k"]) / statistics.median(samples["10"])
    results.append(
        Result(
            f"append at 10,000 vs at 10 ({label})",
            "x",
            ratio,
            peer=peer[0] if peer else None,
            peer_median=peer[1] if peer else None,
            target="<= 1.2",
        )
    )
    big.clear()
    small.clear()


def bench_diskcache(results: list[Result], tmp: Path) -> None:
    import diskcache

    from aipowertools.sessions import Session

    url = f"diskcache://{tmp / 'sessions'}"
    session = Session("floor", store=url)
    deque = diskcache.Deque(directory=str(tmp / "deque"))
    payload = {"role": "user", "content": "lorem ipsum " * 8}
    history = _ours(url)
    msgs = _built(_message)
    ops: dict[str, Callable[[int], object]] = {
        "session": lambda i: session.append("h", payload),
        "deque": lambda i: deque.append(payload),
        "history": lambda i: history.add_message(msgs[i]),
    }
    file_path = tmp / "file_history.json"
    try:
        from langchain_community.chat_message_histories import FileChatMessageHistory

        file_history = FileChatMessageHistory(str(file_path))
        ops["file"] = lambda i: file_history.add_message(msgs[i])
    except ImportError:
        pass
    simple_path = str(tmp / "simple_chat_store.json")
    simple_problem = _simple_store_problem(tmp / "simple_probe.json")
    if simple_problem is None:
        with contextlib.suppress(ImportError):
            from llama_index.core.storage.chat_store import SimpleChatStore

            from aipowertools.sessions.llama_index import SessionChatStore

            # the documented way to keep it across restarts: load once, persist after each add
            simple = SimpleChatStore.from_persist_path(simple_path)
            ours_li = SessionChatStore(url, namespace="bench")
            li_ours_key = f"b-{uuid.uuid4().hex[:12]}"
            chats = _built(_chat)

            def simple_add(i: int) -> None:
                simple.add_message("bench", chats[i])
                simple.persist(persist_path=simple_path)

            ops["simple"] = simple_add
            ops["ours-llama"] = lambda i: ours_li.add_message(li_ours_key, chats[i])
    s = _interleaved(ops)
    results.append(
        Result(
            "Session.append p50 (diskcache)",
            "ms",
            statistics.median(s["session"]),
            peer="bare diskcache Deque.append",
            peer_median=statistics.median(s["deque"]),
            target="<= 1.5x the Deque floor",
            runs=_chunks(s["session"]),
            peer_runs=_chunks(s["deque"]),
        )
    )
    file_p50 = statistics.median(s["file"]) if "file" in s else None
    results.append(
        Result(
            "chat history append p50 (diskcache)",
            "ms",
            statistics.median(s["history"]),
            peer="FileChatMessageHistory" if file_p50 else None,
            peer_median=file_p50,
            target="<= fastest peer",
            runs=_chunks(s["history"]),
            peer_runs=_chunks(s["file"]) if "file" in s else [],
            notes=_growth("file history", s["file"]) if "file" in s else "",
        )
    )
    results.append(
        Result(
            "chat history append p99 (diskcache)",
            "ms",
            percentile(s["history"], 99),
            peer="FileChatMessageHistory" if file_p50 else None,
            peer_median=percentile(s["file"], 99) if "file" in s else None,
        )
    )
    if "simple" in s:
        results.append(
            Result(
                "LlamaIndex chat store add_message p50 (diskcache)",
                "ms",
                statistics.median(s["ours-llama"]),
                peer="LlamaIndex SimpleChatStore, add + persist(persist_path=...)",
                peer_median=statistics.median(s["simple"]),
                target="<= peer",
                runs=_chunks(s["ours-llama"]),
                peer_runs=_chunks(s["simple"]),
                notes=_growth("SimpleChatStore", s["simple"]),
            )
        )
    elif simple_problem:
        results.append(
            Result(
                "LlamaIndex SimpleChatStore add + persist (diskcache phase)",
                "ms",
                float("nan"),
                notes=simple_problem,
            )
        )
    file_growth = None
    if "file" in s:
        file_growth = statistics.median(s["file"][-100:]) / statistics.median(s["file"][:100])
    _flatness(
        url,
        results,
        "diskcache",
        ("FileChatMessageHistory, its last 100 vs first 100", file_growth) if file_growth else None,
    )


def bench_redis(results: list[Result]) -> None:
    ours = _ours(REDIS_URL)
    msgs = _built(_message)
    ops: dict[str, Callable[[int], object]] = {"ours": lambda i: ours.add_message(msgs[i])}
    li_key = f"bench-li-{uuid.uuid4().hex}"
    li_store: Any = None
    try:
        from llama_index.storage.chat_store.redis import RedisChatStore

        from aipowertools.sessions.llama_index import SessionChatStore

        li_store = RedisChatStore(redis_url=REDIS_URL)
        ours_li = SessionChatStore(REDIS_URL, namespace="bench")
        li_ours_key = f"b-{uuid.uuid4().hex[:12]}"
        chats = _built(_chat)
        ops["llama"] = lambda i: li_store.add_message(li_key, chats[i])
        ops["ours-llama"] = lambda i: ours_li.add_message(li_ours_key, chats[i])
    except ImportError:
        pass
    s = _interleaved(ops)
    peer = (
        ("RedisChatStore, LlamaIndex messages", statistics.median(s["llama"]))
        if "llama" in s
        else None
    )
    results.append(
        Result(
            "chat history append p50 (redis)",
            "ms",
            statistics.median(s["ours"]),
            peer=peer[0] if peer else None,
            peer_median=peer[1] if peer else None,
            target="<= fastest peer",
            runs=_chunks(s["ours"]),
            peer_runs=_chunks(s["llama"]) if peer else [],
        )
    )
    results.append(
        Result(
            "chat history append p99 (redis)",
            "ms",
            percentile(s["ours"], 99),
            peer=peer[0] if peer else None,
            peer_median=percentile(s["llama"], 99) if peer else None,
        )
    )
    if "ours-llama" in s:
        results.append(
            Result(
                "LlamaIndex chat store add_message p50 (redis)",
                "ms",
                statistics.median(s["ours-llama"]),
                peer="LlamaIndex RedisChatStore",
                peer_median=statistics.median(s["llama"]),
                target="<= peer",
            )
        )
        li_store.delete_messages(li_key)
    try:
        from langchain_redis import RedisChatMessageHistory

        RedisChatMessageHistory(session_id="probe", redis_url=REDIS_URL).add_message(_message(0))
    except Exception as exc:
        results.append(
            Result(
                "langchain-redis RedisChatMessageHistory (redis)",
                "ms",
                float("nan"),
                notes=f"not measured: {type(exc).__name__} (needs Redis Stack / RediSearch)",
            )
        )
    _flatness(REDIS_URL, results, "redis", None)
    ours.clear()


def bench_postgres(results: list[Result], url: str) -> None:
    ours = _ours(url)
    msgs = _built(_message)
    ops: dict[str, Callable[[int], object]] = {"ours": lambda i: ours.add_message(msgs[i])}
    try:
        import psycopg
        from langchain_postgres import PostgresChatMessageHistory

        conn = psycopg.connect(url, autocommit=True)
        PostgresChatMessageHistory.create_tables(conn, "peer_history")
        peer_history = PostgresChatMessageHistory(
            "peer_history", str(uuid.uuid4()), sync_connection=conn
        )
        ops["peer"] = lambda i: peer_history.add_message(msgs[i])
    except ImportError:
        pass
    li_store: Any = None
    try:
        from aipowertools.sessions.llama_index import SessionChatStore

        li_store = _llama_pg_store(url)
        ours_li = SessionChatStore(url, namespace="bench")
        li_key, li_ours_key = f"bench-li-{uuid.uuid4().hex}", f"b-{uuid.uuid4().hex[:12]}"
        chats = _built(_chat)
        ops["llama"] = lambda i: li_store.add_message(li_key, chats[i])
        ops["ours-llama"] = lambda i: ours_li.add_message(li_ours_key, chats[i])
    except ImportError:
        pass
    except Exception as exc:  # installed but unusable here: say why instead of a figure
        results.append(
            Result(
                "LlamaIndex PostgresChatStore (postgresql)",
                "ms",
                float("nan"),
                notes=f"not measured: {type(exc).__name__}: {exc}",
            )
        )
    s = _interleaved(ops)
    names = {"peer": "langchain-postgres", "llama": "LlamaIndex PostgresChatStore"}
    peers = [k for k in names if k in s]
    fastest = min(peers, key=lambda k: statistics.median(s[k])) if peers else None
    results.append(
        Result(
            "chat history append p50 (postgresql)",
            "ms",
            statistics.median(s["ours"]),
            peer=names[fastest] if fastest else None,
            peer_median=statistics.median(s[fastest]) if fastest else None,
            target="<= fastest peer",
            runs=_chunks(s["ours"]),
            peer_runs=_chunks(s[fastest]) if fastest else [],
        )
    )
    results.append(
        Result(
            "chat history append p99 (postgresql)",
            "ms",
            percentile(s["ours"], 99),
            peer=names[fastest] if fastest else None,
            peer_median=percentile(s[fastest], 99) if fastest else None,
        )
    )
    if "llama" in s:
        results.append(
            Result(
                "LlamaIndex chat store add_message p50 (postgresql)",
                "ms",
                statistics.median(s["ours-llama"]),
                peer="LlamaIndex PostgresChatStore",
                peer_median=statistics.median(s["llama"]),
                target="<= peer",
                runs=_chunks(s["ours-llama"]),
                peer_runs=_chunks(s["llama"]),
                notes=_growth("PostgresChatStore", s["llama"]),
            )
        )
        li_store.delete_messages(li_key)
        _dispose_llama_pg(li_store)
    _flatness(url, results, "postgresql", None)


def bench_s3(results: list[Result], url: str) -> None:
    ours = _ours(url)
    msgs = _built(_message)
    s = _interleaved({"ours": lambda i: ours.add_message(msgs[i])})
    results.append(
        Result(
            "chat history append p50 (s3, moto)",
            "ms",
            statistics.median(s["ours"]),
            runs=_chunks(s["ours"]),
            notes="no peer S3 chat history to compare",
        )
    )
    results.append(Result("chat history append p99 (s3, moto)", "ms", percentile(s["ours"], 99)))
    _flatness(url, results, "s3, moto", None, per_round=10)


def bench_losses(results: list[Result], tmp: Path, pg_url: str | None, s3_url: str | None) -> None:
    from aipowertools.sessions import Session

    def ours_count(url: str) -> Callable[[str], int]:
        return lambda sid: Session(sid, store=url, namespace="bench").length("messages")

    targets = [("diskcache", f"diskcache://{tmp / 'loss'}", PER_WRITER)]
    if _redis_ok():
        targets.append(("redis", REDIS_URL, PER_WRITER))
    if pg_url:
        targets.append(("postgresql", pg_url, PER_WRITER))
    if s3_url:
        targets.append(("s3, moto", s3_url, S3_PER_WRITER))
    for label, url, per in targets:
        lost, seconds = _loss("ours", url, per, ours_count(url))
        results.append(
            Result(
                f"lost of {WRITERS}x{per} appends ({label})",
                "items",
                lost,
                target="0",
                notes=f"{seconds:.1f} s wall",
            )
        )
    peers: list[tuple[str, str, Callable[[str], int]]] = []
    with contextlib.suppress(ImportError):
        from langchain_community.chat_message_histories import FileChatMessageHistory

        path = str(tmp / "peer_file.json")

        def file_count(sid: str) -> int:
            try:
                return len(FileChatMessageHistory(path).messages)
            except Exception:
                return 0  # corrupted file: nothing readable

        peers.append(("file", path, file_count))
    with contextlib.suppress(ImportError):
        from llama_index.storage.chat_store.redis import RedisChatStore

        if _redis_ok():
            peers.append(
                (
                    "llama-redis",
                    REDIS_URL,
                    lambda sid: len(RedisChatStore(redis_url=REDIS_URL).get_messages(sid)),
                )
            )
    with contextlib.suppress(ImportError):
        import psycopg
        from langchain_postgres import PostgresChatMessageHistory

        if pg_url:
            with psycopg.connect(pg_url, autocommit=True) as conn:
                PostgresChatMessageHistory.create_tables(conn, "peer_history")

            def pg_count(sid: str) -> int:
                with psycopg.connect(pg_url, autocommit=True) as conn:
                    return len(
                        PostgresChatMessageHistory(
                            "peer_history", sid, sync_connection=conn
                        ).messages
                    )

            peers.append(("langchain-postgres", pg_url, pg_count))
    with contextlib.suppress(ImportError):
        from llama_index.core.storage.chat_store import SimpleChatStore

        simple_path = str(tmp / "peer_simple_chat_store.json")

        def simple_count(sid: str) -> int:
            try:
                return len(SimpleChatStore.from_persist_path(simple_path).get_messages(sid))
            except Exception:
                return 0  # corrupted file: nothing readable

        simple_problem = _simple_store_problem(tmp / "simple_probe.json")
        if simple_problem:
            results.append(
                Result(
                    f"lost of {WRITERS}x{PER_WRITER}, peer LlamaIndex SimpleChatStore",
                    "items",
                    float("nan"),
                    notes=simple_problem,
                )
            )
        else:
            peers.append(("llama-simple", simple_path, simple_count))
    if pg_url:
        try:
            # the table made here, before the writers start (8 concurrent CREATE TABLEs race)
            _dispose_llama_pg(_llama_pg_store(pg_url))

            def llama_pg_count(sid: str) -> int:
                store = _llama_pg_store(pg_url)
                try:
                    return len(store.get_messages(sid))
                finally:
                    _dispose_llama_pg(store)

            peers.append(("llama-postgres", pg_url, llama_pg_count))
        except ImportError:
            pass
        except Exception as exc:
            results.append(
                Result(
                    f"lost of {WRITERS}x{PER_WRITER}, peer LlamaIndex PostgresChatStore",
                    "items",
                    float("nan"),
                    notes=f"not measured: {type(exc).__name__}: {exc}",
                )
            )
    names = {
        "file": "FileChatMessageHistory",
        "llama-simple": "LlamaIndex SimpleChatStore (from_persist_path/persist)",
        "llama-redis": "LlamaIndex RedisChatStore",
        "llama-postgres": "LlamaIndex PostgresChatStore",
        "langchain-postgres": "langchain-postgres",
    }
    for kind, target, count in peers:
        lost, seconds = _loss(kind, target, PER_WRITER, count)
        results.append(
            Result(
                f"lost of {WRITERS}x{PER_WRITER}, peer {names[kind]}",
                "items",
                lost,
                notes=f"{seconds:.1f} s wall",
            )
        )


def _selected(argv: list[str]) -> tuple[str, ...]:
    """Phases named by ``--only a,b`` or ``AIPOWERTOOLS_BENCH_SESSIONS_ONLY`` (default: all)."""
    only = os.environ.get("AIPOWERTOOLS_BENCH_SESSIONS_ONLY", "")
    if "--only" in argv:
        only = argv[argv.index("--only") + 1]
    if not only:
        return PHASES
    names = tuple(n.strip() for n in only.split(",") if n.strip())
    unknown = [n for n in names if n not in PHASES]
    if unknown:
        raise SystemExit(f"unknown phase {unknown}; choose from {', '.join(PHASES)}")
    return names


def main(argv: list[str]) -> None:
    selected = _selected(argv)
    results: list[Result] = []
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        need_pg = {"losses", "postgresql"} & set(selected)
        need_s3 = {"losses", "s3"} & set(selected)
        pg_url = stack.enter_context(_postgres()) if need_pg else None
        s3_url = stack.enter_context(_s3()) if need_s3 else None
        _preimport()
        # the loss phase first: its writers are forked before this process opens any store
        phases: dict[str, Callable[[], None]] = {
            "losses": lambda: bench_losses(results, tmp, pg_url, s3_url),
            "diskcache": lambda: bench_diskcache(results, tmp),
        }
        if _redis_ok():
            phases["redis"] = lambda: bench_redis(results)
        if pg_url:
            phases["postgresql"] = lambda: bench_postgres(results, pg_url)
        if s3_url:
            phases["s3"] = lambda: bench_s3(results, s3_url)
        for name, phase in phases.items():
            if name not in selected:
                continue
            t0 = time.perf_counter()
            phase()
            print(f"  {name}: {time.perf_counter() - t0:.1f} s", flush=True)
    print(f"bench_sessions: {time.perf_counter() - started:.0f} s")
    suite = "sessions" if selected == PHASES else "sessions-" + "-".join(selected)
    write_results(suite, results)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--writer":
        kind, target, sid, writer, count = sys.argv[2:7]
        _writer(kind, target, sid, int(writer), int(count))
    else:
        main(sys.argv[1:])

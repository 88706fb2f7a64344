"""LangGraph checkpoints survive concurrency, kill -9 of a writer, and a server restart."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.conformance.test_utils import (
    generate_checkpoint,
    generate_config,
    generate_metadata,
)

from aipowertools.core.errors import StoreUnavailableError
from aipowertools.sessions.langgraph import CheckpointSaver

pytestmark = pytest.mark.integration

WRITER = str(Path(__file__).with_name("_graph_writer.py"))
KINDS = ["diskcache", "redis", "postgresql"]


def _start(prefix: str, writer: int, count: int, urls: list[str], **kw: Any) -> Any:
    proc = subprocess.Popen(
        [sys.executable, WRITER, prefix, str(writer), str(count), *urls],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kw,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"ready\n", proc.communicate()[1].decode()[-2000:]
    return proc


def _check_own_thread(saver: CheckpointSaver, writer: int, acked: int) -> list[int]:
    """Every checkpoint of writer's thread, readable, each the child of the one before."""
    tuples = list(saver.list(generate_config(f"w{writer}")))
    steps = [t.metadata["step"] for t in tuples]
    for newer, older in itertools.pairwise(tuples):
        assert newer.parent_config is not None
        assert newer.parent_config["configurable"]["checkpoint_id"] == older.checkpoint["id"]
        assert older.checkpoint["channel_values"]["i"] == older.metadata["step"]
    latest = saver.get_tuple(generate_config(f"w{writer}"))
    assert latest is not None
    assert latest.metadata["step"] == max(steps)
    assert steps[::-1][: acked + 1] == list(range(acked + 1))
    return steps


# Starting 8 interpreters that import LangChain costs ~10 CPU-seconds on its own; on a loaded
# 2-core machine that alone can take the default 60 s, so this one test gets more time.
@pytest.mark.timeout(180)
def test_eight_processes_lose_no_checkpoint(make_url: Callable[[str], str]) -> None:
    """8 writers x 12 checkpoints to their own thread and to one shared thread, on all stores."""
    prefix, writers, count = f"d{uuid.uuid4().hex[:8]}", 8, 12
    urls = [make_url(kind) for kind in KINDS]
    procs = [_start(prefix, 0, count, urls, stdin=subprocess.PIPE)]
    procs += [_start(prefix, w, count, urls, stdin=subprocess.PIPE) for w in range(1, writers)]
    for p in procs:
        p.stdin.write(b"go\n")
        p.stdin.flush()
    for p in procs:
        _, err = p.communicate(timeout=170)
        assert p.returncode == 0, err.decode()[-2000:]
    for url in urls:
        saver = CheckpointSaver(url, prefix=prefix)
        for w in range(writers):
            assert _check_own_thread(saver, w, count - 1) == list(range(count - 1, -1, -1)), url
        shared = [
            (t.metadata["w"], t.metadata["step"]) for t in saver.list(generate_config("shared"))
        ]
        assert sorted(shared) == [(w, i) for w in range(writers) for i in range(count)], url
        assert len(list(saver.list(None))) == writers * count * 2, url


@pytest.mark.parametrize("kind", KINDS)
def test_kill_minus_nine_mid_put_loses_no_acknowledged_checkpoint(
    kind: str, make_url: Callable[[str], str]
) -> None:
    url, prefix = make_url(kind), f"k{uuid.uuid4().hex[:8]}"
    proc = _start(prefix, 0, 100_000, [url], stdin=subprocess.DEVNULL)
    acked = -1
    assert proc.stdout is not None
    for line in proc.stdout:
        acked = int(line.split()[1])
        if acked >= 40:
            break
    os.kill(proc.pid, signal.SIGKILL)
    rest = proc.stdout.read()
    proc.wait(timeout=10)
    proc.stdout.close()
    proc.stderr.close()  # type: ignore[union-attr]
    acked = max([acked, *(int(x.split()[1]) for x in rest.splitlines() if x.startswith(b"ack "))])
    saver = CheckpointSaver(url, prefix=prefix)
    steps = _check_own_thread(saver, 0, acked)
    assert len(steps) in (acked + 1, acked + 2)  # at most the put in flight beyond the last ack
    shared = [t.metadata["step"] for t in saver.list(generate_config("shared"))]
    assert shared[::-1][: acked + 1] == list(range(acked + 1))
    # the thread is still writable after the crash
    cfg = saver.put(generate_config("w0"), generate_checkpoint(), generate_metadata(step=-5), {})
    assert saver.get_tuple(generate_config("w0")).config == cfg  # type: ignore[union-attr]


def _put(saver: CheckpointSaver, tid: str, step: int) -> Any:
    return saver.put(generate_config(tid), generate_checkpoint(), generate_metadata(step=step), {})


def _restart_scenario(
    saver: CheckpointSaver, stop: Callable[[], None], start: Callable[[], None]
) -> None:
    for step in range(20):
        _put(saver, "t", step)
    stop()
    for call in (
        lambda: _put(saver, "t", 99),
        lambda: saver.get_tuple(generate_config("t")),
        lambda: list(saver.list(generate_config("t"))),
    ):
        with pytest.raises(StoreUnavailableError) as info:
            call()
        assert "unavailable" in str(info.value)
    start()
    failures = 0
    for _ in range(30):  # pooled connections broken by the restart fail once each, typed
        try:
            _put(saver, "t", 20)
            break
        except StoreUnavailableError:
            failures += 1
    else:
        pytest.fail("no recovery after the server came back")
    assert failures < 30
    steps = sorted(t.metadata["step"] for t in saver.list(generate_config("t")))
    assert steps == list(range(21))  # every acknowledged checkpoint, the new one, nothing else


def test_redis_restart_gives_typed_errors_then_recovers(own_redis: Any) -> None:
    saver = CheckpointSaver(own_redis.url, prefix="restart")
    _restart_scenario(saver, own_redis.kill, own_redis.start)


async def test_redis_restart_async(own_redis: Any) -> None:
    saver = CheckpointSaver(own_redis.url, prefix="arestart")
    await saver.aput(generate_config("t"), generate_checkpoint(), generate_metadata(step=0), {})
    own_redis.kill()
    with pytest.raises(StoreUnavailableError):
        await saver.aget_tuple(generate_config("t"))
    own_redis.start()
    for _ in range(5):
        try:
            found = await saver.aget_tuple(generate_config("t"))
            break
        except StoreUnavailableError:
            continue
    assert found is not None
    assert found.metadata["step"] == 0


def _pg_bin() -> Path | None:
    root = Path("/usr/lib/postgresql")
    found = sorted(root.glob("*/bin/pg_ctl")) if root.exists() else []
    return found[-1].parent if found else None


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[dict[str, Any]]:
    import socket

    bindir = _pg_bin()
    if bindir is None or shutil.which("runuser") is None:
        pytest.skip("PostgreSQL server binaries (or runuser) are not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = Path(f"/tmp/aipt-pg-{uuid.uuid4().hex[:8]}")
    base.mkdir()
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_pg:
        shutil.chown(base, "postgres")
    data = base / "data"
    subprocess.run(
        [
            *as_pg,
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
        ],
        check=True,
        capture_output=True,
        timeout=50,
    )
    opts = f"-p {port} -k {base} -c listen_addresses=127.0.0.1"

    def start() -> None:
        subprocess.run(
            [
                *as_pg,
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                opts,
                "-l",
                str(base / "log"),
                "-w",
                "start",
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )

    def stop() -> None:  # an immediate stop is a crash: no shutdown checkpoint
        subprocess.run(
            [*as_pg, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            check=True,
            capture_output=True,
            timeout=30,
        )

    start()
    try:
        yield {
            "url": f"postgresql://postgres@127.0.0.1:{port}/postgres",
            "start": start,
            "stop": stop,
        }
    finally:
        subprocess.run(
            [*as_pg, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=30,
        )
        shutil.rmtree(base, ignore_errors=True)


def test_postgres_restart_gives_typed_errors_then_recovers(own_postgres: dict[str, Any]) -> None:
    from psycopg_pool import ConnectionPool

    from aipowertools.sessions._graph_sql import PostgresGraphEngine

    url = own_postgres["url"]
    saver = CheckpointSaver(url, prefix="restart")
    # the shared pool waits up to 30 s for a connection; a pool of this test fails in 1 s
    pool = ConnectionPool(url, min_size=1, max_size=2, timeout=1.0, open=True)
    saver._engine = PostgresGraphEngine(url, "restart", pool=pool)
    try:
        _restart_scenario(saver, own_postgres["stop"], own_postgres["start"])
    finally:
        pool.close()

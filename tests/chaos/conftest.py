"""Chaos fixtures: our own Redis and PostgreSQL servers, killed, frozen and restarted at will.

The shared servers of the machine (6379 / 5432) are never touched: every server here is a
child process on a free loopback port with its data in a temporary directory. A missing binary
skips the test (fails under ``CI=true``).

Every test reports what it tried through the ``tally`` fixture; the terminal summary prints one
line per scenario: tried / survived / lost.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from aipowertools.testing._services import in_ci


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    for _ in range(400):  # bounded: 400 x 25 ms
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.025)
    raise RuntimeError(f"{what} did not listen on {port}")


def _missing(what: str) -> None:
    if in_ci():
        pytest.fail(f"{what} is needed for the chaos tests (CI=true)")
    pytest.skip(f"{what} not installed")


class RedisServer:
    """A redis-server child process: ``kill()``, ``freeze()`` / ``thaw()``, ``start()``."""

    def __init__(self, binary: str, workdir: Path, *, persistent: bool = False) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = _free_port()
        self.persistent = persistent
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "always"]
            if self.persistent
            else ["--appendonly", "no"]
        )
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             *persistence, "--dir", str(self.workdir), "--daemonize", "no",
             "--logfile", str(self.workdir / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        _wait_port(self.port, self.proc, "redis-server")
        import redis

        client = redis.Redis(port=self.port, socket_timeout=1)
        try:
            for _ in range(400):  # listening is not serving: wait out LOADING (AOF replay)
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    time.sleep(0.025)
            raise RuntimeError("redis-server did not answer PING")
        finally:
            client.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        self.kill()
        self.start()

    def freeze(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server of our own (no persistence), stopped after the test."""
    binary = shutil.which("redis-server")
    if binary is None:
        _missing("redis-server")
    server = RedisServer(str(binary), tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()
        _forget_clients()


def _forget_clients() -> None:
    from aipowertools.core import stores

    stores._close_all()


class PostgresServer:
    """A postgres child process on its own data directory and port."""

    def __init__(self, bindir: Path, datadir: Path, run_as: list[str]) -> None:
        self.bindir = bindir
        self.datadir = datadir
        self.run_as = run_as
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = open(datadir.parent / "postgres.log", "ab")  # noqa: SIM115 - closed in kill

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [*self.run_as, str(self.bindir / "postgres"), "-D", str(self.datadir),
             "-p", str(self.port), "-c", "listen_addresses=127.0.0.1",
             "-c", f"unix_socket_directories={self.datadir}", "-c", "fsync=off",
             "-c", "max_connections=60"],
            stdout=subprocess.DEVNULL, stderr=self.log, start_new_session=True,
        )  # fmt: skip
        _wait_port(self.port, self.proc, "postgres")
        for _ in range(200):  # listening is not accepting: wait for a real login
            if self._ready():
                return
            time.sleep(0.05)
        log = (self.datadir.parent / "postgres.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"postgres did not accept logins:\n{log}")

    def _ready(self) -> bool:
        import psycopg

        try:
            psycopg.connect(self.url, connect_timeout=2).close()
        except psycopg.Error:
            return False
        return True

    def _pids(self) -> list[int]:
        """The postmaster and its children (backends call setsid: no process group holds all)."""
        try:
            postmaster = int((self.datadir / "postmaster.pid").read_text().split()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return []
        out = subprocess.run(
            ["pgrep", "-P", str(postmaster)], capture_output=True, text=True, check=False
        ).stdout
        return [postmaster, *(int(p) for p in out.split())]

    def _signal(self, sig: int, pids: list[int]) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            pids = self._pids()
            self._signal(signal.SIGKILL, pids)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(os.getpgid(self.proc.pid), signal.SIGKILL)
            self.proc.wait(10)
            for pid in pids:  # wait for the orphans to be gone too (bounded)
                for _ in range(200):
                    if not Path(f"/proc/{pid}").exists():
                        break
                    time.sleep(0.01)
        self.proc = None
        self.log.flush()
        # a killed postmaster leaves its pid and socket lock files behind
        for leftover in [self.datadir / "postmaster.pid", *self.datadir.glob(".s.PGSQL.*")]:
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()

    def restart(self) -> None:
        self.kill()
        self.start()

    def freeze(self) -> None:
        pids = self._pids()
        self._signal(signal.SIGSTOP, pids[:1])  # the postmaster first: no new children
        self._signal(signal.SIGSTOP, self._pids()[1:])

    def thaw(self) -> None:
        pids = self._pids()
        self._signal(signal.SIGCONT, pids[1:])
        self._signal(signal.SIGCONT, pids[:1])


@pytest.fixture(scope="session")
def _postgres_cluster() -> Iterator[tuple[Path, Path, list[str]]]:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    binary = shutil.which("initdb")
    bindir = Path(found[-1]).parent if found else (Path(binary).parent if binary else None)
    if bindir is None or not (bindir / "postgres").exists():
        _missing("PostgreSQL server binaries (initdb, postgres)")
    assert bindir is not None
    tmp = Path(tempfile.mkdtemp(prefix="aipt-chaos-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root
        if shutil.which("runuser") is None:
            _missing("runuser (to run postgres as a non-root user)")
        run_as = ["runuser", "-u", "postgres", "--"]
        shutil.chown(tmp, "postgres")
    data = tmp / "data"
    subprocess.run(
        [*run_as, str(bindir / "initdb"), "-D", str(data), "-U", "postgres",
         "--auth=trust", "--no-sync", "-E", "UTF8"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield bindir, data, run_as
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def postgres_server(_postgres_cluster: tuple[Path, Path, list[str]]) -> Iterator[PostgresServer]:
    """A postgres server of our own (one initdb per session, a fresh start per test)."""
    bindir, data, run_as = _postgres_cluster
    server = PostgresServer(bindir, data, run_as)
    server.start()
    try:
        yield server
    finally:
        server.kill()
        server.log.close()
        _forget_clients()


# --------------------------------------------------------------------------- the tally


@dataclass
class Scenario:
    tried: int = 0
    survived: int = 0
    refused: int = 0
    lost: int = 0
    notes: list[str] = field(default_factory=list)


_TALLY: dict[str, Scenario] = {}


class Tally:
    """Counts per scenario: what was tried, what survived, what was lost."""

    def __init__(self, scenario: str) -> None:
        self.scenario = _TALLY.setdefault(scenario, Scenario())

    def tried(self, n: int = 1) -> None:
        self.scenario.tried += n

    def survived(self, n: int = 1) -> None:
        self.scenario.survived += n

    def refused(self, n: int = 1) -> None:
        """Refused with a typed error (the caller knows it was not done)."""
        self.scenario.refused += n

    def lost(self, n: int = 1) -> None:
        """Failed the wrong way: acknowledged and missing, or an untyped error / a hang."""
        self.scenario.lost += n


@pytest.fixture
def tally(request: pytest.FixtureRequest) -> Tally:
    """A tally for this test's scenario (its node name)."""
    return Tally(request.node.name)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _TALLY:
        return
    terminalreporter.section("chaos: tried / survived / refused (typed error) / lost")
    width = max(len(name) for name in _TALLY)
    for name, s in sorted(_TALLY.items()):
        terminalreporter.write_line(
            f"{name:<{width}}  tried {s.tried:>5}  survived {s.survived:>5}  "
            f"refused {s.refused:>5}  lost {s.lost:>5}"
        )


@pytest.fixture(autouse=True)
def _collect_earlier_garbage() -> None:
    """Collect garbage left by earlier test modules before each chaos test starts.

    Per-loop redis.asyncio clients of earlier async tests are dropped with their loops and warn
    (ResourceWarning) when collected; the allocation-heavy fuzz tests here would otherwise
    trigger that collection and be blamed for another module's connections.
    """
    import gc
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()

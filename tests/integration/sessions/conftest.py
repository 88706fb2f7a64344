"""Fixtures for session backends on real services: Redis, PostgreSQL and moto's S3 server."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from aipowertools.sessions import MemoryBackend, SessionBackend

BACKENDS = ["memory", "diskcache", "redis", "postgresql", "s3"]


@pytest.fixture(scope="module", autouse=True)
def _shared_bytecode_cache() -> Iterator[None]:
    """Worker subprocesses write and reuse one bytecode cache (the environment turns bytecode
    writing off): only the first one compiles pydantic, redis, boto3, ... on a fresh machine."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
        mp.setenv("PYTHONPYCACHEPREFIX", str(Path(tempfile.gettempdir()) / "aipowertools-pyc"))
        yield


# moto's ThreadedMotoServer, run in its own process: in this one it would share the GIL with
# pytest and be traced by coverage, which makes it several times slower.
_MOTO = """
import logging, sys
from moto.server import ThreadedMotoServer
logging.getLogger("werkzeug").setLevel(logging.ERROR)
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()  # until the test session closes our stdin
server.stop()
"""


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server (ThreadedMotoServer) over real HTTP on loopback, with one bucket."""
    import boto3

    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    with subprocess.Popen(
        [sys.executable, "-c", _MOTO],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={k: v for k, v in env.items() if not k.startswith("COV_CORE")},
    ) as server:
        assert server.stdout is not None
        assert server.stdin is not None
        port = int(server.stdout.readline())
        endpoint = f"http://127.0.0.1:{port}"
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        ).create_bucket(Bucket="aipt-sessions")
        try:
            yield endpoint
        finally:
            server.stdin.close()
            server.wait(timeout=10)


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


def store_url(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL of ``kind`` private to the calling test."""
    tag = uuid.uuid4().hex[:10]
    if kind == "memory":
        return f"memory://{tag}"
    if kind == "diskcache":
        return f"diskcache://{tmp_path / 'sessions'}"
    if kind == "redis":
        return str(request.getfixturevalue("redis_url"))
    if kind == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    endpoint = request.getfixturevalue("s3_endpoint")
    return f"s3://aipt-sessions/{tag}?endpoint_url={endpoint}&region=us-east-1"


def make_backend(kind: str, url: str) -> SessionBackend:
    """A fresh backend object for ``url`` (not the process-wide shared one)."""
    if kind == "memory":
        return MemoryBackend(url)
    if kind == "diskcache":
        from aipowertools.sessions._diskcache import DiskCacheBackend

        return DiskCacheBackend(url.removeprefix("diskcache://"))
    if kind == "redis":
        import redis

        from aipowertools.sessions._redis import RedisBackend

        return RedisBackend(
            url, prefix=f"t{uuid.uuid4().hex[:8]}", client=redis.Redis.from_url(url)
        )
    if kind == "postgresql":
        from psycopg_pool import ConnectionPool

        from aipowertools.sessions._postgres import PostgresBackend

        pool = ConnectionPool(url, min_size=1, max_size=4, open=True)
        return PostgresBackend(url, pool=pool)
    from aipowertools.sessions._s3 import S3Backend

    return S3Backend(url)


@pytest.fixture
def make_url(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], str]:
    """``make_url(kind)``: a store URL of ``kind`` private to the calling test."""
    return lambda kind: store_url(kind, request, tmp_path)


@pytest.fixture(params=BACKENDS)
def backend_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def backend(
    backend_kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[SessionBackend]:
    b = make_backend(backend_kind, store_url(backend_kind, request, tmp_path))
    try:
        yield b
    finally:
        pool = getattr(b, "_pool", None)
        b.close()
        if backend_kind == "postgresql" and pool is not None:
            pool.close()


# -- servers of our own, on spare ports, for the tests that stop and restart them ----------------


def spare_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OwnRedis:
    """A redis-server of this test only (never the shared one): start, kill -9, restart."""

    def __init__(self, directory: Path) -> None:
        self.port = spare_port()
        self.dir = directory
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        import shutil
        import time

        exe = shutil.which("redis-server")
        if exe is None:
            pytest.skip("redis-server is not installed")
        # appendonly + fsync always: what a server that must not lose acknowledged writes runs
        self.proc = subprocess.Popen(
            [
                exe,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                str(self.dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        client = redis.Redis(port=self.port)
        for _ in range(200):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.02)
        client.close()

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path / "redis")
    server.dir.mkdir()
    server.start()
    try:
        yield server
    finally:
        server.kill()

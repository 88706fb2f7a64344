"""Real Redis and PostgreSQL for tests: a fresh database per test session, dropped afterwards.

Under ``CI=true`` a service that does not answer is a failure; on a developer's machine the
tests that need it are skipped with the reason.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
_REDIS_DBS = range(1, 16)
_LOCK_PREFIX = "aipowertools:test-db-lock:"


class ServiceUnavailable(RuntimeError):
    """A test service did not answer."""


def in_ci() -> bool:
    """Whether we run under CI (``CI`` set to a true value), where missing services fail."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}


def _port_open(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    try:
        with socket.create_connection((host, parts.port or default_port), timeout=1.0):
            return True
    except OSError:
        return False


@contextmanager
def fresh_redis_db(base_url: str | None = None) -> Iterator[str]:
    """Claim a free numbered Redis database, empty it, yield its URL and empty it again.

    Databases 1-15 are claimed with a lock key in database 0 so that test sessions running at
    the same time on one server never share (or flush) each other's data.
    """
    import redis

    base_url = base_url or os.environ.get("AIPOWERTOOLS_TEST_REDIS_URL", DEFAULT_REDIS_URL)
    if not _port_open(base_url, 6379):
        raise ServiceUnavailable(f"Redis is not answering at {base_url}")
    parts = urlsplit(base_url)
    control = redis.Redis.from_url(urlunsplit(parts._replace(path="/0")))
    token = f"{os.getpid()}-{secrets.token_hex(4)}"
    try:
        for db in _REDIS_DBS:
            if control.set(f"{_LOCK_PREFIX}{db}", token, nx=True, ex=6 * 3600):
                break
        else:
            raise ServiceUnavailable("all Redis test databases 1-15 are claimed by other runs")
        url = urlunsplit(parts._replace(path=f"/{db}"))
        client = redis.Redis.from_url(url)
        client.flushdb()
        try:
            yield url
        finally:
            client.flushdb()
            client.close()
            if control.get(f"{_LOCK_PREFIX}{db}") == token.encode():
                control.delete(f"{_LOCK_PREFIX}{db}")
    except redis.ConnectionError as exc:
        raise ServiceUnavailable(f"Redis is not answering at {base_url}: {exc}") from exc
    finally:
        control.close()


@contextmanager
def fresh_postgres_db(base_url: str | None = None) -> Iterator[str]:
    """Create an empty PostgreSQL database, yield its URL, and drop it afterwards."""
    import psycopg

    base_url = base_url or os.environ.get("AIPOWERTOOLS_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    if not _port_open(base_url, 5432):
        raise ServiceUnavailable(f"PostgreSQL is not answering at {base_url}")
    name = f"aipt_test_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        admin = psycopg.connect(base_url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        raise ServiceUnavailable(f"PostgreSQL is not answering at {base_url}: {exc}") from exc
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield urlunsplit(urlsplit(base_url)._replace(path=f"/{name}"))
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

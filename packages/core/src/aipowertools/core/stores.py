"""Store URLs, the data directory, and shared Redis / PostgreSQL connection pools.

Every stateful component (ledger, budgets, rate limits, circuit state, sessions, logs) takes a
store URL. One environment variable, ``AIPOWERTOOLS_STORE``, sets the default for all of them:

=====================================  =======================================================
URL                                    backend
=====================================  =======================================================
``memory://``                          in this process only
``sqlite:///abs/path.db``              embedded SQLite file (``sqlite://rel/path.db`` relative)
``diskcache:///abs/dir``               embedded diskcache directory
``redis://[:pw@]host:6379/0``          Redis (``rediss://`` for TLS)
``postgresql://user:pw@host/db``       PostgreSQL (``postgres://`` accepted)
``s3://bucket/prefix``                 S3 (archives only)
=====================================  =======================================================

``{data_dir}`` inside a URL is replaced by :func:`data_dir`. Connection pools are created once
per URL and process and shared by every component; errors name the URL with its password
masked.

Example:
    >>> from aipowertools.core.stores import parse_store_url
    >>> parse_store_url("redis://:secret@localhost:6379/0", default="memory://").masked()
    'redis://:***@localhost:6379/0'
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import difflib
import os
import re
import threading
import weakref
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast
from urllib.parse import urlsplit

from aipowertools.core._errors import (
    ConfigurationError,
    StoreUnavailableError,
    StoreURLError,
    mask_url,
)

if TYPE_CHECKING:
    import psycopg_pool
    import redis
    import redis.asyncio

__all__ = [
    "StoreURL",
    "async_postgres_pool",
    "async_redis_client",
    "data_dir",
    "parse_store_url",
    "postgres_pool",
    "redis_budget_problems",
    "redis_client",
]

Scheme = Literal["memory", "sqlite", "diskcache", "redis", "postgresql", "s3"]

_SCHEMES: dict[str, Scheme] = {
    "memory": "memory",
    "sqlite": "sqlite",
    "diskcache": "diskcache",
    "redis": "redis",
    "rediss": "redis",
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "postgresql+psycopg": "postgresql",
    "s3": "s3",
}
_WINDOWS_DRIVE = re.compile(r"^/[A-Za-z]:[/\\]")


def data_dir() -> Path:
    """The directory for embedded stores: ``AIPOWERTOOLS_HOME``, else the user data directory.

    The platform's user data directory comes from platformdirs (``~/.local/share/aipowertools``
    on Linux). The directory is created if missing.

    Returns:
        The absolute path of the data directory.
    """
    home = os.environ.get("AIPOWERTOOLS_HOME", "").strip()
    if home:
        path = Path(home).expanduser()
    else:
        import platformdirs

        path = platformdirs.user_data_path("aipowertools", appauthor=False)
    path = path.resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass(frozen=True)
class StoreURL:
    """A parsed, validated store URL.

    Attributes:
        scheme: The backend: ``memory``, ``sqlite``, ``diskcache``, ``redis``, ``postgresql``
            or ``s3`` (aliases such as ``postgres`` and ``rediss`` are normalised).
        raw: The URL to connect with (``{data_dir}`` expanded, ``postgres://`` normalised).
        path: The file or directory of an embedded store (``sqlite``, ``diskcache``), else
            ``None``.

    Example:
        >>> url = parse_store_url("sqlite:////tmp/ledger.db", default="memory://")
        >>> (url.scheme, str(url.path))
        ('sqlite', '/tmp/ledger.db')
    """

    scheme: Scheme
    raw: str
    path: Path | None = None

    def masked(self) -> str:
        """The URL with its password replaced by ``***``, safe for logs and messages."""
        return mask_url(self.raw)

    @property
    def bucket(self) -> str | None:
        """The bucket of an ``s3://bucket/prefix`` URL, else ``None``."""
        return urlsplit(self.raw).netloc if self.scheme == "s3" else None

    @property
    def prefix(self) -> str:
        """The key prefix of an ``s3://bucket/prefix`` URL (``""`` when absent or not s3)."""
        return urlsplit(self.raw).path.strip("/") if self.scheme == "s3" else ""

    def __str__(self) -> str:
        return self.masked()

    def __repr__(self) -> str:
        path = f", path={self.path!r}" if self.path is not None else ""
        return f"StoreURL(scheme={self.scheme!r}, raw={self.masked()!r}{path})"


def parse_store_url(url: str | StoreURL | None, *, default: str) -> StoreURL:
    """Parse and validate a store URL.

    Args:
        url: The URL; ``None`` means the ``AIPOWERTOOLS_STORE`` environment variable, and if
            that is unset or empty, ``default``. A :class:`StoreURL` is returned unchanged.
        default: The URL to use when neither is given, e.g.
            ``"sqlite:///{data_dir}/ledger.db"``.

    Returns:
        The parsed URL.

    Raises:
        StoreURLError: The URL is empty, has an unknown scheme, or lacks a needed part.
    """
    if isinstance(url, StoreURL):
        return url
    if url is None:
        url = os.environ.get("AIPOWERTOOLS_STORE", "").strip() or default
    if not isinstance(url, str):
        raise StoreURLError(
            repr(url),
            f"a store URL is a string such as 'sqlite:///path/ledger.db', not a "
            f"{type(url).__name__}",
        )
    text = url.strip()
    if "{data_dir}" in text:
        text = text.replace("{data_dir}", str(data_dir()))
    if not text:
        raise StoreURLError(url, "the URL is empty; use e.g. sqlite:///path/ledger.db or memory://")
    scheme_text, sep, rest = text.partition("://")
    if not sep:
        raise StoreURLError(text, f"no scheme; expected one of {_scheme_list()}")
    scheme = _SCHEMES.get(scheme_text.lower())
    if scheme is None:
        close = difflib.get_close_matches(scheme_text.lower(), list(_SCHEMES), n=1)
        hint = f" (did you mean {close[0]}://?)" if close else ""
        raise StoreURLError(text, f"unknown scheme {scheme_text!r}{hint}; use {_scheme_list()}")
    if scheme in ("sqlite", "diskcache"):
        return StoreURL(scheme, text, _file_path(text, rest))
    if scheme == "memory":
        return StoreURL("memory", text)
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - urlsplit validates the port lazily
    except ValueError as exc:
        raise StoreURLError(text, f"cannot parse it: {exc}") from exc
    if scheme == "postgresql":
        return StoreURL("postgresql", "postgresql://" + rest)
    if not parts.netloc:
        what = "bucket" if scheme == "s3" else "host"
        raise StoreURLError(text, f"no {what}; e.g. {_EXAMPLES[scheme]}")
    if scheme == "redis":
        db = parts.path.strip("/")
        if db and not db.isdigit():
            raise StoreURLError(text, f"the database {db!r} must be a number, e.g. redis://host/0")
    return StoreURL(scheme, text)


_EXAMPLES = {"redis": "redis://localhost:6379/0", "s3": "s3://my-bucket/prefix"}


def _scheme_list() -> str:
    return "memory://, sqlite:///path, diskcache:///path, redis://, postgresql://, s3://"


def _file_path(text: str, rest: str) -> Path:
    location, _, _query = rest.partition("?")
    if location.strip("/") == ":memory:":  # sqlite:///:memory:, SQLite's in-memory database
        return Path(":memory:")
    if location.startswith("/"):
        # sqlite:///abs/path and sqlite:////abs/path both mean /abs/path
        location = "/" + location.lstrip("/")
        if _WINDOWS_DRIVE.match(location):
            location = location[1:]
    if location in ("", "/"):
        raise StoreURLError(text, "no path; e.g. sqlite:///{data_dir}/ledger.db")
    return Path(location).expanduser()


# --------------------------------------------------------------------------- shared pools

_lock = threading.Lock()
_redis_clients: dict[str, Any] = {}
_async_redis_clients: dict[str, weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any]] = {}
_pg_pools: dict[str, Any] = {}
_async_pg_pools: dict[str, weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any]] = {}
_classes: dict[str, Any] = {}


def _url_of(url: str | StoreURL, scheme: Scheme) -> StoreURL:
    parsed = parse_store_url(url, default="memory://")
    if parsed.scheme != scheme:
        raise StoreURLError(parsed.raw, f"expected a {scheme}:// URL, got {parsed.scheme}://")
    return parsed


def _redis_classes() -> tuple[type[Any], type[Any], type[Exception]]:
    """Redis client classes whose connection failures are typed StoreUnavailableError."""
    with _lock:
        if "redis" not in _classes:
            import redis
            import redis.asyncio

            class RedisStoreUnavailableError(StoreUnavailableError, redis.ConnectionError):
                """Redis did not answer (also a ``redis.ConnectionError``)."""

            failures = (redis.ConnectionError, redis.TimeoutError)

            class SharedRedis(redis.Redis):  # type: ignore[type-arg]
                def execute_command(self, *args: Any, **options: Any) -> Any:
                    try:
                        return super().execute_command(*args, **options)
                    except failures as exc:
                        if isinstance(exc, StoreUnavailableError):
                            raise
                        url = getattr(self, "aipowertools_url", "redis://")
                        raise RedisStoreUnavailableError(url, str(exc)) from exc

            class SharedAsyncRedis(redis.asyncio.Redis):  # type: ignore[type-arg]
                async def execute_command(self, *args: Any, **options: Any) -> Any:
                    try:
                        return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
                    except failures as exc:
                        if isinstance(exc, StoreUnavailableError):
                            raise
                        url = getattr(self, "aipowertools_url", "redis://")
                        raise RedisStoreUnavailableError(url, str(exc)) from exc

            _classes["redis"] = (SharedRedis, SharedAsyncRedis, RedisStoreUnavailableError)
        return cast("tuple[type[Any], type[Any], type[Exception]]", _classes["redis"])


_REDIS_OPTIONS: dict[str, Any] = {
    "socket_connect_timeout": 5.0,
    # A frozen server (SIGSTOP, a stalled network) must not hang a caller for ever.
    "socket_timeout": 5.0,
    "socket_keepalive": True,
    "health_check_interval": 30,
}


def redis_client(url: str | StoreURL) -> redis.Redis[bytes]:
    """The process-wide shared Redis client for ``url`` (created on first call).

    The client connects lazily, replies with ``bytes``, and raises
    :class:`~aipowertools.core.errors.StoreUnavailableError` (also a
    ``redis.ConnectionError``) naming the masked URL when the server does not answer.

    Args:
        url: A ``redis://`` or ``rediss://`` URL.

    Returns:
        A ``redis.Redis`` client shared by every caller with the same URL.

    Raises:
        StoreURLError: The URL is not a valid Redis URL.
    """
    parsed = _url_of(url, "redis")
    client = _redis_clients.get(parsed.raw)
    if client is None:
        sync_cls, _, _ = _redis_classes()
        with _lock:
            client = _redis_clients.get(parsed.raw)
            if client is None:
                client = sync_cls.from_url(parsed.raw, **_REDIS_OPTIONS)
                client.aipowertools_url = parsed.raw
                _redis_clients[parsed.raw] = client
    return cast("redis.Redis[bytes]", client)


def async_redis_client(url: str | StoreURL) -> redis.asyncio.Redis[bytes]:
    """The shared ``redis.asyncio`` client for ``url`` and the running event loop.

    redis.asyncio clients are bound to the loop they first run on, so there is one per URL
    and loop; it goes away with its loop. Failures are typed as in :func:`redis_client`.

    Args:
        url: A ``redis://`` or ``rediss://`` URL.

    Returns:
        A ``redis.asyncio.Redis`` client for the current loop.

    Raises:
        StoreURLError: The URL is not a valid Redis URL.
        ConfigurationError: Called outside a running event loop.
    """
    parsed = _url_of(url, "redis")
    loop = _running_loop("async_redis_client")
    _, async_cls, _ = _redis_classes()
    with _lock:
        per_loop = _async_redis_clients.setdefault(parsed.raw, weakref.WeakKeyDictionary())
        client = per_loop.get(loop)
        if client is None:
            client = async_cls.from_url(parsed.raw, **_REDIS_OPTIONS)
            client.aipowertools_url = parsed.raw
            per_loop[loop] = client
    return cast("redis.asyncio.Redis[bytes]", client)


def _running_loop(name: str) -> asyncio.AbstractEventLoop:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        raise ConfigurationError(
            f"{name}() needs a running event loop; call it from async code"
        ) from None


_PG_OPTIONS: dict[str, Any] = {"min_size": 1, "max_size": 10}
_PG_OPEN_TIMEOUT = 5.0
#: Default bound (seconds) on any one PostgreSQL round trip and on waiting for a pooled
#: connection; ``AIPOWERTOOLS_STORE_TIMEOUT_S`` overrides it (read when a pool is created).
PG_TIMEOUT_S = 30.0
# TCP keepalives and a TCP user timeout: a peer that vanished (network partition, host down)
# is noticed in seconds, not after the kernel's two hours.
_PG_KWARGS: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 3,
    "keepalives_count": 3,
}


def pg_timeout_s() -> float:
    """The bound on one PostgreSQL round trip: ``AIPOWERTOOLS_STORE_TIMEOUT_S`` or 30 s."""
    text = os.environ.get("AIPOWERTOOLS_STORE_TIMEOUT_S", "").strip()
    if not text:
        return PG_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (value > 0 and value < float("inf")):
        raise ConfigurationError(
            f"AIPOWERTOOLS_STORE_TIMEOUT_S must be a number of seconds > 0, got {text!r}"
        )
    return value


def _pg_pool_options(raw: str) -> dict[str, Any]:
    """Pool arguments: bounded waits on the connection, the server and the pool."""
    timeout = pg_timeout_s()
    kwargs = dict(_PG_KWARGS, tcp_user_timeout=int(timeout * 1000))
    if "options=" not in raw:  # the URL's own server options win
        kwargs["options"] = f"-c statement_timeout={int(timeout * 1000)}"
    return {**_PG_OPTIONS, "timeout": timeout, "kwargs": kwargs}


def _pg_connection_failure(exc: BaseException) -> bool:
    """Whether a psycopg error means the server is unreachable, gone or too slow.

    Connection exceptions (SQLSTATE class 08), operator intervention (57: shutdown, crash,
    statement timeout), errors without a SQLSTATE (the socket broke) and a client-side wait
    timeout; not the errors of a query the server answered (constraint, serialization, ...).
    """
    import psycopg

    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = getattr(exc, "sqlstate", None)
    return state is None or state.startswith(("08", "57"))


def _pg_classes() -> tuple[type[Any], type[Any], type[Exception]]:
    """Pool classes whose 'no connection' failures are typed StoreUnavailableError."""
    with _lock:
        if "pg" not in _classes:
            import psycopg
            import psycopg_pool
            from psycopg.errors import _WaitTimeout

            class PostgresStoreUnavailableError(StoreUnavailableError, psycopg_pool.PoolTimeout):
                """PostgreSQL did not answer (also a ``psycopg_pool.PoolTimeout``)."""

            failures = (psycopg_pool.PoolTimeout, psycopg.OperationalError)

            def typed(url: str, exc: BaseException) -> Exception:
                if isinstance(exc, _WaitTimeout):
                    return PostgresStoreUnavailableError(
                        url, f"no answer within {pg_timeout_s():g} s (connection closed)"
                    )
                return PostgresStoreUnavailableError(url, _pg_reason(exc))  # type: ignore[arg-type]

            class BoundedConnection(psycopg.Connection):
                """A connection whose every round trip waits at most the store timeout."""

                aipowertools_timeout = PG_TIMEOUT_S

                def wait(
                    self, gen: Any, interval: float = 0.1, timeout: float | None = None
                ) -> Any:
                    try:
                        return super().wait(
                            gen, interval=interval, timeout=timeout or self.aipowertools_timeout
                        )
                    except _WaitTimeout:
                        self.pgconn.finish()  # mid-query: unusable, the pool replaces it
                        raise

            class BoundedAsyncConnection(psycopg.AsyncConnection):
                """Async form of ``BoundedConnection``."""

                aipowertools_timeout = PG_TIMEOUT_S

                async def wait(
                    self, gen: Any, interval: float = 0.1, timeout: float | None = None
                ) -> Any:
                    try:
                        return await super().wait(
                            gen, interval=interval, timeout=timeout or self.aipowertools_timeout
                        )
                    except _WaitTimeout:
                        self.pgconn.finish()
                        raise

            class SharedPool(psycopg_pool.ConnectionPool):
                aipowertools_url = "postgresql://"

                def getconn(self, timeout: float | None = None) -> Any:
                    try:
                        conn: Any = super().getconn(timeout)
                    except failures as exc:
                        if isinstance(exc, StoreUnavailableError):
                            raise
                        raise PostgresStoreUnavailableError(
                            self.aipowertools_url, str(exc)
                        ) from exc
                    conn.aipowertools_timeout = self.timeout
                    return conn

                @contextlib.contextmanager
                def connection(self, timeout: float | None = None) -> Iterator[Any]:
                    try:
                        with super().connection(timeout) as conn:
                            yield conn
                    except psycopg.OperationalError as exc:
                        if isinstance(exc, StoreUnavailableError) or not _pg_connection_failure(
                            exc
                        ):
                            raise
                        with contextlib.suppress(Exception):
                            self.check()  # after a restart the idle connections are dead too
                        raise typed(self.aipowertools_url, exc) from exc

            class SharedAsyncPool(psycopg_pool.AsyncConnectionPool):
                aipowertools_url = "postgresql://"

                async def getconn(self, timeout: float | None = None) -> Any:
                    try:
                        conn: Any = await super().getconn(timeout)
                    except failures as exc:
                        if isinstance(exc, StoreUnavailableError):
                            raise
                        raise PostgresStoreUnavailableError(
                            self.aipowertools_url, str(exc)
                        ) from exc
                    conn.aipowertools_timeout = self.timeout
                    return conn

                @contextlib.asynccontextmanager
                async def connection(self, timeout: float | None = None) -> AsyncIterator[Any]:
                    try:
                        async with super().connection(timeout) as conn:
                            yield conn
                    except psycopg.OperationalError as exc:
                        if isinstance(exc, StoreUnavailableError) or not _pg_connection_failure(
                            exc
                        ):
                            raise
                        with contextlib.suppress(Exception):
                            await self.check()
                        raise typed(self.aipowertools_url, exc) from exc

            _classes["pg"] = (SharedPool, SharedAsyncPool, PostgresStoreUnavailableError)
            _classes["pg_conn"] = (BoundedConnection, BoundedAsyncConnection)
        return cast("tuple[type[Any], type[Any], type[Exception]]", _classes["pg"])


def postgres_pool(url: str | StoreURL) -> psycopg_pool.ConnectionPool[Any]:
    """The process-wide shared psycopg connection pool for ``url``, opened on first call.

    The pool keeps 1 to 10 connections. Use it as ``with pool.connection() as conn: ...``.

    Args:
        url: A ``postgresql://`` (or ``postgres://``) URL.

    Returns:
        An open ``psycopg_pool.ConnectionPool`` shared by every caller with the same URL.

    Raises:
        StoreURLError: The URL is not a PostgreSQL URL.
        StoreUnavailableError: The server did not answer within 5 s (URL masked); also a
            ``psycopg_pool.PoolTimeout``.
    """
    parsed = _url_of(url, "postgresql")
    pool = _pg_pools.get(parsed.raw)
    if pool is not None:
        return cast("psycopg_pool.ConnectionPool[Any]", pool)
    sync_cls, _, unavailable = _pg_classes()
    with _lock:
        pool = _pg_pools.get(parsed.raw)
        if pool is None:
            import psycopg

            try:  # one direct connection first: fails fast, with the server's own reason
                psycopg.connect(parsed.raw, connect_timeout=int(_PG_OPEN_TIMEOUT)).close()
            except psycopg.Error as exc:
                raise unavailable(parsed.raw, _pg_reason(exc)) from exc
            pool = sync_cls(
                parsed.raw,
                open=False,
                name="aipowertools",
                connection_class=_classes["pg_conn"][0],
                **_pg_pool_options(parsed.raw),
            )
            pool.aipowertools_url = parsed.raw
            try:
                pool.open(wait=True, timeout=_PG_OPEN_TIMEOUT)
            except Exception as exc:  # pragma: no cover - the server vanished just now
                pool.close()
                raise unavailable(parsed.raw, f"no connection within {_PG_OPEN_TIMEOUT} s") from exc
            _pg_pools[parsed.raw] = pool
    return cast("psycopg_pool.ConnectionPool[Any]", pool)


def _pg_reason(exc: Exception) -> str:
    # psycopg repeats the connection string (with password) in some messages: mask it
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = "; ".join(lines) or type(exc).__name__
    return mask_url(text)


def _close_all() -> None:
    """Close shared sync clients and pools (at interpreter exit, and between tests)."""
    with _lock:
        pools, clients = list(_pg_pools.values()), list(_redis_clients.values())
        _pg_pools.clear()
        _redis_clients.clear()
        _async_redis_clients.clear()
        _async_pg_pools.clear()
    for pool in pools:
        with contextlib.suppress(Exception):
            pool.close(timeout=1.0)
    for client in clients:
        with contextlib.suppress(Exception):
            client.close()


atexit.register(_close_all)


async def async_postgres_pool(url: str | StoreURL) -> psycopg_pool.AsyncConnectionPool[Any]:
    """The shared, opened ``AsyncConnectionPool`` for ``url`` and the running event loop.

    Async pools belong to the loop that opened them, so there is one per URL and loop.
    Use it as ``async with pool.connection() as conn: ...``.

    Args:
        url: A ``postgresql://`` (or ``postgres://``) URL.

    Returns:
        An open ``psycopg_pool.AsyncConnectionPool``.

    Raises:
        StoreURLError: The URL is not a PostgreSQL URL.
        StoreUnavailableError: The server did not answer within 5 s (URL masked).
        ConfigurationError: Called outside a running event loop.
    """
    parsed = _url_of(url, "postgresql")
    loop = _running_loop("async_postgres_pool")
    _, async_cls, unavailable = _pg_classes()
    per_loop = _async_pg_pools.setdefault(parsed.raw, weakref.WeakKeyDictionary())
    pool = per_loop.get(loop)
    if pool is None:
        import psycopg

        try:  # one direct connection first: fails fast, with the server's own reason
            probe = await psycopg.AsyncConnection.connect(
                parsed.raw, connect_timeout=int(_PG_OPEN_TIMEOUT)
            )
            await probe.close()
        except psycopg.Error as exc:
            raise unavailable(parsed.raw, _pg_reason(exc)) from exc
        pool = async_cls(
            parsed.raw,
            open=False,
            name="aipowertools",
            connection_class=_classes["pg_conn"][1],
            **_pg_pool_options(parsed.raw),
        )
        pool.aipowertools_url = parsed.raw
        try:
            await pool.open(wait=True, timeout=_PG_OPEN_TIMEOUT)
        except Exception as exc:  # pragma: no cover - the server vanished just now
            await pool.close()
            raise unavailable(parsed.raw, f"no connection within {_PG_OPEN_TIMEOUT} s") from exc
        existing = per_loop.get(loop)  # another task of this loop may have won the race
        if existing is not None:
            await pool.close()
            pool = existing
        else:
            per_loop[loop] = pool
    return cast("psycopg_pool.AsyncConnectionPool[Any]", pool)


def redis_budget_problems(url: str | StoreURL) -> list[str]:
    """What is wrong with a Redis for holding budgets and limiter windows (empty: nothing).

    A budget store must keep its data across a restart (AOF, or RDB snapshots at least) and
    never evict it (``maxmemory-policy noeviction``); without persistence a restarted Redis
    forgets every reservation and window, and spend goes past the limit. ``aipowertools
    doctor`` prints these.

    Args:
        url: A ``redis://`` or ``rediss://`` URL.

    Returns:
        One sentence per problem.

    Raises:
        StoreUnavailableError: Redis did not answer.
    """
    client = redis_client(url)
    try:
        config = client.config_get("appendonly", "save", "maxmemory-policy")
    except StoreUnavailableError:
        raise
    except Exception as exc:  # CONFIG disabled (managed Redis): say so, do not guess
        return [f"cannot read the Redis configuration ({exc}); check persistence by hand"]
    values = {
        (k.decode() if isinstance(k, bytes) else str(k)): (
            v.decode() if isinstance(v, bytes) else str(v)
        )
        for k, v in config.items()
    }
    problems = []
    if values.get("appendonly") != "yes" and not values.get("save", "").strip():
        problems.append(
            "persistence is off (appendonly no, no save points): a restart forgets budgets "
            "and limiter windows; set appendonly yes (appendfsync everysec or always)"
        )
    policy = values.get("maxmemory-policy", "noeviction")
    if policy != "noeviction":
        problems.append(
            f"maxmemory-policy is {policy}: Redis may evict budget keys under memory pressure; "
            "set maxmemory-policy noeviction"
        )
    return problems

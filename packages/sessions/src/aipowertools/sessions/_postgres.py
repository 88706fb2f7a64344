"""The PostgreSQL backend (``postgresql://``): a row per value, a row per list item.

The schema is created on first use and versioned in ``aipt_sessions_migrations``; migrations
run under a transaction-level advisory lock so concurrent first users do not race. A list
append is one statement inserting one row per item, numbered by a sequence.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
import threading
import time
from collections.abc import AsyncIterator, Generator, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, asynccontextmanager, contextmanager
from typing import Any, TypeVar

from aipowertools.sessions._backend import ABSENT, Versioned, conflict
from aipowertools.sessions._errors import SessionLockError

_MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE aipt_sessions (
            ns text NOT NULL, sid text NOT NULL,
            expires_at double precision,
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (ns, sid));
        CREATE INDEX aipt_sessions_expiry ON aipt_sessions (ns, expires_at);
        CREATE TABLE aipt_session_values (
            ns text NOT NULL, sid text NOT NULL, key text NOT NULL,
            version bigint NOT NULL, data bytea NOT NULL,
            PRIMARY KEY (ns, sid, key));
        CREATE TABLE aipt_session_lists (
            ns text NOT NULL, sid text NOT NULL, key text NOT NULL,
            head bigint NOT NULL DEFAULT 0, tail bigint NOT NULL DEFAULT 0,
            PRIMARY KEY (ns, sid, key));
        CREATE TABLE aipt_session_items (
            ns text NOT NULL, sid text NOT NULL, key text NOT NULL,
            seq bigint NOT NULL, data bytea NOT NULL,
            PRIMARY KEY (ns, sid, key, seq));
        """,
    ),
    (
        # v2: item numbers from one sequence instead of a per-list counter row, so an append
        # is a single-row insert (no counter update). Numbers continue above every v1 number.
        2,
        """
        CREATE SEQUENCE aipt_session_items_seq AS bigint OWNED BY aipt_session_items.seq;
        SELECT setval('aipt_session_items_seq',
                      (SELECT coalesce(max(seq), 0) + 1 FROM aipt_session_items), false);
        ALTER TABLE aipt_session_items
            ALTER COLUMN seq SET DEFAULT nextval('aipt_session_items_seq');
        """,
    ),
]
_MIGRATION_LOCK = 0x41495054  # "AIPT"

# A session whose row says it expired is invisible to every read.
_LIVE = (
    "NOT EXISTS (SELECT 1 FROM aipt_sessions s WHERE s.ns = %(ns)s AND s.sid = %(sid)s "
    "AND s.expires_at <= extract(epoch FROM clock_timestamp()))"
)

# One statement: name the list (a no-op once it exists) and insert the items, numbered in
# order by the sequence. A later append always gets larger numbers than any append that
# committed before it started, so lists keep the order appends were acknowledged in.
_LIST = (
    "WITH l AS (INSERT INTO aipt_session_lists (ns, sid, key) "
    "VALUES (%(ns)s, %(sid)s, %(key)s) ON CONFLICT (ns, sid, key) DO NOTHING) "
)
_APPEND_ONE = (
    _LIST + "INSERT INTO aipt_session_items (ns, sid, key, data) "
    "VALUES (%(ns)s, %(sid)s, %(key)s, %(data)s)"
)
_APPEND_MANY = (
    _LIST + "INSERT INTO aipt_session_items (ns, sid, key, data) "
    "SELECT %(ns)s, %(sid)s, %(key)s, t.data "
    "FROM unnest(%(items)s::bytea[]) WITH ORDINALITY AS t(data, ord) ORDER BY t.ord"
)


_GET = (
    "SELECT data, version FROM aipt_session_values WHERE ns = %(ns)s AND sid = %(sid)s "
    f"AND key = %(key)s AND {_LIVE}"
)
_SET_ANY = (
    "INSERT INTO aipt_session_values AS v (ns, sid, key, version, data) "
    "VALUES (%(ns)s, %(sid)s, %(key)s, 1, %(data)s) ON CONFLICT (ns, sid, key) "
    "DO UPDATE SET version = v.version + 1, data = EXCLUDED.data RETURNING version"
)
_SET_NEW = (
    "INSERT INTO aipt_session_values (ns, sid, key, version, data) "
    "VALUES (%(ns)s, %(sid)s, %(key)s, 1, %(data)s) "
    "ON CONFLICT (ns, sid, key) DO NOTHING RETURNING version"
)
_SET_IF = (
    "UPDATE aipt_session_values SET version = version + 1, data = %(data)s "
    "WHERE ns = %(ns)s AND sid = %(sid)s AND key = %(key)s "
    "AND version = %(expected)s RETURNING version"
)
_LENGTH = (
    "SELECT count(*) FROM aipt_session_items "
    f"WHERE ns = %(ns)s AND sid = %(sid)s AND key = %(key)s AND {_LIVE}"
)
_READ = (
    "SELECT data FROM aipt_session_items WHERE ns = %(ns)s AND sid = %(sid)s "
    f"AND key = %(key)s AND {_LIVE} ORDER BY seq OFFSET %(start)s LIMIT %(limit)s"
)
# The newest items walk the primary key backwards and stop after ``n`` rows: no count, no
# offset, so the work does not grow with the list's length.
_TAIL = (
    "SELECT data FROM (SELECT data, seq FROM aipt_session_items WHERE ns = %(ns)s "
    f"AND sid = %(sid)s AND key = %(key)s AND {_LIVE} ORDER BY seq DESC LIMIT %(n)s) t "
    "ORDER BY seq"
)
_TRIM = (
    "WITH gone AS (DELETE FROM aipt_session_items WHERE ns = %(ns)s AND sid = %(sid)s "
    "AND key = %(key)s AND seq < (SELECT seq FROM aipt_session_items "
    "WHERE ns = %(ns)s AND sid = %(sid)s AND key = %(key)s "
    "ORDER BY seq DESC OFFSET %(skip)s LIMIT 1) RETURNING 1) SELECT count(*) FROM gone"
)
_TOUCH = (
    "INSERT INTO aipt_sessions (ns, sid, expires_at) VALUES (%(ns)s, %(sid)s, %(exp)s) "
    "ON CONFLICT (ns, sid) DO UPDATE SET expires_at = EXCLUDED.expires_at"
)
_DROP = "-- drop the session --"  # a plan step the runners carry out with drop()

_T = TypeVar("_T")
_Plan = Generator[tuple[str, dict[str, Any]], list[Any], _T]


def migrate(conn: Any, *, target: int | None = None) -> int:
    """Bring the schema up to ``target`` (default: the latest) on ``conn``; returns the version."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS aipt_sessions_migrations ("
            "version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        row = conn.execute(
            "SELECT coalesce(max(version), 0) FROM aipt_sessions_migrations"
        ).fetchone()
        current = int(row[0])
        for version, sql in _MIGRATIONS:
            if current < version <= (target or version):
                conn.execute(sql)
                conn.execute(
                    "INSERT INTO aipt_sessions_migrations (version) VALUES (%s)", (version,)
                )
                current = version
    return current


async def amigrate(conn: Any) -> int:
    """Async :func:`migrate` (to the latest version)."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS aipt_sessions_migrations ("
            "version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        cur = await conn.execute("SELECT coalesce(max(version), 0) FROM aipt_sessions_migrations")
        row = await cur.fetchone()
        current = int(row[0])
        for version, sql in _MIGRATIONS:
            if version > current:
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO aipt_sessions_migrations (version) VALUES (%s)", (version,)
                )
                current = version
    return current


def lock_key(ns: str, sid: str, name: str) -> int:
    """The advisory-lock id of a session lock: a 64-bit BLAKE2b of its full name.

    64 bits (not a 32-bit CRC): forging an id whose lock collides with another tenant's
    takes about 2**64 tries, and chance collisions stay negligible with millions of locks.
    """
    digest = hashlib.blake2b(
        f"{ns}/{sid}/{name}".encode(), digest_size=8, person=b"aipt-sess-lock"
    ).digest()
    return int.from_bytes(digest, "big", signed=True)


class PostgresBackend:
    """Sessions in PostgreSQL, on the shared pool of ``aipowertools.core.stores.postgres_pool``."""

    def __init__(self, url: str, *, pool: Any = None) -> None:
        if pool is None:
            from aipowertools.core.stores import postgres_pool

            pool = postgres_pool(url)
        self._pool = pool
        self.url = url
        self._ready = False
        self._ready_lock = threading.Lock()

    @contextmanager
    def _conn(self) -> Iterator[Any]:
        with self._pool.connection() as conn:
            if not self._ready:
                with self._ready_lock:
                    if not self._ready:
                        migrate(conn)
                        self._ready = True
            previous = conn.autocommit
            if not previous and conn.info.transaction_status == 0:  # idle: safe to switch
                conn.autocommit = True
            try:
                yield conn
            finally:
                if conn.autocommit != previous:
                    conn.autocommit = previous

    def _q(self, sql: str, params: dict[str, Any]) -> list[Any]:
        with self._conn() as conn:
            cur = conn.execute(sql, params)
            return list(cur.fetchall()) if cur.description else []

    # Single-statement operations are written once as plans (generators of statements) and run
    # by a sync runner on the pool or by an async runner on the async pool.

    def _run(self, plan: _Plan[_T]) -> _T:
        try:
            sql, params = next(plan)
            while True:
                if sql is _DROP:
                    self.drop(params["ns"], params["sid"])
                    sql, params = plan.send([])
                else:
                    sql, params = plan.send(self._q(sql, params))
        except StopIteration as done:
            result: _T = done.value
            return result

    async def _arun(self, plan: _Plan[_T]) -> _T:
        try:
            sql, params = next(plan)
            while True:
                if sql is _DROP:
                    await asyncio.to_thread(self.drop, params["ns"], params["sid"])
                    sql, params = plan.send([])
                else:
                    sql, params = plan.send(await self._aq(sql, params))
        except StopIteration as done:
            result: _T = done.value
            return result

    @asynccontextmanager
    async def _aconn(self) -> AsyncIterator[Any]:
        from aipowertools.core.stores import async_postgres_pool

        pool = await async_postgres_pool(self.url)
        async with pool.connection() as conn:
            if not self._ready:
                await amigrate(conn)
                self._ready = True
            previous = conn.autocommit
            if not previous and conn.info.transaction_status == 0:  # idle: safe to switch
                await conn.set_autocommit(True)
            try:
                yield conn
            finally:
                if conn.autocommit != previous:
                    await conn.set_autocommit(previous)

    async def _aq(self, sql: str, params: dict[str, Any]) -> list[Any]:
        async with self._aconn() as conn:
            cur = await conn.execute(sql, params)
            return list(await cur.fetchall()) if cur.description else []

    @staticmethod
    def _p_get(ns: str, sid: str, key: str) -> _Plan[Versioned | None]:
        rows = yield _GET, {"ns": ns, "sid": sid, "key": key}
        return Versioned(bytes(rows[0][0]), int(rows[0][1])) if rows else None

    def get(self, ns: str, sid: str, key: str) -> Versioned | None:
        return self._run(self._p_get(ns, sid, key))

    async def aget(self, ns: str, sid: str, key: str) -> Versioned | None:
        """Async :meth:`get`."""
        return await self._arun(self._p_get(ns, sid, key))

    def get_values(self, ns: str, sid: str) -> dict[str, Versioned]:
        rows = self._q(
            "SELECT key, data, version FROM aipt_session_values "
            f"WHERE ns = %(ns)s AND sid = %(sid)s AND {_LIVE}",
            {"ns": ns, "sid": sid},
        )
        return {k: Versioned(bytes(d), int(v)) for k, d, v in rows}

    def _p_set(self, ns: str, sid: str, key: str, data: bytes, expected: int | None) -> _Plan[int]:
        p = {"ns": ns, "sid": sid, "key": key, "data": data, "expected": expected}
        sql = _SET_ANY if expected is None else _SET_NEW if expected == ABSENT else _SET_IF
        rows = yield sql, p
        if rows:
            return int(rows[0][0])
        current = yield _GET, p
        raise conflict(sid, key, expected, int(current[0][1]) if current else ABSENT)

    def set(self, ns: str, sid: str, key: str, data: bytes, expected: int | None) -> int:
        return self._run(self._p_set(ns, sid, key, data, expected))

    async def aset(self, ns: str, sid: str, key: str, data: bytes, expected: int | None) -> int:
        """Async :meth:`set`."""
        return await self._arun(self._p_set(ns, sid, key, data, expected))

    def delete(self, ns: str, sid: str, key: str) -> None:
        p = {"ns": ns, "sid": sid, "key": key}
        with self._conn() as conn, conn.transaction():
            for table in ("aipt_session_values", "aipt_session_lists", "aipt_session_items"):
                conn.execute(
                    f"DELETE FROM {table} WHERE ns = %(ns)s AND sid = %(sid)s AND key = %(key)s", p
                )

    @staticmethod
    def _p_append(ns: str, sid: str, key: str, items: Sequence[bytes]) -> _Plan[int]:
        p: dict[str, Any] = {"ns": ns, "sid": sid, "key": key}
        if len(items) == 1:
            yield _APPEND_ONE, {**p, "data": items[0]}
        else:
            yield _APPEND_MANY, {**p, "items": list(items)}
        return -1  # counting costs a scan; the Session asks only when it has a size limit

    def append(self, ns: str, sid: str, key: str, items: Sequence[bytes]) -> int:
        return self._run(self._p_append(ns, sid, key, items))

    async def aappend(self, ns: str, sid: str, key: str, items: Sequence[bytes]) -> int:
        """Async :meth:`append`."""
        return await self._arun(self._p_append(ns, sid, key, items))

    @staticmethod
    def _p_length(ns: str, sid: str, key: str) -> _Plan[int]:
        rows = yield _LENGTH, {"ns": ns, "sid": sid, "key": key}
        return int(rows[0][0])

    def length(self, ns: str, sid: str, key: str) -> int:
        return self._run(self._p_length(ns, sid, key))

    async def alength(self, ns: str, sid: str, key: str) -> int:
        """Async :meth:`length`."""
        return await self._arun(self._p_length(ns, sid, key))

    @staticmethod
    def _p_read(ns: str, sid: str, key: str, start: int, stop: int) -> _Plan[list[bytes]]:
        if stop <= start:
            return []
        params = {"ns": ns, "sid": sid, "key": key, "start": start, "limit": stop - start}
        rows = yield _READ, params
        return [bytes(r[0]) for r in rows]

    def read(self, ns: str, sid: str, key: str, start: int, stop: int) -> list[bytes]:
        return self._run(self._p_read(ns, sid, key, start, stop))

    async def aread(self, ns: str, sid: str, key: str, start: int, stop: int) -> list[bytes]:
        """Async :meth:`read`."""
        return await self._arun(self._p_read(ns, sid, key, start, stop))

    @staticmethod
    def _p_read_tail(ns: str, sid: str, key: str, count: int) -> _Plan[list[bytes]]:
        if count <= 0:
            return []
        rows = yield _TAIL, {"ns": ns, "sid": sid, "key": key, "n": count}
        return [bytes(r[0]) for r in rows]

    def read_tail(self, ns: str, sid: str, key: str, count: int) -> list[bytes]:
        return self._run(self._p_read_tail(ns, sid, key, count))

    async def aread_tail(self, ns: str, sid: str, key: str, count: int) -> list[bytes]:
        """Async :meth:`read_tail`."""
        return await self._arun(self._p_read_tail(ns, sid, key, count))

    @staticmethod
    def _p_trim(ns: str, sid: str, key: str, keep_last: int) -> _Plan[int]:
        rows = yield _TRIM, {"ns": ns, "sid": sid, "key": key, "skip": keep_last - 1}
        return int(rows[0][0])

    def trim(self, ns: str, sid: str, key: str, keep_last: int) -> int:
        return self._run(self._p_trim(ns, sid, key, keep_last))

    async def atrim(self, ns: str, sid: str, key: str, keep_last: int) -> int:
        """Async :meth:`trim`."""
        return await self._arun(self._p_trim(ns, sid, key, keep_last))

    def keys(self, ns: str, sid: str) -> list[str]:
        rows = self._q(
            "SELECT key FROM aipt_session_values WHERE ns = %(ns)s AND sid = %(sid)s "
            "UNION SELECT key FROM aipt_session_lists l WHERE ns = %(ns)s AND sid = %(sid)s "
            "AND EXISTS (SELECT 1 FROM aipt_session_items i WHERE i.ns = l.ns "
            f"AND i.sid = l.sid AND i.key = l.key) AND {_LIVE}",
            {"ns": ns, "sid": sid},
        )
        if rows and not self._alive(ns, sid):
            return []
        return sorted(r[0] for r in rows)

    def _alive(self, ns: str, sid: str) -> bool:
        return bool(self._q(f"SELECT {_LIVE}", {"ns": ns, "sid": sid})[0][0])

    @staticmethod
    def _p_touch(ns: str, sid: str, ttl: float | None) -> _Plan[None]:
        p = {"ns": ns, "sid": sid, "exp": None if ttl is None else time.time() + ttl}
        alive = yield f"SELECT {_LIVE}", p
        if not alive[0][0]:  # an expired session's data goes before it is renewed
            yield _DROP, p
        yield _TOUCH, p

    def touch(self, ns: str, sid: str, ttl: float | None) -> None:
        self._run(self._p_touch(ns, sid, ttl))

    async def atouch(self, ns: str, sid: str, ttl: float | None) -> None:
        """Async :meth:`touch`."""
        await self._arun(self._p_touch(ns, sid, ttl))

    def sessions(self, ns: str) -> list[str]:
        rows = self._q(
            "SELECT sid FROM aipt_sessions WHERE ns = %(ns)s AND (expires_at IS NULL "
            "OR expires_at > extract(epoch FROM clock_timestamp())) ORDER BY sid",
            {"ns": ns},
        )
        return [r[0] for r in rows]

    def drop(self, ns: str, sid: str) -> None:
        with self._conn() as conn, conn.transaction():
            for table in (
                "aipt_session_values",
                "aipt_session_lists",
                "aipt_session_items",
                "aipt_sessions",
            ):
                conn.execute(
                    f"DELETE FROM {table} WHERE ns = %(ns)s AND sid = %(sid)s",
                    {"ns": ns, "sid": sid},
                )

    def cleanup(self, ns: str) -> int:
        rows = self._q(
            "SELECT sid FROM aipt_sessions WHERE ns = %(ns)s "
            "AND expires_at <= extract(epoch FROM clock_timestamp())",
            {"ns": ns},
        )
        for (sid,) in rows:
            self.drop(ns, sid)
        return len(rows)

    def lock(
        self, ns: str, sid: str, name: str, timeout: float, ttl: float
    ) -> AbstractContextManager[None]:
        # An advisory lock lives as long as the connection: a crashed holder releases it.
        lock_id = lock_key(ns, sid, name)

        @contextmanager
        def _cm() -> Iterator[None]:
            deadline = time.monotonic() + timeout
            delay = 0.002
            while True:
                # A waiter holds a pooled connection only while it asks, never while it sleeps:
                # the holder (and everyone else) must still get connections to work with.
                stack = ExitStack()
                conn = stack.enter_context(self._conn())
                try:
                    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (lock_id,)).fetchone()
                except BaseException:
                    stack.__exit__(*sys.exc_info())
                    raise
                if row[0]:
                    break
                stack.close()
                if time.monotonic() >= deadline:
                    raise SessionLockError(sid, name, timeout)
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
            with stack:
                try:
                    yield
                finally:
                    conn.execute("SELECT pg_advisory_unlock(%s)", (lock_id,))

        return _cm()

    def close(self) -> None:
        """The pool is shared (owned by aipowertools.core.stores); nothing to release."""

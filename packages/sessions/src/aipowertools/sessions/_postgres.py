"""The PostgreSQL backend (``postgresql://``): a row per value, a row per list item.

The schema is created on first use and versioned in ``aipt_sessions_migrations``; migrations
run under a transaction-level advisory lock so concurrent first users do not race. A list
append is one statement inserting one row per item, numbered by a sequence.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

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

    def get(self, ns: str, sid: str, key: str) -> Versioned | None:
        rows = self._q(
            "SELECT data, version FROM aipt_session_values WHERE ns = %(ns)s AND sid = %(sid)s "
            f"AND key = %(key)s AND {_LIVE}",
            {"ns": ns, "sid": sid, "key": key},
        )
        return Versioned(bytes(rows[0][0]), int(rows[0][1])) if rows else None

    def get_values(self, ns: str, sid: str) -> dict[str, Versioned]:
        rows = self._q(
            "SELECT key, data, version FROM aipt_session_values "
            f"WHERE ns = %(ns)s AND sid = %(sid)s AND {_LIVE}",
            {"ns": ns, "sid": sid},
        )
        return {k: Versioned(bytes(d), int(v)) for k, d, v in rows}

    def set(self, ns: str, sid: str, key: str, data: bytes, expected: int | None) -> int:
        p = {"ns": ns, "sid": sid, "key": key, "data": data, "expected": expected}
        if expected is None:
            rows = self._q(
                "INSERT INTO aipt_session_values AS v (ns, sid, key, version, data) "
                "VALUES (%(ns)s, %(sid)s, %(key)s, 1, %(data)s) ON CONFLICT (ns, sid, key) "
                "DO UPDATE SET version = v.version + 1, data = EXCLUDED.data RETURNING version",
                p,
            )
            return int(rows[0][0])
        if expected == ABSENT:
            rows = self._q(
                "INSERT INTO aipt_session_values (ns, sid, key, version, data) "
                "VALUES (%(ns)s, %(sid)s, %(key)s, 1, %(data)s) "
                "ON CONFLICT (ns, sid, key) DO NOTHING RETURNING version",
                p,
            )
        else:
            rows = self._q(
                "UPDATE aipt_session_values SET version = version + 1, data = %(data)s "
                "WHERE ns = %(ns)s AND sid = %(sid)s AND key = %(key)s "
                "AND version = %(expected)s RETURNING version",
                p,
            )
        if rows:
            return int(rows[0][0])
        current = self.get(ns, sid, key)
        raise conflict(sid, key, expected, current.version if current else ABSENT)

    def delete(self, ns: str, sid: str, key: str) -> None:
        p = {"ns": ns, "sid": sid, "key": key}
        with self._conn() as conn, conn.transaction():
            for table in ("aipt_session_values", "aipt_session_lists", "aipt_session_items"):
                conn.execute(
                    f"DELETE FROM {table} WHERE ns = %(ns)s AND sid = %(sid)s AND key = %(key)s", p
                )

    def append(self, ns: str, sid: str, key: str, items: Sequence[bytes]) -> int:
        p: dict[str, Any] = {"ns": ns, "sid": sid, "key": key}
        if len(items) == 1:
            self._q(_APPEND_ONE, {**p, "data": items[0]})
        else:
            self._q(_APPEND_MANY, {**p, "items": list(items)})
        return -1  # counting costs a scan; the Session asks only when it has a size limit

    def length(self, ns: str, sid: str, key: str) -> int:
        rows = self._q(
            "SELECT count(*) FROM aipt_session_items "
            f"WHERE ns = %(ns)s AND sid = %(sid)s AND key = %(key)s AND {_LIVE}",
            {"ns": ns, "sid": sid, "key": key},
        )
        return int(rows[0][0])

    def read(self, ns: str, sid: str, key: str, start: int, stop: int) -> list[bytes]:
        if stop <= start:
            return []
        rows = self._q(
            "SELECT data FROM aipt_session_items WHERE ns = %(ns)s AND sid = %(sid)s "
            f"AND key = %(key)s AND {_LIVE} ORDER BY seq OFFSET %(start)s LIMIT %(limit)s",
            {"ns": ns, "sid": sid, "key": key, "start": start, "limit": stop - start},
        )
        return [bytes(r[0]) for r in rows]

    def trim(self, ns: str, sid: str, key: str, keep_last: int) -> int:
        with self._conn() as conn:
            cur = conn.execute(
                "DELETE FROM aipt_session_items WHERE ns = %(ns)s AND sid = %(sid)s "
                "AND key = %(key)s AND seq < (SELECT seq FROM aipt_session_items "
                "WHERE ns = %(ns)s AND sid = %(sid)s AND key = %(key)s "
                "ORDER BY seq DESC OFFSET %(skip)s LIMIT 1)",
                {"ns": ns, "sid": sid, "key": key, "skip": keep_last - 1},
            )
            return int(cur.rowcount)

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

    def touch(self, ns: str, sid: str, ttl: float | None) -> None:
        if not self._alive(ns, sid):  # an expired session's data goes before it is renewed
            self.drop(ns, sid)
        self._q(
            "INSERT INTO aipt_sessions (ns, sid, expires_at) VALUES (%(ns)s, %(sid)s, %(exp)s) "
            "ON CONFLICT (ns, sid) DO UPDATE SET expires_at = EXCLUDED.expires_at",
            {"ns": ns, "sid": sid, "exp": None if ttl is None else time.time() + ttl},
        )

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
        lock_id = zlib.crc32(f"{ns}/{sid}/{name}".encode()) | (0x5E55 << 32)

        @contextmanager
        def _cm() -> Iterator[None]:
            with self._conn() as conn:
                deadline = time.monotonic() + timeout
                delay = 0.002
                while not conn.execute("SELECT pg_try_advisory_lock(%s)", (lock_id,)).fetchone()[0]:
                    if time.monotonic() >= deadline:
                        raise SessionLockError(sid, name, timeout)
                    time.sleep(delay)
                    delay = min(delay * 2, 0.05)
                try:
                    yield
                finally:
                    conn.execute("SELECT pg_advisory_unlock(%s)", (lock_id,))

        return _cm()

    def close(self) -> None:
        """The pool is shared (owned by aipowertools.core.stores); nothing to release."""

"""PostgreSQL backend: one table per cache namespace, a lookup is one primary-key read.

Table ``aipt_cache_<namespace>`` holds ``key`` (primary key), the entry bytes, its expiry, and
for semantic caches its partition and float32 embedding (index on ``partition``). Expired rows
are deleted every ``CLEANUP_EVERY`` writes of a process and by :meth:`PostgresBackend.cleanup`.
Single-flight locks are rows of ``aipt_cache_<namespace>_locks`` taken with one upsert.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

CLEANUP_EVERY = 200


class PostgresBackend:
    """Entries in PostgreSQL, shared by every process and machine that uses the URL."""

    def __init__(self, url: str, namespace: str) -> None:
        from aipowertools.core.stores import postgres_pool

        self.url = url
        self._pool: Any = postgres_pool(url)
        self._t = f"aipt_cache_{namespace}"
        self._writes = 0
        self._ensure_schema()

    def _ensure_schema(self) -> None:
        t = self._t
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (t,))
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {t} (key TEXT PRIMARY KEY, blob BYTEA NOT NULL, "
                "expires_at DOUBLE PRECISION, partition_key TEXT, vector BYTEA)"
            )
            conn.execute(f"CREATE INDEX IF NOT EXISTS {t}_exp ON {t} (expires_at)")
            conn.execute(
                f"CREATE INDEX IF NOT EXISTS {t}_part ON {t} (partition_key) "
                "WHERE partition_key IS NOT NULL"
            )
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {t}_locks (key TEXT PRIMARY KEY, "
                "token TEXT NOT NULL, until DOUBLE PRECISION NOT NULL)"
            )

    def get(self, key: str) -> bytes | None:
        with self._pool.connection() as conn:
            row = conn.execute(
                f"SELECT blob FROM {self._t} WHERE key = %s "
                "AND (expires_at IS NULL OR expires_at > %s)",
                (key, time.time()),
            ).fetchone()
        return None if row is None else bytes(row[0])

    def put(
        self,
        key: str,
        blob: bytes,
        *,
        ttl: float | None,
        partition: str | None = None,
        vector: bytes | None = None,
    ) -> None:
        now = time.time()
        expires = None if ttl is None else now + ttl
        with self._pool.connection() as conn:
            conn.execute(
                f"INSERT INTO {self._t} (key, blob, expires_at, partition_key, vector) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (key) DO UPDATE SET "
                "blob = excluded.blob, expires_at = excluded.expires_at, "
                "partition_key = excluded.partition_key, vector = excluded.vector",
                (key, blob, expires, partition, vector),
            )
        self._writes += 1
        if self._writes % CLEANUP_EVERY == 0:
            self.cleanup()

    def cleanup(self) -> int:
        """Delete expired rows and stale locks; return how many entries went."""
        now = time.time()
        with self._pool.connection() as conn:
            gone = conn.execute(f"DELETE FROM {self._t} WHERE expires_at <= %s", (now,)).rowcount
            conn.execute(f"DELETE FROM {self._t}_locks WHERE until <= %s", (now,))
        return int(gone or 0)

    def delete(self, keys: Sequence[str]) -> int:
        if not keys:
            return 0
        with self._pool.connection() as conn:
            return int(
                conn.execute(f"DELETE FROM {self._t} WHERE key = ANY(%s)", (list(keys),)).rowcount
            )

    def items(self) -> Iterator[tuple[str, bytes]]:
        with self._pool.connection() as conn:
            rows = conn.execute(f"SELECT key, blob FROM {self._t}").fetchall()
        for key, blob in rows:
            yield key, bytes(blob)

    def clear(self) -> int:
        with self._pool.connection() as conn:
            return int(conn.execute(f"DELETE FROM {self._t}").rowcount)

    def vectors(self, partition: str) -> list[tuple[str, bytes]]:
        with self._pool.connection() as conn:
            rows = conn.execute(
                f"SELECT key, vector FROM {self._t} WHERE partition_key = %s "
                "AND vector IS NOT NULL AND (expires_at IS NULL OR expires_at > %s)",
                (partition, time.time()),
            ).fetchall()
        return [(k, bytes(v)) for k, v in rows]

    def drop_vector(self, partition: str, key: str) -> None:
        return None  # the vector lives and dies with its row

    def acquire(self, key: str, token: str, ttl: float) -> bool:
        now = time.time()
        t = self._t
        with self._pool.connection() as conn:
            row = conn.execute(
                f"INSERT INTO {t}_locks (key, token, until) VALUES (%s, %s, %s) "
                f"ON CONFLICT (key) DO UPDATE SET token = excluded.token, until = excluded.until "
                f"WHERE {t}_locks.until <= %s RETURNING key",
                (key, token, now + ttl, now),
            ).fetchone()
        return row is not None

    def release(self, key: str, token: str) -> None:
        with self._pool.connection() as conn:
            conn.execute(f"DELETE FROM {self._t}_locks WHERE key = %s AND token = %s", (key, token))

    def close(self) -> None:
        return None  # the pool is shared by the process

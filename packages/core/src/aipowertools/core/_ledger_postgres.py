"""PostgreSQL ledger backend: one database shared by many processes and machines.

Every transaction that changes buckets or reservations first takes a row lock
(``SELECT ... FOR UPDATE``) on the namespace's lock row, so reserve, settle and sweep run one
at a time per namespace and can never deadlock against each other; reads never wait.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from aipowertools.core._errors import StoreUnavailableError
from aipowertools.core._ledger import (
    Aggregate,
    Check,
    GroupBy,
    LedgerRecord,
    Query,
    ReserveResult,
    Threshold,
    WriteResult,
    record_buckets,
    to_nanos,
)
from aipowertools.core._ledger_sql import (
    INSERT_COLUMNS,
    SELECT_COLUMNS,
    aggregate_sql,
    aggregates,
    ledger_ddl,
    record_row,
    row_record,
    saved_usd_ddl,
    where,
)

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

_LOCK_KEY = "#lock"


class PostgresLedger:
    """Ledger, buckets and reservations in PostgreSQL tables ``aipt_<namespace>_*``."""

    def __init__(self, url: str, namespace: str = "default") -> None:
        from aipowertools.core.stores import postgres_pool

        self.url = url
        self._t = f"aipt_{namespace}"
        self._pool: ConnectionPool[Any] = postgres_pool(url)
        self._ensure_schema()

    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection[Any]]:
        import psycopg

        try:
            with self._pool.connection() as conn:
                yield conn
        except psycopg.OperationalError as exc:  # the server went away mid-transaction
            raise StoreUnavailableError(self.url, str(exc)) from exc

    @contextmanager
    def _tx(self, durable: bool = True) -> Iterator[psycopg.Cursor[Any]]:
        with self._conn() as conn, conn.transaction(), conn.cursor() as cur:
            if not durable:
                # Holds are short-lived: a server crash losing the last one only returns its
                # budget early, so their commits skip the WAL flush (about 4 ms on a disk).
                cur.execute("SET LOCAL synchronous_commit = off")
            cur.execute(f"SELECT 1 FROM {self._t}_buckets WHERE key = %s FOR UPDATE", (_LOCK_KEY,))
            yield cur

    def _ensure_schema(self) -> None:
        t = self._t
        with self._conn() as conn, conn.transaction():
            # Concurrent CREATE TABLE IF NOT EXISTS can race on the catalog: serialize it.
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (t,))
            for ddl in ledger_ddl(f"{t}_ledger", "DOUBLE PRECISION", "BIGINT"):
                conn.execute(ddl)
            # a ledger written before cache savings existed gains the column
            conn.execute(
                saved_usd_ddl(f"{t}_ledger", "DOUBLE PRECISION").replace(
                    "ADD COLUMN", "ADD COLUMN IF NOT EXISTS"
                )
            )
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {t}_buckets (key TEXT PRIMARY KEY, "
                "spent BIGINT NOT NULL DEFAULT 0, reserved BIGINT NOT NULL DEFAULT 0)"
            )
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {t}_holds (id TEXT PRIMARY KEY, "
                "amount BIGINT NOT NULL, buckets TEXT[] NOT NULL, "
                "expires_at DOUBLE PRECISION NOT NULL)"
            )
            conn.execute(f"CREATE INDEX IF NOT EXISTS {t}_holds_exp ON {t}_holds (expires_at)")
            conn.execute(
                f"INSERT INTO {t}_buckets (key) VALUES (%s) ON CONFLICT DO NOTHING", (_LOCK_KEY,)
            )

    def _drop(self, cur: psycopg.Cursor[Any], reservation_id: str) -> bool:
        t = self._t
        cur.execute(
            f"DELETE FROM {t}_holds WHERE id = %s RETURNING amount, buckets", (reservation_id,)
        )
        row = cur.fetchone()
        if row is None:
            return False
        cur.execute(
            f"UPDATE {t}_buckets SET reserved = reserved - %s WHERE key = ANY(%s)",
            (row[0], row[1]),
        )
        return True

    def _sweep(self, cur: psycopg.Cursor[Any], now: float) -> int:
        cur.execute(f"SELECT id FROM {self._t}_holds WHERE expires_at < %s", (now,))
        ids = [r[0] for r in cur.fetchall()]
        for rid in ids:
            self._drop(cur, rid)
        return len(ids)

    def write(
        self,
        record: LedgerRecord,
        *,
        reservation_id: str | None = None,
        thresholds: Sequence[Threshold] = (),
    ) -> WriteResult:
        t = self._t
        marks = ", ".join(["%s"] * len(INSERT_COLUMNS.split(", ")))
        with self._tx() as cur:
            if reservation_id is not None:
                self._drop(cur, reservation_id)
            cur.execute(
                f"INSERT INTO {t}_ledger ({INSERT_COLUMNS}) VALUES ({marks}) "
                "ON CONFLICT (request_id) DO NOTHING",
                record_row(record),
            )
            if cur.rowcount != 1:
                return WriteResult(inserted=False)
            cost = to_nanos(record.cost_usd)
            keys = record_buckets(record)
            cur.execute(
                f"INSERT INTO {t}_buckets (key, spent) SELECT unnest(%s::text[]), %s "
                "ON CONFLICT (key) DO UPDATE SET spent = "
                f"{t}_buckets.spent + excluded.spent RETURNING key, spent",
                (keys, cost),
            )
            after = {row[0]: int(row[1]) for row in cur.fetchall()}
            crossed = tuple(
                th
                for th in thresholds
                if th.bucket in after and after[th.bucket] - cost < th.nanos <= after[th.bucket]
            )
            return WriteResult(inserted=True, crossed=crossed)

    def reserve(
        self,
        reservation_id: str,
        amount_nanos: int,
        buckets: Sequence[str],
        checks: Sequence[Check],
        *,
        expires_at: float,
        now: float,
        optimistic: bool = False,
    ) -> ReserveResult:
        t = self._t
        if checks and optimistic:
            # Refuse without the lock when one snapshot already shows no room (and no hold
            # has expired: those still sit in the counters until swept under the lock).
            with self._conn() as conn, conn.transaction(), conn.cursor() as cur:
                cur.execute(f"SELECT MIN(expires_at) FROM {t}_holds")
                oldest = cur.fetchone()
                if oldest is None or oldest[0] is None or oldest[0] >= now:
                    refused = self._refusal(cur, amount_nanos, checks)
                    if refused is not None:
                        return refused
        with self._tx(durable=False) as cur:
            self._sweep(cur, now)
            refused = self._refusal(cur, amount_nanos, checks) if checks else None
            if refused is not None:
                return refused
            cur.execute(
                f"INSERT INTO {t}_holds (id, amount, buckets, expires_at) VALUES (%s, %s, %s, %s)",
                (reservation_id, amount_nanos, list(buckets), expires_at),
            )
            cur.execute(
                f"INSERT INTO {t}_buckets (key, reserved) SELECT unnest(%s::text[]), %s "
                f"ON CONFLICT (key) DO UPDATE SET reserved = {t}_buckets.reserved + "
                "excluded.reserved",
                (list(buckets), amount_nanos),
            )
            return ReserveResult(True)

    def _refusal(
        self, cur: psycopg.Cursor[Any], amount: int, checks: Sequence[Check]
    ) -> ReserveResult | None:
        cur.execute(
            f"SELECT key, spent, reserved FROM {self._t}_buckets WHERE key = ANY(%s)",
            ([c.bucket for c in checks],),
        )
        state = {row[0]: (int(row[1]), int(row[2])) for row in cur.fetchall()}
        for c in checks:
            spent, reserved = state.get(c.bucket, (0, 0))
            if spent + reserved + amount > c.limit_nanos:
                return ReserveResult(False, c, spent, reserved)
        return None

    def release(self, reservation_id: str) -> bool:
        with self._tx(durable=False) as cur:
            return self._drop(cur, reservation_id)

    def sweep(self, now: float) -> int:
        with self._tx(durable=False) as cur:
            return self._sweep(cur, now)

    def buckets(self, keys: Sequence[str], now: float) -> dict[str, tuple[int, int]]:
        t = self._t
        with self._conn() as conn:
            oldest = conn.execute(f"SELECT MIN(expires_at) FROM {t}_holds").fetchone()
        if oldest is not None and oldest[0] is not None and oldest[0] < now:
            self.sweep(now)  # only then take the lock: readers never queue behind writers
        with self._conn() as conn:
            rows = conn.execute(
                f"SELECT key, spent, reserved FROM {t}_buckets WHERE key = ANY(%s)", (list(keys),)
            ).fetchall()
        found = {row[0]: (int(row[1]), int(row[2])) for row in rows}
        return {k: found.get(k, (0, 0)) for k in keys}

    def aggregate(self, query: Query, by: GroupBy | None) -> list[Aggregate]:
        sql, params = aggregate_sql(f"{self._t}_ledger", query, by, "%s")
        with self._conn() as conn:
            rows = conn.execute(sql, params).fetchall()
        return aggregates(rows, by)

    def records(self, query: Query) -> Iterator[LedgerRecord]:
        clause, params = where(query, "%s")
        sql = f"SELECT {SELECT_COLUMNS} FROM {self._t}_ledger{clause} ORDER BY ts, request_id"
        with self._conn() as conn:
            rows = conn.execute(sql, params).fetchall()
        return (row_record(r) for r in rows)

    def get(self, request_id: str) -> LedgerRecord | None:
        sql = f"SELECT {SELECT_COLUMNS} FROM {self._t}_ledger WHERE request_id = %s"
        with self._conn() as conn:
            row = conn.execute(sql, (request_id,)).fetchone()
        return None if row is None else row_record(row)

    def close(self) -> None:
        # The pool is shared per URL by aipowertools.core.stores; it outlives this backend.
        return None

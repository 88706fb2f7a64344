"""SQLite ledger backend: the embedded default, safe across processes sharing one file.

Every change runs in a ``BEGIN IMMEDIATE`` transaction, which takes SQLite's write lock up
front: two processes can never both read a bucket below its limit and both reserve. WAL mode
keeps readers unblocked and commits cheap (``synchronous=NORMAL``: a power cut may lose the
last commits, never corrupt the file).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

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

_BUSY_TIMEOUT_MS = 30_000


class SQLiteLedger:
    """Ledger, buckets and reservations in one SQLite file (WAL mode)."""

    def __init__(self, path: str | Path, namespace: str = "default") -> None:
        self.path = Path(path)
        self._t = f"aipt_{namespace}"
        self._lock = threading.Lock()
        self._pid = -1
        self._conn: sqlite3.Connection | None = None
        self._connect()

    def _connect(self) -> sqlite3.Connection:
        # A forked child must not share its parent's connection: reopen per process.
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path,
                timeout=_BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            t = self._t
            conn.execute("BEGIN IMMEDIATE")
            for ddl in ledger_ddl(f"{t}_ledger", "REAL", "INTEGER"):
                conn.execute(ddl)
            columns = {row[1] for row in conn.execute(f"PRAGMA table_info({t}_ledger)")}
            if "saved_usd" not in columns:  # a ledger written before cache savings existed
                conn.execute(saved_usd_ddl(f"{t}_ledger", "REAL"))
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {t}_buckets (key TEXT PRIMARY KEY, "
                "spent INTEGER NOT NULL DEFAULT 0, reserved INTEGER NOT NULL DEFAULT 0)"
            )
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {t}_holds (id TEXT PRIMARY KEY, "
                "amount INTEGER NOT NULL, buckets TEXT NOT NULL, expires_at REAL NOT NULL)"
            )
            conn.execute(f"CREATE INDEX IF NOT EXISTS {t}_holds_exp ON {t}_holds (expires_at)")
            conn.execute("COMMIT")
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailableError(f"sqlite:///{self.path}", str(exc)) from exc
        self._conn = conn
        self._pid = os.getpid()
        return conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._connect()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _drop(self, conn: sqlite3.Connection, reservation_id: str) -> bool:
        t = self._t
        row = conn.execute(
            f"DELETE FROM {t}_holds WHERE id = ? RETURNING amount, buckets", (reservation_id,)
        ).fetchone()
        if row is None:
            return False
        amount, buckets = row
        conn.executemany(
            f"UPDATE {t}_buckets SET reserved = reserved - ? WHERE key = ?",
            [(amount, b) for b in json.loads(buckets)],
        )
        return True

    def _sweep(self, conn: sqlite3.Connection, now: float) -> int:
        ids = [
            r[0]
            for r in conn.execute(
                f"SELECT id FROM {self._t}_holds WHERE expires_at < ?", (now,)
            ).fetchall()
        ]
        for rid in ids:
            self._drop(conn, rid)
        return len(ids)

    def write(
        self,
        record: LedgerRecord,
        *,
        reservation_id: str | None = None,
        thresholds: Sequence[Threshold] = (),
    ) -> WriteResult:
        t = self._t
        marks = ", ".join("?" * len(INSERT_COLUMNS.split(", ")))
        with self._tx() as conn:
            if reservation_id is not None:
                self._drop(conn, reservation_id)
            cur = conn.execute(
                f"INSERT OR IGNORE INTO {t}_ledger ({INSERT_COLUMNS}) VALUES ({marks})",
                record_row(record),
            )
            if cur.rowcount != 1:
                return WriteResult(inserted=False)
            cost = to_nanos(record.cost_usd)
            before = {th.bucket: self._spent(conn, th.bucket) for th in thresholds}
            conn.executemany(
                f"INSERT INTO {t}_buckets (key, spent) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET spent = spent + excluded.spent",
                [(b, cost) for b in record_buckets(record)],
            )
            crossed = tuple(
                th
                for th in thresholds
                if before[th.bucket] < th.nanos <= self._spent(conn, th.bucket)
            )
            return WriteResult(inserted=True, crossed=crossed)

    def _spent(self, conn: sqlite3.Connection, bucket: str) -> int:
        row = conn.execute(f"SELECT spent FROM {self._t}_buckets WHERE key = ?", (bucket,))
        found = row.fetchone()
        return int(found[0]) if found else 0

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
        refused = self._precheck(amount_nanos, checks, now) if optimistic else None
        if refused is not None:
            return refused
        with self._tx() as conn:
            self._sweep(conn, now)
            for c in checks:
                found = conn.execute(
                    f"SELECT spent, reserved FROM {t}_buckets WHERE key = ?", (c.bucket,)
                ).fetchone()
                spent, reserved = (int(found[0]), int(found[1])) if found else (0, 0)
                if spent + reserved + amount_nanos > c.limit_nanos:
                    return ReserveResult(False, c, spent, reserved)
            conn.execute(
                f"INSERT INTO {t}_holds (id, amount, buckets, expires_at) VALUES (?, ?, ?, ?)",
                (reservation_id, amount_nanos, json.dumps(list(buckets)), expires_at),
            )
            conn.executemany(
                f"INSERT INTO {t}_buckets (key, reserved) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET reserved = reserved + excluded.reserved",
                [(b, amount_nanos) for b in buckets],
            )
            return ReserveResult(True)

    def _precheck(self, amount: int, checks: Sequence[Check], now: float) -> ReserveResult | None:
        """Refuse without the write lock when a plain read already shows no room.

        Safe because a refusal is decided on one consistent snapshot (as if the transaction
        had run then); only when no hold has expired, since expired ones still sit in the
        counters until swept under the lock. Keeps waiting callers from queueing on the lock.
        """
        t = self._t
        with self._lock:
            conn = self._connect()
            conn.execute("BEGIN")
            try:
                oldest = conn.execute(f"SELECT MIN(expires_at) FROM {t}_holds").fetchone()[0]
                if oldest is not None and oldest < now:
                    return None
                for c in checks:
                    found = conn.execute(
                        f"SELECT spent, reserved FROM {t}_buckets WHERE key = ?", (c.bucket,)
                    ).fetchone()
                    spent, reserved = (int(found[0]), int(found[1])) if found else (0, 0)
                    if spent + reserved + amount > c.limit_nanos:
                        return ReserveResult(False, c, spent, reserved)
                return None
            finally:
                conn.execute("COMMIT")

    def release(self, reservation_id: str) -> bool:
        with self._tx() as conn:
            return self._drop(conn, reservation_id)

    def sweep(self, now: float) -> int:
        with self._tx() as conn:
            return self._sweep(conn, now)

    def buckets(self, keys: Sequence[str], now: float) -> dict[str, tuple[int, int]]:
        out = {k: (0, 0) for k in keys}
        t = self._t
        # A plain read unless a hold has expired (then sweep it under the write lock first):
        # remaining_usd() is read often (the router) and must not queue on the lock.
        with self._lock:
            conn = self._connect()
            oldest = conn.execute(f"SELECT MIN(expires_at) FROM {t}_holds").fetchone()[0]
        if oldest is not None and oldest < now:
            self.sweep(now)
        with self._lock:
            conn = self._connect()
            conn.execute("BEGIN")
            try:
                for k in keys:
                    found = conn.execute(
                        f"SELECT spent, reserved FROM {t}_buckets WHERE key = ?", (k,)
                    ).fetchone()
                    if found:
                        out[k] = (int(found[0]), int(found[1]))
            finally:
                conn.execute("COMMIT")
        return out

    def aggregate(self, query: Query, by: GroupBy | None) -> list[Aggregate]:
        sql, params = aggregate_sql(f"{self._t}_ledger", query, by, "?")
        with self._lock:
            rows = self._connect().execute(sql, params).fetchall()
        return aggregates(rows, by)

    def records(self, query: Query) -> Iterator[LedgerRecord]:
        clause, params = where(query, "?")
        sql = f"SELECT {SELECT_COLUMNS} FROM {self._t}_ledger{clause} ORDER BY ts, request_id"
        with self._lock:
            rows = self._connect().execute(sql, params).fetchall()
        return (row_record(r) for r in rows)

    def get(self, request_id: str) -> LedgerRecord | None:
        sql = f"SELECT {SELECT_COLUMNS} FROM {self._t}_ledger WHERE request_id = ?"
        with self._lock:
            row = self._connect().execute(sql, (request_id,)).fetchone()
        return None if row is None else row_record(row)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

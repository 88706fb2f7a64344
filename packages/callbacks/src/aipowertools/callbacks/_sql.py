"""Queryable sinks: SQLite (the embedded default) and PostgreSQL.

Both keep one row per event (time, type, kind, level, logger, trace id, JSON data) indexed by
``(event_type, ts)``, plus an ``audit`` table holding the hash chain. Field filters use JSON
expression indexes on SQLite (for the fields in ``indexed_fields``) and a GIN ``jsonb_path_ops``
index on PostgreSQL (for every field).
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import threading
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aipowertools.callbacks._audit import GENESIS, AuditReport, canonical, chain_hash, verify_rows
from aipowertools.callbacks._search import build_sql, ensure_sqlite_fts, postgres_fts_ddl
from aipowertools.callbacks._sinks import QueryableSink, dumps
from aipowertools.core.errors import ConfigurationError, StoreUnavailableError

DEFAULT_INDEXED_FIELDS = ("model", "provider", "user_id", "session_id", "deployment")
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,50}$")


def _check_field(name: str) -> str:
    if not _FIELD.match(name):
        raise ConfigurationError(
            f"cannot filter on field {name!r}: use letters, digits and '_', with '.' for "
            "nested keys (e.g. 'tags.model')"
        )
    return name


def _split(events: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    plain = [e for e in events if e.get("kind") != "audit"]
    audit = [e for e in events if e.get("kind") == "audit"]
    return plain, audit


def _row(event: dict[str, Any]) -> tuple[Any, ...]:
    return (
        float(event.get("ts", 0.0)),
        str(event.get("event", "")),
        str(event.get("kind", "log")),
        str(event.get("level", "info")),
        str(event.get("logger", "")),
        event.get("trace_id"),
        dumps(event),
    )


def _chain(
    audit: list[dict[str, Any]], seq: int, prev: str, key: bytes | None
) -> list[tuple[int, str, str, str, dict[str, Any]]]:
    out = []
    for event in audit:
        seq += 1
        payload = canonical(event)
        digest = chain_hash(prev, seq, payload, key)
        stored = {**event, "audit_seq": seq, "audit_hash": digest}
        out.append((seq, prev, digest, payload, stored))
        prev = digest
    return out


class SQLiteSink(QueryableSink):
    """Events in a SQLite file (WAL mode), indexed for queries by type, time and fields.

    Args:
        path: Database file, or ``":memory:"``.
        indexed_fields: Top-level fields that get an expression index for ``filters``.
        audit_key: Optional HMAC key for the audit chain.

    Example:
        >>> sink = SQLiteSink(":memory:")
        >>> sink.write([{"ts": 1.0, "event": "hello", "kind": "log", "model": "gpt-4o"}])
        >>> len(sink.query(event_type="hello", filters={"model": "gpt-4o"}))
        1
    """

    name = "sqlite"

    def __init__(
        self,
        path: str | Path,
        *,
        indexed_fields: Sequence[str] = DEFAULT_INDEXED_FIELDS,
        audit_key: bytes | None = None,
    ) -> None:
        self.path = str(path)
        self._indexed = tuple(_check_field(f) for f in indexed_fields)
        self._key = audit_key
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=30
            )
            if self.path != ":memory:":
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(
                """
                CREATE TABLE IF NOT EXISTS events (
                    id INTEGER PRIMARY KEY, ts REAL NOT NULL, event_type TEXT NOT NULL,
                    kind TEXT NOT NULL, level TEXT NOT NULL, logger TEXT NOT NULL,
                    trace_id TEXT, data TEXT NOT NULL);
                CREATE INDEX IF NOT EXISTS ix_events_type_ts ON events(event_type, ts);
                CREATE INDEX IF NOT EXISTS ix_events_ts ON events(ts);
                CREATE INDEX IF NOT EXISTS ix_events_trace ON events(trace_id);
                CREATE TABLE IF NOT EXISTS audit (
                    seq INTEGER PRIMARY KEY, ts REAL NOT NULL, event_type TEXT NOT NULL,
                    prev_hash TEXT NOT NULL, hash TEXT NOT NULL, payload TEXT NOT NULL);
                """
            )
            ensure_sqlite_fts(conn)
            for name in self._indexed:
                conn.execute(
                    f"CREATE INDEX IF NOT EXISTS ix_events_f_{name.replace('.', '_')} "
                    f"ON events(json_extract(data, '$.{name}'), ts)"
                )
            # Close the connection when the sink is collected without close() (Python 3.13+
            # warns about unclosed sqlite3 connections).
            weakref.finalize(self, conn.close)
            self._conn = conn
        return self._conn

    def write(self, events: Sequence[dict[str, Any]]) -> None:
        """Insert the events (and extend the audit chain) in one transaction."""
        plain, audit = _split(events)
        with self._lock:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                rows = [_row(e) for e in plain]
                if audit:
                    last = db.execute(
                        "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"
                    ).fetchone()
                    seq, prev = (last[0], last[1]) if last else (0, GENESIS)
                    chained = _chain(audit, seq, prev, self._key)
                    db.executemany(
                        "INSERT INTO audit(seq, ts, event_type, prev_hash, hash, payload) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        [
                            (s, float(e.get("ts", 0.0)), str(e.get("event", "")), p, h, pl)
                            for s, p, h, pl, e in chained
                        ],
                    )
                    rows.extend(_row(c[4]) for c in chained)
                db.executemany(
                    "INSERT INTO events(ts, event_type, kind, level, logger, trace_id, data) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def query(
        self,
        *,
        event_type: str | None = None,
        start: float | None = None,
        end: float | None = None,
        filters: dict[str, Any] | None = None,
        kind: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Return matching events, oldest first."""
        where: list[str] = []
        params: list[Any] = []
        if event_type is not None:
            where.append("event_type = ?")
            params.append(event_type)
        if kind is not None:
            where.append("kind = ?")
            params.append(kind)
        if start is not None:
            where.append("ts >= ?")
            params.append(start)
        if end is not None:
            where.append("ts <= ?")
            params.append(end)
        for name, value in (filters or {}).items():
            expr = f"json_extract(data, '$.{_check_field(name)}')"
            values = list(value) if isinstance(value, (list, tuple, set)) else [value]
            values = [_sqlite_value(v) for v in values]
            if len(values) == 1:
                where.append(f"{expr} = ?")
            else:
                where.append(f"{expr} IN ({', '.join('?' * len(values))})")
            params.extend(values)
        sql = "SELECT data FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY ts, id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._lock:
            rows = self._db().execute(sql, params).fetchall()
        return [json.loads(r[0]) for r in rows]

    def search(self, **criteria: Any) -> list[tuple[int, dict[str, Any]]]:
        """Events matching free text (FTS5), levels, type, time, fields, as ``(id, event)``.

        Takes the keyword arguments of :func:`aipowertools.callbacks._search.build_sql`.
        """
        sql, params = build_sql("sqlite", "events", field_check=_check_field, **criteria)
        with self._lock:
            rows = self._db().execute(sql, params).fetchall()
        return [(int(r[0]), json.loads(r[1])) for r in rows]

    def verify_audit(
        self, key: bytes | None = None, *, expected_head: str | None = None
    ) -> AuditReport:
        """Walk the audit chain in sequence order."""
        with self._lock:
            rows = (
                self._db()
                .execute("SELECT seq, prev_hash, hash, payload FROM audit ORDER BY seq")
                .fetchall()
            )
        return verify_rows(rows, key=key or self._key, expected_head=expected_head)

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (str, int, float)) or value is None:
        return value
    return dumps(value)


class PostgresSink(QueryableSink):
    """Events in PostgreSQL (``jsonb``), indexed by type and time, and by any field (GIN).

    The sink keeps its own connection (not the shared pool of ``aipowertools.core.stores``, so
    that a dead database fails its writes fast instead of waiting for a pool slot) and
    reconnects after a failure; while the database is away events wait in the logger's buffer.

    Args:
        url: ``postgresql://`` URL.
        table: Events table name (the audit chain goes to ``<table>_audit``).
        audit_key: Optional HMAC key for the audit chain.
        connect_timeout: Seconds to wait for a connection.
    """

    name = "postgresql"

    def __init__(
        self,
        url: str,
        *,
        table: str = "aipowertools_events",
        audit_key: bytes | None = None,
        connect_timeout: float = 3.0,
    ) -> None:
        if not _TABLE.match(table):
            raise ConfigurationError(
                f"table name {table!r} is not a plain identifier (letters, digits, '_')"
            )
        self.url = url
        self.table = table
        self._key = audit_key
        self._timeout = connect_timeout
        self._lock = threading.Lock()
        self._conn: Any = None

    def _masked(self) -> str:
        return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", self.url)

    def _db(self) -> Any:
        if self._conn is None or self._conn.closed:
            import psycopg

            conn = psycopg.connect(self.url, connect_timeout=max(1, int(self._timeout)))
            t = self.table
            with conn.transaction():
                conn.execute(f"SELECT pg_advisory_xact_lock(hashtext('{t}:schema'))")
                conn.execute(
                    f"""
                    CREATE TABLE IF NOT EXISTS {t} (
                        id BIGSERIAL PRIMARY KEY, ts DOUBLE PRECISION NOT NULL,
                        event_type TEXT NOT NULL, kind TEXT NOT NULL, level TEXT NOT NULL,
                        logger TEXT NOT NULL, trace_id TEXT, data JSONB NOT NULL);
                    CREATE INDEX IF NOT EXISTS {t}_type_ts ON {t}(event_type, ts);
                    CREATE INDEX IF NOT EXISTS {t}_ts ON {t}(ts);
                    CREATE INDEX IF NOT EXISTS {t}_data ON {t} USING GIN (data jsonb_path_ops);
                    CREATE TABLE IF NOT EXISTS {t}_audit (
                        seq BIGINT PRIMARY KEY, ts DOUBLE PRECISION NOT NULL,
                        event_type TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL,
                        payload TEXT NOT NULL);
                    """
                )
                conn.execute(postgres_fts_ddl(t))
            self._conn = conn
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # already broken
                self._conn.close()
            self._conn = None

    def write(self, events: Sequence[dict[str, Any]]) -> None:
        """Insert the events (and extend the audit chain) in one transaction."""
        plain, audit = _split(events)
        t = self.table
        with self._lock:
            try:
                db = self._db()
                with db.transaction(), db.cursor() as cur:
                    rows = [_row(e) for e in plain]
                    if audit:
                        cur.execute(f"SELECT pg_advisory_xact_lock(hashtext('{t}:audit'))")
                        cur.execute(f"SELECT seq, hash FROM {t}_audit ORDER BY seq DESC LIMIT 1")
                        last = cur.fetchone()
                        seq, prev = (int(last[0]), str(last[1])) if last else (0, GENESIS)
                        chained = _chain(audit, seq, prev, self._key)
                        cur.executemany(
                            f"INSERT INTO {t}_audit(seq, ts, event_type, prev_hash, hash, payload)"
                            " VALUES (%s, %s, %s, %s, %s, %s)",
                            [
                                (s, float(e.get("ts", 0.0)), str(e.get("event", "")), p, h, pl)
                                for s, p, h, pl, e in chained
                            ],
                        )
                        rows.extend(_row(c[4]) for c in chained)
                    cur.executemany(
                        f"INSERT INTO {t}(ts, event_type, kind, level, logger, trace_id, data) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb)",
                        rows,
                    )
            except Exception:
                self._drop_connection()
                raise

    def _fetch(self, sql: str, params: Sequence[Any]) -> list[Any]:
        with self._lock:
            try:
                db = self._db()
                with db.transaction():
                    return list(db.execute(sql, params).fetchall())
            except Exception as exc:
                self._drop_connection()
                import psycopg

                if isinstance(exc, psycopg.OperationalError):
                    raise StoreUnavailableError(self._masked(), str(exc)) from exc
                raise

    def query(
        self,
        *,
        event_type: str | None = None,
        start: float | None = None,
        end: float | None = None,
        filters: dict[str, Any] | None = None,
        kind: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Return matching events, oldest first."""
        where: list[str] = []
        params: list[Any] = []
        for column, value, op in (
            ("event_type", event_type, "="),
            ("kind", kind, "="),
            ("ts", start, ">="),
            ("ts", end, "<="),
        ):
            if value is not None:
                where.append(f"{column} {op} %s")
                params.append(value)
        for name, value in (filters or {}).items():
            values = list(value) if isinstance(value, (list, tuple, set)) else [value]
            alternatives = []
            for v in values:
                doc: Any = v
                for part in reversed(_check_field(name).split(".")):
                    doc = {part: doc}
                alternatives.append("data @> %s::jsonb")
                params.append(json.dumps(doc, default=str))
            where.append("(" + " OR ".join(alternatives) + ")")
        sql = f"SELECT data FROM {self.table}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY ts, id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [r[0] for r in self._fetch(sql, params)]

    def search(self, **criteria: Any) -> list[tuple[int, dict[str, Any]]]:
        """Events matching free text (a GIN tsvector index), levels, type, time, fields."""
        sql, params = build_sql("postgresql", self.table, field_check=_check_field, **criteria)
        return [(int(r[0]), r[1]) for r in self._fetch(sql, params)]

    def verify_audit(
        self, key: bytes | None = None, *, expected_head: str | None = None
    ) -> AuditReport:
        """Walk the audit chain in sequence order."""
        rows = self._fetch(
            f"SELECT seq, prev_hash, hash, payload FROM {self.table}_audit ORDER BY seq", ()
        )
        return verify_rows(
            [(int(r[0]), r[1], r[2], r[3]) for r in rows],
            key=key or self._key,
            expected_head=expected_head,
        )

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._drop_connection()

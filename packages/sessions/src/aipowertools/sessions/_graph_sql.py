"""Checkpoint and item storage on SQL: SQLite (embedded, ``diskcache://``/``memory://``) and
PostgreSQL (``postgresql://``). Framework-free: rows of opaque sealed bytes.

Tables (``{p}`` is the table prefix, ``aipt_lg`` by default)::

    {p}_threads      thread_id PK, expires_at        (a row only for threads with a TTL)
    {p}_checkpoints  (thread_id, ns, checkpoint_id) PK, parent_id, run_id, delta, record
    {p}_writes       (thread_id, ns, checkpoint_id, task_id, idx) PK, task_path, record
    {p}_items        (prefix, key) PK, record, created_at, updated_at, expires_at, ttl

The latest checkpoint of a thread and namespace, with its pending writes, is one statement that
walks the primary key backwards one row (``ORDER BY checkpoint_id DESC LIMIT 1``), so reading
it costs the same for a thread of 10 checkpoints or 10 million.

Every operation is written once as a *plan* (a generator of statements receiving each
statement's rows) and run by a sync runner (sqlite3, psycopg pool) or an async one (psycopg
async pool; SQLite runs the sync plan in a worker thread).
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import threading
import uuid
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from aipowertools.core.errors import ConfigurationError, StoreUnavailableError

_T = TypeVar("_T")
Plan = Generator[tuple[str, dict[str, Any]], list[Any], _T]

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")
_MIGRATION_LOCK = 0x4149504C  # "AIPL"


class StoredWrite(NamedTuple):
    """One pending write: ``record`` is sealed (channel, type, value)."""

    task_id: str
    idx: int
    task_path: str
    record: bytes


class StoredCheckpoint(NamedTuple):
    """A checkpoint as stored: ``record`` is sealed (checkpoint, metadata)."""

    thread_id: str
    ns: str
    checkpoint_id: str
    parent_id: str | None
    record: bytes
    writes: list[StoredWrite]


class StoredItem(NamedTuple):
    """A store item as stored; times are epoch seconds."""

    prefix: str
    key: str
    record: bytes
    created_at: float
    updated_at: float
    expires_at: float | None
    ttl: float | None


def check_prefix(prefix: str) -> str:
    """``prefix`` if it is a safe table/key prefix, else ConfigurationError naming it."""
    if not _IDENT.match(prefix):
        raise ConfigurationError(
            f"prefix={prefix!r} must be lowercase letters, digits and '_' (at most 41), "
            "starting with a letter or '_'"
        )
    return prefix


def _schema(p: str, blob: str, real: str, text_key: str) -> list[str]:
    return [
        f"CREATE TABLE IF NOT EXISTS {p}_threads ("
        f"thread_id {text_key} PRIMARY KEY, expires_at {real})",
        f"CREATE TABLE IF NOT EXISTS {p}_checkpoints ("
        f"thread_id {text_key} NOT NULL, ns {text_key} NOT NULL, "
        f"checkpoint_id {text_key} NOT NULL, parent_id TEXT, run_id TEXT, "
        f"delta INTEGER NOT NULL DEFAULT 0, record {blob} NOT NULL, "
        "PRIMARY KEY (thread_id, ns, checkpoint_id))",
        f"CREATE INDEX IF NOT EXISTS {p}_checkpoints_run ON {p}_checkpoints (run_id)",
        f"CREATE TABLE IF NOT EXISTS {p}_writes ("
        f"thread_id {text_key} NOT NULL, ns {text_key} NOT NULL, "
        f"checkpoint_id {text_key} NOT NULL, task_id {text_key} NOT NULL, "
        f"idx INTEGER NOT NULL, task_path TEXT NOT NULL, record {blob} NOT NULL, "
        "PRIMARY KEY (thread_id, ns, checkpoint_id, task_id, idx))",
        f"CREATE TABLE IF NOT EXISTS {p}_items ("
        f"prefix {text_key} NOT NULL, key {text_key} NOT NULL, record {blob} NOT NULL, "
        f"created_at {real} NOT NULL, updated_at {real} NOT NULL, expires_at {real}, "
        f"ttl {real}, PRIMARY KEY (prefix, key))",
        f"CREATE INDEX IF NOT EXISTS {p}_items_expiry ON {p}_items (expires_at)",
    ]


class GraphPlans:
    """The statements of every operation, for one table prefix."""

    def __init__(self, prefix: str) -> None:
        p = self.p = check_prefix(prefix)
        self.live = (
            f"NOT EXISTS (SELECT 1 FROM {p}_threads t WHERE t.thread_id = %(tid)s "
            "AND t.expires_at <= %(now)s)"
        )
        self.upsert_cp = (
            f"INSERT INTO {p}_checkpoints (thread_id, ns, checkpoint_id, parent_id, run_id, "
            "delta, record) VALUES (%(tid)s, %(ns)s, %(cid)s, %(parent)s, %(run)s, %(delta)s, "
            "%(record)s) ON CONFLICT (thread_id, ns, checkpoint_id) DO UPDATE SET "
            "parent_id = excluded.parent_id, run_id = excluded.run_id, delta = excluded.delta, "
            "record = excluded.record"
        )

    # -- checkpoints --------------------------------------------------------------------------

    def put(
        self,
        tid: str,
        ns: str,
        cid: str,
        parent: str | None,
        run_id: str | None,
        delta: bool,
        record: bytes,
        expires_at: float | None,
        now: float,
    ) -> Plan[None]:
        p = self.p
        args = {
            "tid": tid,
            "ns": ns,
            "cid": cid,
            "parent": parent,
            "run": run_id,
            "delta": int(delta),
            "record": record,
            "exp": expires_at,
            "now": now,
        }
        if expires_at is not None:
            # an expired thread's old checkpoints go before it is renewed
            gone = yield (
                (f"SELECT 1 FROM {p}_threads WHERE thread_id = %(tid)s AND expires_at <= %(now)s"),
                args,
            )
            if gone:
                yield from self._delete_threads([tid])
            yield (
                (
                    f"INSERT INTO {p}_threads (thread_id, expires_at) VALUES (%(tid)s, %(exp)s) "
                    "ON CONFLICT (thread_id) DO UPDATE SET expires_at = excluded.expires_at"
                ),
                args,
            )
        yield self.upsert_cp, args

    def put_writes(self, tid: str, ns: str, cid: str, writes: Sequence[StoredWrite]) -> Plan[None]:
        regular = [w for w in writes if w.idx >= 0]
        special = [w for w in writes if w.idx < 0]
        for rows, action in (
            (regular, "DO NOTHING"),
            (special, "DO UPDATE SET task_path = excluded.task_path, record = excluded.record"),
        ):
            if not rows:
                continue
            args: dict[str, Any] = {"tid": tid, "ns": ns, "cid": cid}
            values = []
            for i, w in enumerate(rows):
                args.update({f"t{i}": w.task_id, f"i{i}": w.idx, f"p{i}": w.task_path})
                args[f"r{i}"] = w.record
                values.append(f"(%(tid)s, %(ns)s, %(cid)s, %(t{i})s, %(i{i})s, %(p{i})s, %(r{i})s)")
            yield (
                (
                    f"INSERT INTO {self.p}_writes (thread_id, ns, checkpoint_id, task_id, idx, "
                    f"task_path, record) VALUES {', '.join(values)} ON CONFLICT "
                    f"(thread_id, ns, checkpoint_id, task_id, idx) {action}"
                ),
                args,
            )

    def get(self, tid: str, ns: str, cid: str | None, now: float) -> Plan[StoredCheckpoint | None]:
        p = self.p
        which = "AND k.checkpoint_id = %(cid)s " if cid else ""
        rows = yield (
            (
                f"WITH c AS (SELECT k.checkpoint_id, k.parent_id, k.record FROM {p}_checkpoints k "
                f"WHERE k.thread_id = %(tid)s AND k.ns = %(ns)s {which}AND {self.live} "
                "ORDER BY k.checkpoint_id DESC LIMIT 1) "
                "SELECT 0, c.checkpoint_id, c.parent_id, 0, c.record FROM c "
                "UNION ALL SELECT 1, w.task_id, w.task_path, w.idx, w.record "
                f"FROM {p}_writes w, c WHERE w.thread_id = %(tid)s AND w.ns = %(ns)s "
                "AND w.checkpoint_id = c.checkpoint_id"
            ),
            {"tid": tid, "ns": ns, "cid": cid, "now": now},
        )
        head = [r for r in rows if r[0] == 0]
        if not head:
            return None
        _, found, parent, _, record = head[0]
        writes = [StoredWrite(r[1], int(r[3]), r[2], bytes(r[4])) for r in rows if r[0] == 1]
        return StoredCheckpoint(tid, ns, found, parent, bytes(record), writes)

    def list_page(
        self,
        tid: str | None,
        ns: str | None,
        cid: str | None,
        before: str | None,
        after: tuple[str, str, str] | None,
        page: int,
        now: float,
    ) -> Plan[list[StoredCheckpoint]]:
        """One page, newest first; ``after`` is the (checkpoint_id, thread_id, ns) cursor."""
        p = self.p
        where = [
            f"NOT EXISTS (SELECT 1 FROM {p}_threads t WHERE t.thread_id = k.thread_id "
            "AND t.expires_at <= %(now)s)"
        ]
        args: dict[str, Any] = {"now": now, "page": page}
        for column, value, op in (
            ("thread_id", tid, "="),
            ("ns", ns, "="),
            ("checkpoint_id", cid, "="),
            ("checkpoint_id", before, "<"),
        ):
            if value is not None:
                name = f"a{len(args)}"
                where.append(f"k.{column} {op} %({name})s")
                args[name] = value
        if after is not None:
            where.append("(k.checkpoint_id, k.thread_id, k.ns) < (%(c0)s, %(c1)s, %(c2)s)")
            args.update(c0=after[0], c1=after[1], c2=after[2])
        rows = yield (
            (
                f"SELECT k.thread_id, k.ns, k.checkpoint_id, k.parent_id, k.record "
                f"FROM {p}_checkpoints k WHERE {' AND '.join(where)} "
                "ORDER BY k.checkpoint_id DESC, k.thread_id DESC, k.ns DESC LIMIT %(page)s"
            ),
            args,
        )
        if not rows:
            return []
        keys: dict[str, Any] = {}
        values = []
        for i, r in enumerate(rows):
            keys.update({f"t{i}": r[0], f"n{i}": r[1], f"c{i}": r[2]})
            values.append(f"(%(t{i})s, %(n{i})s, %(c{i})s)")
        wrows = yield (
            (
                "SELECT thread_id, ns, checkpoint_id, task_id, task_path, idx, record "
                f"FROM {p}_writes WHERE (thread_id, ns, checkpoint_id) IN "
                f"(VALUES {', '.join(values)})"
            ),
            keys,
        )
        by_cp: dict[tuple[str, str, str], list[StoredWrite]] = {}
        for t, n, c, task, path, idx, rec in wrows:
            by_cp.setdefault((t, n, c), []).append(StoredWrite(task, int(idx), path, bytes(rec)))
        return [
            StoredCheckpoint(t, n, c, parent, bytes(rec), by_cp.get((t, n, c), []))
            for t, n, c, parent, rec in rows
        ]

    @staticmethod
    def _in(name: str, values: Sequence[str], args: dict[str, Any]) -> str:
        marks = []
        for i, v in enumerate(values):
            args[f"{name}{i}"] = v
            marks.append(f"%({name}{i})s")
        return f"({', '.join(marks)})"

    def _delete_threads(self, tids: Sequence[str]) -> Plan[None]:
        args: dict[str, Any] = {}
        where = "thread_id IN " + self._in("t", tids, args)
        for table in ("writes", "checkpoints", "threads"):
            yield f"DELETE FROM {self.p}_{table} WHERE {where}", args

    def delete_threads(self, tids: Sequence[str]) -> Plan[None]:
        if tids:
            yield from self._delete_threads(tids)

    def delete_runs(self, run_ids: Sequence[str]) -> Plan[None]:
        if not run_ids:
            return
        p, args = self.p, dict[str, Any]()
        runs = self._in("r", run_ids, args)
        yield (
            (
                f"DELETE FROM {p}_writes WHERE EXISTS (SELECT 1 FROM {p}_checkpoints k "
                f"WHERE k.run_id IN {runs} AND k.thread_id = {p}_writes.thread_id "
                f"AND k.ns = {p}_writes.ns AND k.checkpoint_id = {p}_writes.checkpoint_id)"
            ),
            args,
        )
        yield f"DELETE FROM {p}_checkpoints WHERE run_id IN {runs}", args

    def copy_thread(self, src: str, dst: str, expires_at: float | None, now: float) -> Plan[None]:
        p = self.p
        args = {"tid": src, "dst": dst, "now": now, "exp": expires_at}
        if expires_at is not None:
            yield (
                (
                    f"INSERT INTO {p}_threads (thread_id, expires_at) VALUES (%(dst)s, %(exp)s) "
                    "ON CONFLICT (thread_id) DO UPDATE SET expires_at = excluded.expires_at"
                ),
                args,
            )
        yield (
            (
                f"INSERT INTO {p}_checkpoints (thread_id, ns, checkpoint_id, parent_id, run_id, "
                "delta, record) SELECT %(dst)s, ns, checkpoint_id, parent_id, run_id, delta, "
                f"record FROM {p}_checkpoints WHERE thread_id = %(tid)s AND {self.live} "
                "ON CONFLICT (thread_id, ns, checkpoint_id) DO NOTHING"
            ),
            args,
        )
        yield (
            (
                f"INSERT INTO {p}_writes (thread_id, ns, checkpoint_id, task_id, idx, task_path, "
                f"record) SELECT %(dst)s, ns, checkpoint_id, task_id, idx, task_path, record "
                f"FROM {p}_writes WHERE thread_id = %(tid)s AND {self.live} "
                "ON CONFLICT (thread_id, ns, checkpoint_id, task_id, idx) DO NOTHING"
            ),
            args,
        )

    def delta_threads(self, tids: Sequence[str]) -> Plan[list[str]]:
        args: dict[str, Any] = {}
        rows = yield (
            (
                f"SELECT DISTINCT thread_id FROM {self.p}_checkpoints WHERE thread_id IN "
                f"{self._in('t', tids, args)} AND delta = 1"
            ),
            args,
        )
        return sorted(r[0] for r in rows)

    def keep_latest(self, tids: Sequence[str]) -> Plan[None]:
        """Keep the newest checkpoint of each namespace (and its writes); drop the rest."""
        p, args = self.p, dict[str, Any]()
        where = "thread_id IN " + self._in("t", tids, args)
        for table in ("writes", "checkpoints"):
            yield (
                (
                    f"DELETE FROM {p}_{table} WHERE {where} AND checkpoint_id < "
                    f"(SELECT max(k.checkpoint_id) FROM {p}_checkpoints k "
                    f"WHERE k.thread_id = {p}_{table}.thread_id AND k.ns = {p}_{table}.ns)"
                ),
                args,
            )
        # the kept checkpoints' parents are gone
        yield f"UPDATE {p}_checkpoints SET parent_id = NULL WHERE {where}", args

    def expired_threads(self, now: float) -> Plan[int]:
        rows = yield (
            f"SELECT thread_id FROM {self.p}_threads WHERE expires_at <= %(now)s",
            {"now": now},
        )
        tids = [r[0] for r in rows]
        if tids:
            yield from self._delete_threads(tids)
        return len(tids)

    # -- store items --------------------------------------------------------------------------

    def item_get(self, prefix: str, key: str, now: float) -> Plan[StoredItem | None]:
        rows = yield (
            (
                f"SELECT prefix, key, record, created_at, updated_at, expires_at, ttl "
                f"FROM {self.p}_items WHERE prefix = %(prefix)s AND key = %(key)s "
                "AND (expires_at IS NULL OR expires_at > %(now)s)"
            ),
            {"prefix": prefix, "key": key, "now": now},
        )
        return _item(rows[0]) if rows else None

    def item_put(
        self, prefix: str, key: str, record: bytes, now: float, ttl: float | None
    ) -> Plan[None]:
        args = {
            "prefix": prefix,
            "key": key,
            "record": record,
            "now": now,
            "ttl": ttl,
            "exp": None if ttl is None else now + ttl,
        }
        # an expired item is replaced as new (its created_at restarts)
        yield (
            (
                f"INSERT INTO {self.p}_items AS i (prefix, key, record, created_at, updated_at, "
                "expires_at, ttl) VALUES (%(prefix)s, %(key)s, %(record)s, %(now)s, %(now)s, "
                "%(exp)s, %(ttl)s) ON CONFLICT (prefix, key) DO UPDATE SET "
                "record = excluded.record, updated_at = excluded.updated_at, "
                "expires_at = excluded.expires_at, "
                "ttl = excluded.ttl, created_at = CASE WHEN i.expires_at IS NOT NULL AND "
                "i.expires_at <= %(now)s THEN excluded.created_at ELSE i.created_at END"
            ),
            args,
        )

    def item_delete(self, prefix: str, key: str) -> Plan[None]:
        yield (
            f"DELETE FROM {self.p}_items WHERE prefix = %(prefix)s AND key = %(key)s",
            {"prefix": prefix, "key": key},
        )

    def item_scan(self, prefix: str, now: float) -> Plan[list[StoredItem]]:
        """Live items whose namespace is ``prefix`` or below it (``prefix`` "" is all)."""
        args: dict[str, Any] = {"now": now}
        where = "(expires_at IS NULL OR expires_at > %(now)s)"
        if prefix:
            args.update(prefix=prefix, below=prefix + "\x1f", n=len(prefix) + 1)
            where += " AND (prefix = %(prefix)s OR substr(prefix, 1, %(n)s) = %(below)s)"
        rows = yield (
            (
                "SELECT prefix, key, record, created_at, updated_at, expires_at, ttl "
                f"FROM {self.p}_items WHERE {where} ORDER BY prefix, key"
            ),
            args,
        )
        return [_item(r) for r in rows]

    def item_touch(self, keys: Sequence[tuple[str, str]], now: float) -> Plan[None]:
        """Restart the TTL of the items ``keys`` (those that have one)."""
        for prefix, key in keys:
            yield (
                (
                    f"UPDATE {self.p}_items SET expires_at = %(now)s + ttl "
                    "WHERE prefix = %(prefix)s AND key = %(key)s AND ttl IS NOT NULL "
                    "AND expires_at > %(now)s"
                ),
                {"prefix": prefix, "key": key, "now": now},
            )

    def item_prefixes(self, now: float) -> Plan[list[str]]:
        rows = yield (
            (
                f"SELECT DISTINCT prefix FROM {self.p}_items "
                "WHERE expires_at IS NULL OR expires_at > %(now)s"
            ),
            {"now": now},
        )
        return sorted(r[0] for r in rows)

    def item_sweep(self, now: float) -> Plan[int]:
        rows = yield (
            f"DELETE FROM {self.p}_items WHERE expires_at <= %(now)s RETURNING 1",
            {"now": now},
        )
        return len(rows)


def _item(r: Sequence[Any]) -> StoredItem:
    return StoredItem(
        r[0],
        r[1],
        bytes(r[2]),
        float(r[3]),
        float(r[4]),
        None if r[5] is None else float(r[5]),
        None if r[6] is None else float(r[6]),
    )


def _drive(plan: Plan[_T], execute: Any) -> _T:
    try:
        sql, params = next(plan)
        while True:
            sql, params = plan.send(execute(sql, params))
    except StopIteration as done:
        result: _T = done.value
        return result


_PARAM = re.compile(r"%\((\w+)\)s")


class SqliteGraphEngine:
    """Plans on an SQLite file (``path``; None: an in-memory database named by ``url``).

    One connection per thread.

    WAL journal, ``synchronous=NORMAL``: a committed transaction survives the process being
    killed (it is in the WAL); an operating-system crash can lose the last commits, as with
    the sessions' diskcache store.
    """

    def __init__(self, url: str, path: Path | None, prefix: str) -> None:
        self.url = url
        self.plans = GraphPlans(prefix)
        self.statements = 0
        if path is None:  # memory://name: one in-memory database per name and process
            self._target = f"file:aipt-lg-{uuid.uuid5(uuid.NAMESPACE_URL, url)}?mode=memory"
            self._target += "&cache=shared"
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._target = f"file:{path}"
        self._local = threading.local()
        self._native: dict[str, str] = {}  # psycopg-style SQL -> SQLite-style, converted once
        self._keeper = self._connect()  # keeps a shared in-memory database alive
        with self._keeper:
            for sql in _schema(self.plans.p, "BLOB", "REAL", "TEXT"):
                self._keeper.execute(sql)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._target, uri=True, timeout=60, isolation_level=None, check_same_thread=False
        )
        if "mode=memory" not in self._target:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    def run(self, plan: Plan[_T], *, atomic: bool = False) -> _T:
        """Run ``plan``; ``atomic``: in one write transaction."""
        conn = self._conn()
        native = self._native

        def execute(sql: str, params: dict[str, Any]) -> list[Any]:
            self.statements += 1
            text = native.get(sql)
            if text is None:
                text = native[sql] = _PARAM.sub(r":\1", sql)
            return conn.execute(text, params).fetchall()

        if not atomic:
            return _drive(plan, execute)
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = _drive(plan, execute)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    async def arun(self, plan: Plan[_T], *, atomic: bool = False) -> _T:
        """:meth:`run` in a worker thread."""
        return await asyncio.to_thread(self.run, plan, atomic=atomic)

    def close(self) -> None:
        """Close this thread's connection (others close with their threads)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class PostgresGraphEngine:
    """Plans on the shared psycopg pools of ``aipowertools.core.stores``.

    A connection lost mid-statement (server restarted, network cut) raises
    :class:`~aipowertools.core.errors.StoreUnavailableError`; the pool replaces the connection
    and the next call works once the server is back.
    """

    def __init__(self, url: str, prefix: str, *, pool: Any = None) -> None:
        self.url = url
        self.plans = GraphPlans(prefix)
        self.statements = 0
        self._pool = pool
        self._ready = False
        self._ready_lock = threading.Lock()
        self._schema = _schema(self.plans.p, "BYTEA", "DOUBLE PRECISION", 'TEXT COLLATE "C"')

    def _sync_pool(self) -> Any:
        if self._pool is None:
            from aipowertools.core.stores import postgres_pool

            self._pool = postgres_pool(self.url)
        return self._pool

    def _unavailable(self, exc: Exception) -> StoreUnavailableError:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return StoreUnavailableError(self.url, reason)

    def _migrate(self, conn: Any) -> None:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            for sql in self._schema:
                conn.execute(sql)

    async def _amigrate(self, conn: Any) -> None:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            for sql in self._schema:
                await conn.execute(sql)

    def run(self, plan: Plan[_T], *, atomic: bool = False) -> _T:
        """Run ``plan`` on a pooled connection; ``atomic``: in one transaction."""
        import psycopg

        try:
            with self._sync_pool().connection() as conn:
                if not self._ready:
                    with self._ready_lock:
                        if not self._ready:
                            self._migrate(conn)
                            self._ready = True

                def execute(sql: str, params: dict[str, Any]) -> list[Any]:
                    self.statements += 1
                    cur = conn.execute(sql, params, prepare=True)
                    return list(cur.fetchall()) if cur.description else []

                if atomic:
                    with conn.transaction():
                        return _drive(plan, execute)
                conn.autocommit = True
                try:
                    return _drive(plan, execute)
                finally:
                    if not conn.closed:
                        conn.autocommit = False
        except psycopg.OperationalError as exc:
            if isinstance(exc, StoreUnavailableError):
                raise
            raise self._unavailable(exc) from exc

    async def arun(self, plan: Plan[_T], *, atomic: bool = False) -> _T:
        """Async :meth:`run` on the shared async pool of the running loop."""
        import psycopg

        from aipowertools.core.stores import async_postgres_pool

        pool = await async_postgres_pool(self.url)
        try:
            async with pool.connection() as conn:
                if not self._ready:
                    await self._amigrate(conn)
                    self._ready = True

                async def step(sql: str, params: dict[str, Any]) -> list[Any]:
                    self.statements += 1
                    cur = await conn.execute(sql, params, prepare=True)
                    return list(await cur.fetchall()) if cur.description else []

                async def drive() -> _T:
                    try:
                        sql, params = next(plan)
                        while True:
                            sql, params = plan.send(await step(sql, params))
                    except StopIteration as done:
                        result: _T = done.value
                        return result

                if atomic:
                    async with conn.transaction():
                        return await drive()
                await conn.set_autocommit(True)
                try:
                    return await drive()
                finally:
                    if not conn.closed:
                        await conn.set_autocommit(False)
        except psycopg.OperationalError as exc:
            if isinstance(exc, StoreUnavailableError):
                raise
            raise self._unavailable(exc) from exc

    def close(self) -> None:
        """The pools are shared (owned by aipowertools.core.stores); nothing to release."""

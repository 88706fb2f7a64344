"""PostgreSQL schema: created on first use, versioned, and migrated without reordering data."""

from __future__ import annotations

import json
import uuid

import psycopg
from psycopg_pool import ConnectionPool

from aipowertools.sessions import Session
from aipowertools.sessions._postgres import _TAIL, PostgresBackend, migrate


def test_schema_migrates_from_v1_keeping_list_order(postgres_url: str) -> None:
    schema = f"mig_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"SET search_path TO {schema}")
        assert migrate(conn, target=1) == 1
        for seq in range(3):  # a list written by version 1: per-list numbers 0, 1, 2
            conn.execute(
                "INSERT INTO aipt_session_items (ns, sid, key, seq, data) "
                "VALUES ('default', 'old', 'h', %s, %s)",
                (seq, b"\xa7\x00" + str(seq).encode()),
            )
        conn.execute(
            "INSERT INTO aipt_session_lists (ns, sid, key, head, tail) "
            "VALUES ('default', 'old', 'h', 0, 3)"
        )
        assert migrate(conn) == 2
        assert migrate(conn) == 2  # idempotent
        versions = [
            r[0] for r in conn.execute("SELECT version FROM aipt_sessions_migrations ORDER BY 1")
        ]
        assert versions == [1, 2]
    pool = ConnectionPool(
        postgres_url,
        kwargs={"options": f"-c search_path={schema}"},
        min_size=1,
        max_size=2,
        open=True,
    )
    try:
        session = Session("old", store=PostgresBackend(postgres_url, pool=pool))
        session.extend("h", [3, 4])
        assert session.get("h") == [0, 1, 2, 3, 4]
        assert session.length("h") == 5
        assert session.keys() == ["h"]
    finally:
        pool.close()


def test_newest_n_reads_n_rows_whatever_the_length(postgres_url: str) -> None:
    """``items(key, -20)`` walks the primary key backwards: rows read do not grow with the list."""
    ns = f"t{uuid.uuid4().hex[:10]}"
    s = Session("long", store=postgres_url, namespace=ns)
    s.extend("h", list(range(5000)))
    sent: list[str] = []
    backend = s.backend
    original = backend._q  # type: ignore[attr-defined]

    def spy(sql: str, params: dict[str, object]) -> list[object]:
        sent.append(sql)
        return original(sql, params)  # type: ignore[no-any-return]

    backend._q = spy  # type: ignore[attr-defined]
    assert s.items("h", -20) == list(range(4980, 5000))
    assert len(sent) == 1, "one round trip"
    assert "count(" not in sent[0]
    assert "OFFSET" not in sent[0]
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        plan = conn.execute(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + _TAIL,
            {"ns": ns, "sid": "long", "key": "h", "n": 20},
        ).fetchone()[0]
    rows_read: list[int] = []

    def walk(node: dict[str, object]) -> None:
        if "Scan" in str(node.get("Node Type", "")) and "aipt_session_items" in str(
            node.get("Relation Name", "")
        ):
            rows_read.append(int(node["Actual Rows"]))  # type: ignore[call-overload]
        for child in node.get("Plans", []):  # type: ignore[union-attr]
            walk(child)

    walk((plan if isinstance(plan, list) else json.loads(plan))[0]["Plan"])
    assert rows_read
    assert max(rows_read) <= 20, rows_read

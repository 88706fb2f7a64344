"""Free-text search and level filters over the queryable sinks, on the store's own index.

SQLite keeps a contentless FTS5 table ``events_fts`` filled by a trigger on ``events`` (the text
is the event name plus every string value of the event, nested ones included); PostgreSQL has a
GIN expression index on ``jsonb_to_tsvector('simple', data, '["string"]')``. Both tokenize
without stemming, so a word matches the same events on either store. Search terms are words:
every word given must occur (in any order); punctuation is ignored.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Sequence
from typing import Any

from aipowertools.core.errors import ConfigurationError

LEVELS = ("debug", "info", "warning", "error", "critical")
_WORD = re.compile(r"\w+", re.UNICODE)

SQLITE_FTS = """
CREATE VIRTUAL TABLE IF NOT EXISTS events_fts USING fts5(body, content='', tokenize='unicode61');
CREATE TRIGGER IF NOT EXISTS events_fts_insert AFTER INSERT ON events BEGIN
  INSERT INTO events_fts(rowid, body) VALUES (new.id, new.event_type || ' ' || coalesce(
    (SELECT group_concat(value, ' ') FROM json_tree(new.data) WHERE type = 'text'), ''));
END;
"""


def words(text: str) -> list[str]:
    """The words of a search text (what both stores index)."""
    found = _WORD.findall(text)
    if not found:
        raise ConfigurationError(
            f"search text {text!r} has no words to look for: give at least one letter or digit"
        )
    return found


def levels_from(level: str | None) -> list[str] | None:
    """The levels at or above ``level`` (``None``: no level filter)."""
    if level is None:
        return None
    name = level.lower()
    if name not in LEVELS:
        raise ConfigurationError(f"unknown level {level!r}: use one of {', '.join(LEVELS)}")
    return list(LEVELS[LEVELS.index(name) :])


def ensure_sqlite_fts(conn: sqlite3.Connection) -> None:
    """Create the FTS table and trigger, and index events written before they existed."""
    conn.executescript(SQLITE_FTS)
    indexed = conn.execute("SELECT max(rowid) FROM events_fts").fetchone()[0] or 0
    conn.execute(
        "INSERT INTO events_fts(rowid, body) SELECT id, event_type || ' ' || coalesce("
        "(SELECT group_concat(value, ' ') FROM json_tree(events.data) WHERE type = 'text'), '')"
        " FROM events WHERE id > ?",
        (indexed,),
    )


def postgres_fts_ddl(table: str) -> str:
    """The GIN expression index behind PostgreSQL free-text search."""
    return (
        f"CREATE INDEX IF NOT EXISTS {table}_fts ON {table} "
        f"USING GIN (jsonb_to_tsvector('simple', data, '[\"string\"]'))"
    )


def build_sql(
    dialect: str,
    table: str,
    *,
    text: str | None,
    levels: Sequence[str] | None,
    event_type: str | None,
    kind: str | None,
    start: float | None,
    end: float | None,
    filters: dict[str, Any] | None,
    after_id: int | None,
    limit: int | None,
    newest_first: bool,
    field_check: Any,
) -> tuple[str, list[Any]]:
    """One SELECT of ``id, data`` for a search on SQLite (``?``) or PostgreSQL (``%s``)."""
    ph = "?" if dialect == "sqlite" else "%s"
    where: list[str] = []
    params: list[Any] = []
    for column, value, op in (
        ("event_type", event_type, "="),
        ("kind", kind, "="),
        ("ts", start, ">="),
        ("ts", end, "<="),
        ("id", after_id, ">"),
    ):
        if value is not None:
            where.append(f"{column} {op} {ph}")
            params.append(value)
    if levels is not None:
        where.append(f"level IN ({', '.join([ph] * len(levels))})")
        params.extend(levels)
    if text is not None:
        terms = words(text)
        if dialect == "sqlite":
            where.append("id IN (SELECT rowid FROM events_fts WHERE events_fts MATCH ?)")
            params.append(" ".join('"' + t.replace('"', "") + '"' for t in terms))
        else:
            where.append(
                "jsonb_to_tsvector('simple', data, '[\"string\"]') @@ plainto_tsquery('simple', %s)"
            )
            params.append(" ".join(terms))
    for name, value in (filters or {}).items():
        field_check(name)
        values = list(value) if isinstance(value, (list, tuple, set)) else [value]
        if dialect == "sqlite":
            expr = f"json_extract(data, '$.{name}')"
            where.append(f"{expr} IN ({', '.join('?' * len(values))})")
            params.extend(int(v) if isinstance(v, bool) else v for v in values)
        else:
            alternatives = []
            for v in values:
                doc: Any = v
                for part in reversed(name.split(".")):
                    doc = {part: doc}
                alternatives.append("data @> %s::jsonb")
                params.append(json.dumps(doc, default=str))
            where.append("(" + " OR ".join(alternatives) + ")")
    sql = f"SELECT id, data FROM {table}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY ts DESC, id DESC" if newest_first else " ORDER BY ts, id"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return sql, params

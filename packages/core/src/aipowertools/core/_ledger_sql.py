"""SQL shared by the SQLite and PostgreSQL ledger backends: columns, rows, filters, grouping."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from aipowertools.core._errors import ConfigurationError
from aipowertools.core._ledger import (
    FILTERABLE,
    Aggregate,
    GroupBy,
    LedgerRecord,
    Query,
)

# Record field -> column ("user" is reserved in PostgreSQL).
COLUMNS: dict[str, str] = {
    "request_id": "request_id",
    "ts": "ts",
    "model": "model",
    "provider": "provider",
    "input_tokens": "input_tokens",
    "output_tokens": "output_tokens",
    "cached_input_tokens": "cached_input_tokens",
    "cache_creation_tokens": "cache_creation_tokens",
    "reasoning_tokens": "reasoning_tokens",
    "cost_usd": "cost_usd",
    "cost_exact": "cost_exact",
    "latency_ms": "latency_ms",
    "status": "status",
    "task": "task",
    "user": "user_id",
    "session": "session_id",
    "tags": "tags",
    "trace_id": "trace_id",
    "saved_usd": "saved_usd",
}
GROUP_COLUMNS: dict[str, str] = {
    "provider": "provider",
    "model": "model",
    "task": "task",
    "user": "user_id",
    "session": "session_id",
    "day": "day",
    "status": "status",
}
SELECT_COLUMNS = ", ".join(COLUMNS.values())
INSERT_COLUMNS = SELECT_COLUMNS + ", day"


def ledger_ddl(table: str, real: str, integer: str) -> list[str]:
    """CREATE statements for the ledger table and its time index."""
    return [
        f"""CREATE TABLE IF NOT EXISTS {table} (
            request_id TEXT PRIMARY KEY, ts {real} NOT NULL, model TEXT NOT NULL,
            provider TEXT, input_tokens {integer} NOT NULL, output_tokens {integer} NOT NULL,
            cached_input_tokens {integer} NOT NULL, cache_creation_tokens {integer} NOT NULL,
            reasoning_tokens {integer} NOT NULL, cost_usd {real} NOT NULL,
            cost_exact {integer} NOT NULL, latency_ms {real}, status TEXT NOT NULL, task TEXT,
            user_id TEXT, session_id TEXT, tags TEXT NOT NULL, trace_id TEXT, day TEXT NOT NULL,
            saved_usd {real} NOT NULL DEFAULT 0)""",
        f"CREATE INDEX IF NOT EXISTS {table}_ts ON {table} (ts)",
    ]


def saved_usd_ddl(table: str, real: str) -> str:
    """ALTER adding ``saved_usd`` to a ledger table created before it existed."""
    return f"ALTER TABLE {table} ADD COLUMN saved_usd {real} NOT NULL DEFAULT 0"


def record_row(record: LedgerRecord) -> tuple[Any, ...]:
    """Values for ``INSERT_COLUMNS`` in order."""
    values: list[Any] = []
    for name in COLUMNS:
        value = getattr(record, name)
        if name == "tags":
            value = json.dumps(list(value))
        elif name == "cost_exact":
            value = int(value)
        values.append(value)
    values.append(record.day)
    return tuple(values)


def row_record(row: Sequence[Any]) -> LedgerRecord:
    """A record from a row selected with ``SELECT_COLUMNS``."""
    data = dict(zip(COLUMNS, row, strict=True))
    data["tags"] = tuple(json.loads(data["tags"]))
    data["cost_exact"] = bool(data["cost_exact"])
    return LedgerRecord(**data)


def where(query: Query, ph: str) -> tuple[str, list[Any]]:
    """A WHERE clause (with ``ph`` placeholders) and its parameters for ``query``."""
    clauses = [f"ts >= {ph}"]
    params: list[Any] = [query.start]
    if not math.isinf(query.end):
        clauses.append(f"ts < {ph}")
        params.append(query.end)
    for name, value in sorted(query.filters.items()):
        if name not in FILTERABLE:
            raise ConfigurationError(
                f"cannot filter ledger records by {name!r}; use one of {sorted(FILTERABLE)}"
            )
        clauses.append(f"{COLUMNS[name]} = {ph}")
        params.append(value)
    return " WHERE " + " AND ".join(clauses), params


def aggregate_sql(table: str, query: Query, by: GroupBy | None, ph: str) -> tuple[str, list[Any]]:
    """SELECT totalling matching records, grouped by ``by`` (a column) or not at all."""
    clause, params = where(query, ph)
    key = "NULL" if by is None else GROUP_COLUMNS[by]
    sql = (
        f"SELECT {key}, COUNT(*), COALESCE(SUM(cost_usd), 0), COALESCE(SUM(input_tokens), 0), "
        f"COALESCE(SUM(output_tokens), 0), COALESCE(SUM(CASE WHEN status <> 'ok' THEN 1 "
        f"ELSE 0 END), 0) FROM {table}{clause}"
    )
    if by is not None:
        sql += f" GROUP BY {key}"
    return sql, params


def aggregates(rows: Sequence[Sequence[Any]], by: GroupBy | None) -> list[Aggregate]:
    """Aggregates from :func:`aggregate_sql` rows (an empty ungrouped total gives no rows)."""
    out = []
    for row in rows:
        if by is None and not row[1]:
            continue
        out.append(
            Aggregate(row[0], int(row[1]), float(row[2]), int(row[3]), int(row[4]), int(row[5]))
        )
    return out

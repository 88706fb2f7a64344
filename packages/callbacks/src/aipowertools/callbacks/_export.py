"""Write stored log events as JSON lines or CSV (``StructuredLogger.export`` and the CLI's
``aipowertools logs export`` share it)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from typing import Any, TextIO

from aipowertools.core.errors import ConfigurationError

EXPORT_FORMATS = ("json", "csv")
CSV_COLUMNS = ("time", "level", "logger", "event", "kind", "trace_id")


def check_format(fmt: object) -> str:
    """Return ``fmt`` when it is ``"json"`` or ``"csv"``; else a ``ConfigurationError``."""
    if fmt not in EXPORT_FORMATS:
        raise ConfigurationError(f"format must be 'json' or 'csv', got {fmt!r}")
    return str(fmt)


def write_events(events: Iterable[dict[str, Any]], fmt: str, out: TextIO) -> int:
    """Write ``events`` to ``out``; returns how many were written.

    ``"json"``: one JSON object per line. ``"csv"``: the columns ``time, level, logger, event,
    kind, trace_id`` plus ``fields``, a JSON object of everything else.
    """
    fmt = check_format(fmt)
    count = 0
    if fmt == "json":
        for event in events:
            out.write(json.dumps(event, default=str, ensure_ascii=False) + "\n")
            count += 1
        return count
    writer = csv.writer(out)
    writer.writerow([*CSV_COLUMNS, "fields"])
    skip = {*CSV_COLUMNS, "ts"}
    for event in events:
        rest = {k: v for k, v in event.items() if k not in skip}
        writer.writerow([*(event.get(k) for k in CSV_COLUMNS), json.dumps(rest, default=str)])
        count += 1
    return count


def format_events(events: Iterable[dict[str, Any]], fmt: str) -> str:
    """:func:`write_events` into a string."""
    buffer = io.StringIO(newline="")
    write_events(events, fmt, buffer)
    return buffer.getvalue()

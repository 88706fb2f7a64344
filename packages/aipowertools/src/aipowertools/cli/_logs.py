"""``aipowertools logs``: query and search the structured log store, follow it, export it,
and verify its audit chain."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from aipowertools.callbacks import write_events
from aipowertools.cli._common import (
    HomeOpt,
    JsonOpt,
    LogStoreOpt,
    Out,
    StoreOpt,
    UntilOpt,
    iso,
    parse_time,
    run,
    store_errors,
    stores,
)

_idle = time.sleep  # how `tail -f` waits between polls (tests replace it)

app = typer.Typer(
    help="Query, search, follow, export and verify the structured logs.",
    invoke_without_command=True,
)

TypeOpt = Annotated[str | None, typer.Option("--type", "-t", help="Event name to match.")]
LevelOpt = Annotated[
    str | None,
    typer.Option("--level", "-l", help="Lowest level: debug, info, warning, error, critical."),
]
FieldOpt = Annotated[
    list[str] | None,
    typer.Option("--field", "-f", help="Field filter KEY=VALUE (repeatable; dots for nesting)."),
]
FieldLongOpt = Annotated[
    list[str] | None,
    typer.Option("--field", help="Field filter KEY=VALUE (repeatable; dots for nesting)."),
]
SearchOpt = Annotated[
    str | None,
    typer.Option("--search", "-s", help="Words that must all occur (the store's text index)."),
]
KindOpt = Annotated[str | None, typer.Option("--kind", help="log, metric or audit.")]
LimitOpt = Annotated[int, typer.Option("--limit", "-n", help="Most events to show.", min=1)]
LogSinceOpt = Annotated[
    str | None, typer.Option("--since", help="Start: 30m, 24h, 7d or an ISO date/time.")
]


def _filters(fields: list[str] | None) -> dict[str, Any] | None:
    if not fields:
        return None
    out: dict[str, Any] = {}
    for item in fields:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(
                f"{item!r} is not KEY=VALUE (e.g. --field model=gpt-4o)", param_hint="--field"
            )
        out[key] = _value(value)
    return out


def _value(text: str) -> Any:
    """``42`` -> 42, ``true`` -> True, anything else stays text."""
    try:
        parsed = json.loads(text)
    except ValueError:
        return text
    return parsed if isinstance(parsed, (int, float, bool)) else text


def _line(event: dict[str, Any]) -> str:
    skip = {"ts", "time", "level", "logger", "event", "kind", "span_id", "correlation_id"}
    fields = " ".join(
        f"{k}={v if isinstance(v, (str, int, float)) else json.dumps(v, default=str)}"
        for k, v in event.items()
        if k not in skip and v is not None
    )
    when = iso(float(event.get("ts", 0.0)))
    return f"{when} {str(event.get('level', '')).upper():8} {event.get('event')} {fields}".rstrip()


def _criteria(
    search: str | None,
    event_type: str | None,
    level: str | None,
    kind: str | None,
    since: str | None,
    until: str | None,
    field: list[str] | None,
) -> dict[str, Any]:
    from aipowertools.callbacks._search import levels_from

    now = time.time()
    return {
        "text": search,
        "levels": run(lambda: levels_from(level)),
        "event_type": event_type,
        "kind": kind,
        "start": None if since is None else parse_time(since, now=now),
        "end": None if until is None else parse_time(until, now=now, name="--until"),
        "filters": _filters(field),
    }


def _show(out: Out, events: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        out.json(events)
        return
    if not events:
        typer.echo("no matching events", err=True)
    for event in events:
        out.line(_line(event))


@app.callback()
def logs(
    ctx: typer.Context,
    search: SearchOpt = None,
    event_type: TypeOpt = None,
    level: LevelOpt = None,
    kind: KindOpt = None,
    since: LogSinceOpt = "24h",
    until: UntilOpt = None,
    field: FieldOpt = None,
    limit: LimitOpt = 50,
    log_store: LogStoreOpt = None,
    store: StoreOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the newest matching events, oldest of them first."""
    if ctx.invoked_subcommand is not None:
        return
    criteria = _criteria(search, event_type, level, kind, since, until, field)
    target = stores(store, log_store, home)
    _show(Out(as_json), run(lambda: _newest(target, criteria, limit)), as_json)


def _newest(target: Any, criteria: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` events matching ``criteria``, oldest of them first."""
    sink = target.log_sink()
    try:
        hits = sink.search(after_id=None, limit=limit, newest_first=True, **criteria)
    finally:
        sink.close()
    return [event for _id, event in reversed(hits)]


@app.command("search")
def search_cmd(
    text: Annotated[str, typer.Argument(help="Words that must all occur in the event.")],
    event_type: TypeOpt = None,
    level: LevelOpt = None,
    since: LogSinceOpt = None,
    until: UntilOpt = None,
    field: FieldOpt = None,
    limit: LimitOpt = 50,
    log_store: LogStoreOpt = None,
    store: StoreOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Free-text search over every stored event (newest matches, oldest of them first)."""
    criteria = _criteria(text, event_type, level, None, since, until, field)
    target = stores(store, log_store, home)
    _show(Out(as_json), run(lambda: _newest(target, criteria, limit)), as_json)


@app.command("tail")
def tail(
    follow: Annotated[
        bool, typer.Option("-f", "--follow", help="Keep printing new events.")
    ] = False,
    lines: Annotated[int, typer.Option("-n", "--lines", help="Events to show first.", min=0)] = 10,
    search: SearchOpt = None,
    event_type: TypeOpt = None,
    level: LevelOpt = None,
    field: FieldLongOpt = None,
    interval: Annotated[float, typer.Option(help="Seconds between polls with -f.", min=0.05)] = 0.5,
    max_events: Annotated[
        int | None, typer.Option(help="Stop after this many events with -f.", hidden=True)
    ] = None,
    log_store: LogStoreOpt = None,
    store: StoreOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The last events; with -f, keep printing new ones as they are stored (Ctrl-C stops)."""
    criteria = _criteria(search, event_type, level, None, None, None, field)
    target = stores(store, log_store, home)
    sink = run(target.log_sink)
    shown = 0

    def emit(event: dict[str, Any]) -> None:
        typer.echo(json.dumps(event, default=str) if as_json else _line(event))

    try:
        hits = run(lambda: sink.search(after_id=None, limit=max(lines, 1), newest_first=True,
                                       **criteria))  # fmt: skip
        last = hits[0][0] if hits else 0
        for _id, event in reversed(hits[:lines]):
            emit(event)
        while follow and (max_events is None or shown < max_events):
            with store_errors():
                new = sink.search(after_id=last, limit=1000, newest_first=False, **criteria)
            for event_id, event in new:
                emit(event)
                last = max(last, event_id)
                shown += 1
            sys.stdout.flush()
            if not new:
                _idle(interval)
    except KeyboardInterrupt:
        pass
    finally:
        sink.close()


@app.command("export")
def export(
    fmt_: Annotated[
        str, typer.Option("--format", help="json (one event per line) or csv.")
    ] = "json",
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="File to write (default: stdout).")
    ] = None,
    search: SearchOpt = None,
    event_type: TypeOpt = None,
    level: LevelOpt = None,
    kind: KindOpt = None,
    since: LogSinceOpt = None,
    until: UntilOpt = None,
    field: FieldOpt = None,
    log_store: LogStoreOpt = None,
    store: StoreOpt = None,
    home: HomeOpt = None,
) -> None:
    """Export matching events as JSON lines or CSV (base columns plus a JSON ``fields``)."""
    if fmt_ not in ("json", "csv"):
        raise typer.BadParameter(f"{fmt_!r}: use json or csv", param_hint="--format")
    criteria = _criteria(search, event_type, level, kind, since, until, field)
    target = stores(store, log_store, home)

    def read() -> list[dict[str, Any]]:
        sink = target.log_sink()
        try:
            hits = sink.search(after_id=None, limit=None, newest_first=False, **criteria)
        finally:
            sink.close()
        return [event for _id, event in hits]

    events = run(read)
    fh = sys.stdout if output is None else open(output, "w", newline="", encoding="utf-8")  # noqa: SIM115
    try:
        write_events(events, fmt_, fh)
    finally:
        if output is not None:
            fh.close()
    if output is not None:
        typer.echo(f"wrote {len(events)} events to {output}", err=True)


@app.command("verify")
def verify(
    audit_key_env: Annotated[
        str,
        typer.Option(help="Environment variable holding the audit HMAC key, if one is used."),
    ] = "AIPOWERTOOLS_AUDIT_KEY",
    expected_head: Annotated[
        str | None,
        typer.Option(help="Head hash saved earlier: also detects records cut from the end."),
    ] = None,
    log_store: LogStoreOpt = None,
    store: StoreOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check the audit hash chain: exit 0 when intact, 1 and the first bad record when not."""
    key_text = os.environ.get(audit_key_env)
    key = key_text.encode() if key_text else None
    target = stores(store, log_store, home)

    def check() -> Any:
        sink = target.log_sink()
        try:
            return sink.verify_audit(key, expected_head=expected_head)
        finally:
            sink.close()

    report = run(check)
    if as_json:
        Out(True).json(
            {"ok": report.ok, "checked": report.checked, "first_bad_seq": report.first_bad_seq,
             "reason": report.reason, "record": report.record, "head_hash": report.head_hash}
        )  # fmt: skip
    elif report.ok:
        typer.echo(f"audit chain intact: {report.checked} records, head {report.head_hash}")
    else:
        typer.echo(f"audit chain BROKEN at record {report.first_bad_seq}: {report.reason}")
        if report.record is not None:
            typer.echo("first bad record: " + json.dumps(report.record, default=str))
    if not report.ok:
        raise typer.Exit(1)

"""``aipowertools sessions``: list, show, export, back up, restore and clean up sessions."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from aipowertools.cli._common import (
    HomeOpt,
    JsonOpt,
    Out,
    StoreOpt,
    fail,
    run,
    store_errors,
    stores,
)

app = typer.Typer(help="List, show, export, back up, restore and clean up sessions.")

NamespaceOpt = Annotated[str, typer.Option("--namespace", help="Session namespace (tenant).")]


def _backend(store: str | None, home: str | None) -> Any:
    from aipowertools.sessions import open_store

    return run(lambda: open_store(stores(store, home=home).sessions))


@contextmanager
def _progress(total: int, label: str) -> Iterator[Any]:
    """A progress bar on stderr when it is a terminal (and the work is long enough)."""
    from rich.console import Console
    from rich.progress import Progress

    console = Console(stderr=True)
    with Progress(console=console, disable=not console.is_terminal or total < 2) as progress:
        task = progress.add_task(label, total=total)
        yield lambda: progress.advance(task)


def _summary(backend: Any, namespace: str, sid: str) -> dict[str, Any]:
    values = backend.get_values(namespace, sid)
    lengths = [backend.length(namespace, sid, k) for k in backend.keys(namespace, sid)]
    return {
        "namespace": namespace,
        "session_id": sid,
        "values": len(values),
        "lists": sum(1 for n in lengths if n),
        "items": sum(lengths),
        "value_bytes": sum(len(v.data) for v in values.values()),
    }


@app.command("list")
def list_(
    namespace: NamespaceOpt = "default",
    store: StoreOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The live sessions of a namespace with their size (values, lists, items, bytes)."""
    backend = _backend(store, home)
    ids = run(lambda: backend.sessions(namespace))
    rows = []
    with _progress(len(ids), "reading sessions") as advance:
        for sid in ids:
            with store_errors():
                rows.append(_summary(backend, namespace, sid))
            advance()
    out = Out(as_json)
    if as_json:
        out.json(rows)
        return
    if not rows:
        typer.echo(f"no live sessions in namespace {namespace!r} ({backend.url})", err=True)
        return
    out.table(
        f"sessions in {namespace!r}",
        ["session_id", "values", "lists", "items", "value_bytes"],
        [[r["session_id"], r["values"], r["lists"], r["items"], r["value_bytes"]] for r in rows],
    )


def _content(session_id: str, namespace: str, store: str | None, home: str | None) -> Any:
    from aipowertools.sessions import Session

    backend = _backend(store, home)
    if session_id not in run(lambda: backend.sessions(namespace)):
        raise fail(
            f"no live session {session_id!r} in namespace {namespace!r}: "
            "`aipowertools sessions list` shows them"
        )
    return run(lambda: Session(session_id, store=backend, namespace=namespace).get_all())


@app.command("show")
def show(
    session_id: Annotated[str, typer.Argument(help="The session id.")],
    namespace: NamespaceOpt = "default",
    store: StoreOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every value and list of one session."""
    data = _content(session_id, namespace, store, home)
    out = Out(as_json)
    if as_json:
        out.json(data)
        return
    for key, value in data.items():
        if isinstance(value, list):
            out.line(f"{key}: list of {len(value)} items")
            for i, item in enumerate(value):
                out.line(f"  [{i}] {json.dumps(item, default=str, ensure_ascii=False)}")
        else:
            out.line(f"{key}: {json.dumps(value, default=str, ensure_ascii=False)}")


@app.command("export")
def export(
    session_ids: Annotated[
        list[str] | None, typer.Argument(help="Sessions (default: all).")
    ] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="JSON file.")] = None,
    namespace: NamespaceOpt = "default",
    store: StoreOpt = None,
    home: HomeOpt = None,
) -> None:
    """Export sessions (decoded) as one JSON object ``{session_id: {key: value}}``."""
    backend = _backend(store, home)
    ids = session_ids or run(lambda: backend.sessions(namespace))
    data = {}
    with _progress(len(ids), "exporting") as advance:
        for sid in ids:
            data[sid] = _content(sid, namespace, store, home)
            advance()
    text = json.dumps(data, indent=1, default=str, ensure_ascii=False)
    if output is None:
        sys.stdout.write(text + "\n")
    else:
        output.write_text(text + "\n", encoding="utf-8")
        typer.echo(f"exported {len(data)} sessions to {output}", err=True)


@app.command("backup")
def backup(
    directory: Annotated[Path, typer.Argument(help="Directory for the backup files.")],
    session_ids: Annotated[
        list[str] | None, typer.Option("--session", help="Sessions (default: all).")
    ] = None,
    namespace: NamespaceOpt = "default",
    store: StoreOpt = None,
    home: HomeOpt = None,
) -> None:
    """Write a consistent backup file per session (``<id>.json``) into DIRECTORY."""
    from aipowertools.sessions import Session

    backend = _backend(store, home)
    ids = session_ids or run(lambda: backend.sessions(namespace))
    directory.mkdir(parents=True, exist_ok=True)
    with _progress(len(ids), "backing up") as advance:
        for sid in ids:
            session = Session(sid, store=backend, namespace=namespace)
            with store_errors():
                session.create_backup(directory / f"{sid}.json")
            advance()
    typer.echo(f"backed up {len(ids)} sessions to {directory}")


@app.command("restore")
def restore(
    paths: Annotated[list[Path], typer.Argument(help="Backup files, or directories of them.")],
    namespace: Annotated[
        str | None, typer.Option("--namespace", help="Restore into this namespace.")
    ] = None,
    store: StoreOpt = None,
    home: HomeOpt = None,
) -> None:
    """Replace sessions with the backups written by ``sessions backup``."""
    from aipowertools.sessions import Session

    files = _files(paths)
    backend = _backend(store, home)
    options: dict[str, Any] = {"store": backend}
    if namespace is not None:
        options["namespace"] = namespace
    with _progress(len(files), "restoring") as advance:
        for path in files:
            with store_errors():
                Session.restore_backup(path, **options)
            advance()
    typer.echo(f"restored {len(files)} sessions")


def _files(paths: Sequence[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(path.glob("*.json")))
        elif path.is_file():
            files.append(path)
        else:
            raise fail(f"{path} is neither a backup file nor a directory of them")
    return files


@app.command("cleanup")
def cleanup(
    namespace: NamespaceOpt = "default",
    store: StoreOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete the expired sessions of a namespace for good."""
    from aipowertools.sessions import Session

    backend = _backend(store, home)
    removed = run(lambda: Session.cleanup(backend, namespace=namespace))
    if as_json:
        Out(True).json({"removed": removed, "namespace": namespace})
    else:
        typer.echo(f"removed {removed} expired sessions from namespace {namespace!r}")

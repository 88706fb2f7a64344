"""What every command shares: store options, time ranges, output (table, plain lines, JSON),
and turning a store that is down into one clear line."""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from aipowertools.console._stores import Stores

T = TypeVar("T")

StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Store URL the library writes to (sqlite:///..., redis://..., postgresql://...). "
        "Default: $AIPOWERTOOLS_STORE, else the embedded stores in the data directory.",
        show_default=False,
    ),
]
LogStoreOpt = Annotated[
    str | None,
    typer.Option(
        "--log-store",
        help="Log store URL (default: $AIPOWERTOOLS_LOG_STORE, a postgresql:// --store, else "
        "events.db in the data directory).",
        show_default=False,
    ),
]
HomeOpt = Annotated[
    str | None,
    typer.Option(
        "--home",
        help="Data directory of the embedded stores (default: $AIPOWERTOOLS_HOME or the user "
        "data directory); e.g. the one `aipowertools demo` printed.",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
SinceOpt = Annotated[
    str,
    typer.Option(
        "--since", help="Start of the range: 30m, 24h, 7d, 2w, or an ISO date/time (UTC)."
    ),
]
UntilOpt = Annotated[
    str | None,
    typer.Option("--until", help="End of the range (exclusive): ISO date/time; default now."),
]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_time(text: str, *, now: float | None = None, name: str = "--since") -> float:
    """Epoch seconds of ``7d`` (ago), ``24h``, ``30m``, an ISO date or datetime (UTC)."""
    now = time.time() if now is None else now
    match = _DURATION.match(text)
    if match:
        return now - float(match.group(1)) * _UNITS[match.group(2).lower()]
    try:
        value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a time: use a duration such as 30m, 24h, 7d, 2w, or an ISO date "
            "such as 2026-01-31 (UTC)",
            param_hint=name,
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.timestamp()


def time_range(since: str, until: str | None) -> tuple[float, float]:
    """``(start, end)`` epoch seconds of ``--since`` / ``--until``."""
    now = time.time()
    start = parse_time(since, now=now)
    end = now if until is None else parse_time(until, now=now, name="--until")
    if end <= start:
        raise typer.BadParameter(
            f"--until ({iso(end)}) must be after --since ({iso(start)})", param_hint="--until"
        )
    return start, end


def iso(ts: float) -> str:
    """Seconds-precision UTC ISO time."""
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat(timespec="seconds")


def stores(store: str | None, log_store: str | None = None, home: str | None = None) -> Stores:
    """The stores a command reads, from its options and the environment."""
    return Stores.resolve(store, log_store, home=home)


class Out:
    """Writes a command's result: a rich table on a terminal, tab-separated lines when piped,
    or JSON with ``--json``. Long lines are never hard-wrapped mid-sentence when piped."""

    def __init__(self, as_json: bool = False) -> None:
        self.as_json = as_json
        self.tty = sys.stdout.isatty()
        self.console = Console(soft_wrap=not self.tty, highlight=False)
        self.err = Console(stderr=True, soft_wrap=True, highlight=False)

    def json(self, data: Any) -> None:
        """Print ``data`` as JSON."""
        typer.echo(json.dumps(data, indent=1, default=str))

    def line(self, text: str = "") -> None:
        """Print one line of text (no markup)."""
        if not self.as_json:
            self.console.print(text, markup=False)

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """A titled table on a terminal, else a header line and tab-separated rows."""
        if self.as_json:
            return
        if self.tty:
            table = Table(*columns, title=title, title_justify="left")
            for row in rows:
                table.add_row(*(fmt(v) for v in row))
            self.console.print(table)
            return
        typer.echo(f"# {title}")
        typer.echo("\t".join(columns))
        for row in rows:
            typer.echo("\t".join(fmt(v) for v in row))


def fmt(value: Any) -> str:
    """A cell: money and ratios rounded, None as '-'."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6f}".rstrip("0").rstrip(".") if value else "0"
    return str(value)


def usd(value: float | None) -> str:
    """USD with enough digits for small LLM costs."""
    if value is None:
        return "-"
    return f"${value:,.2f}" if abs(value) >= 100 else f"${value:.6f}"


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``message`` on stderr as one line and return the Exit to raise."""
    typer.echo(f"aipowertools: {message}", err=True)
    return typer.Exit(code)


@contextmanager
def store_errors() -> Iterator[None]:
    """A store that is down or a bad URL becomes one line on stderr and exit code 2."""
    from aipowertools.core.errors import (
        AIPowerToolsError,
        ConfigurationError,
        StoreUnavailableError,
    )

    try:
        yield
    except StoreUnavailableError as exc:
        raise fail(f"store unavailable: {exc}", 2) from None
    except ConfigurationError as exc:
        raise fail(str(exc), 2) from None
    except AIPowerToolsError as exc:
        raise fail(str(exc), 1) from None
    except OSError as exc:
        raise fail(f"cannot reach the store: {exc}", 2) from None
    except Exception as exc:  # driver errors (psycopg, redis) that name a connection problem
        if _is_connection_error(exc):
            raise fail(f"store unavailable: {exc}".splitlines()[0], 2) from None
        raise


def _is_connection_error(exc: Exception) -> bool:
    names = {c.__name__ for c in type(exc).__mro__}
    return bool(names & {"OperationalError", "ConnectionError", "InterfaceError", "PoolTimeout"})


def run(fn: Callable[[], T]) -> T:
    """Call ``fn`` with :func:`store_errors` around it."""
    with store_errors():
        return fn()

"""The ``aipowertools`` command line, built on typer and rich."""

from __future__ import annotations

import importlib
import importlib.metadata
import os

import typer
from rich.console import Console
from rich.table import Table

DISTRIBUTIONS = (
    "aipowertools-core",
    "aipowertools-resilience",
    "aipowertools-sessions",
    "aipowertools-callbacks",
    "aipowertools-router",
    "aipowertools-testing",
)

app = typer.Typer(
    name="aipowertools",
    help="AI PowerTools: routing, cost, logging, resilience and sessions for LLM apps.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command()
def version() -> None:
    """Print the installed AI PowerTools distributions and their versions."""
    console = Console()
    table = Table("distribution", "version")
    for dist in DISTRIBUTIONS:
        try:
            table.add_row(dist, importlib.metadata.version(dist))
        except importlib.metadata.PackageNotFoundError:
            table.add_row(dist, "[dim]not installed[/dim]")
    console.print(table)


@app.command()
def demo() -> None:
    """Run a short routed conversation with cost tracking, sessions and structured logs."""
    console = Console()
    try:
        module = importlib.import_module("aipowertools.cli._demo")
    except ImportError as exc:  # pragma: no cover - only without aipowertools-router installed
        console.print(f"[red]The demo needs aipowertools-router: {exc}[/red]")
        raise typer.Exit(1) from exc
    raise typer.Exit(module.run_demo(console))


@app.command()
def where() -> None:
    """Print where the embedded stores live and which store URL is the default."""
    from aipowertools.core.stores import data_dir

    console = Console()
    console.print(f"data directory: {data_dir()}")
    store = os.environ.get("AIPOWERTOOLS_STORE")
    console.print(
        f"AIPOWERTOOLS_STORE: {store or '(unset: embedded stores under the data directory)'}"
    )


def main() -> None:
    """Entry point of the ``aipowertools`` console script."""
    app()

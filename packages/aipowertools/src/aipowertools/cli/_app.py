"""The ``aipowertools`` command line, built on typer and rich."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from typing import Annotated

import typer
from rich.console import Console

from aipowertools.cli import _costs, _logs, _models, _ops, _sessions
from aipowertools.cli._common import Out

DISTRIBUTIONS = _ops.DISTRIBUTIONS[1:]

app = typer.Typer(
    name="aipowertools",
    help="AI PowerTools: routing, cost, logging, resilience and sessions for LLM apps. "
    "Every command reads the stores the library writes (--store URL, default "
    "$AIPOWERTOOLS_STORE or the embedded stores); --json prints JSON.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(_costs.app, name="costs")
app.add_typer(_logs.app, name="logs")
app.add_typer(_sessions.app, name="sessions")
app.add_typer(_models.app, name="models")
app.command("monitor")(_ops.monitor)
app.command("simulate")(_ops.simulate)
app.command("doctor")(_ops.doctor)
app.command("report")(_ops.report)
app.command("dashboard")(_ops.dashboard)


@app.command()
def version(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Print the installed AI PowerTools distributions and their versions."""
    versions: dict[str, str | None] = {}
    for dist in DISTRIBUTIONS:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    out = Out(as_json)
    if as_json:
        out.json(versions)
        return
    out.table("distributions", ["distribution", "version"],
              [[d, v or "not installed"] for d, v in versions.items()])  # fmt: skip


DEMO_NEEDS = ("langchain_core", "aipowertools.router.langchain")


@app.command()
def demo(
    simulator: Annotated[
        bool,
        typer.Option(
            "--simulator",
            help="Use the built-in simulator even when provider keys "
            "are set or a local server answers.",
        ),
    ] = False,
    home: Annotated[
        str | None,
        typer.Option(
            "--home",
            help="Where the demo keeps its stores (default: a 'demo' folder "
            "in the data directory, emptied first).",
        ),
    ] = None,
) -> None:
    """Run a short routed conversation with cost tracking, sessions and structured logs."""
    for module in DEMO_NEEDS:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            missing = getattr(exc, "name", None) or module
            typer.echo(
                f"aipowertools: the demo needs LangChain ({missing} is not installed): "
                "pip install 'aipowertools[langchain]' (from a checkout: "
                "uv sync --all-packages --all-extras)",
                err=True,
            )
            raise typer.Exit(1) from None
    from aipowertools.cli._demo import run_demo

    console = Console(soft_wrap=True, highlight=False)
    raise typer.Exit(run_demo(console, force_simulator=simulator, home=home))


@app.command()
def where() -> None:
    """Print where the embedded stores live and which store URL is the default."""
    from aipowertools.core.stores import data_dir

    console = Console(soft_wrap=True)
    console.print(f"data directory: {data_dir()}")
    store = os.environ.get("AIPOWERTOOLS_STORE")
    console.print(
        f"AIPOWERTOOLS_STORE: {store or '(unset: embedded stores under the data directory)'}"
    )


def main() -> None:
    """Entry point of the ``aipowertools`` console script."""
    app()

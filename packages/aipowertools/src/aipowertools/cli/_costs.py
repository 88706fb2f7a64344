"""``aipowertools costs``: totals, breakdowns, savings, budgets and forecast; export."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from aipowertools.cli._common import (
    HomeOpt,
    JsonOpt,
    Out,
    SinceOpt,
    StoreOpt,
    UntilOpt,
    iso,
    run,
    stores,
    time_range,
    usd,
)
from aipowertools.console._data import cost_summary

app = typer.Typer(
    help="What the LLM calls cost: totals, breakdowns, budgets, forecast, export.",
    invoke_without_command=True,
    no_args_is_help=False,
)
GROUPS = ("provider", "model", "user", "task", "tag", "day")


def _groups(by: str) -> list[str]:
    chosen = [g.strip() for g in by.split(",") if g.strip()]
    bad = [g for g in chosen if g not in GROUPS]
    if bad:
        raise typer.BadParameter(
            f"cannot break costs down by {', '.join(bad)}: use a comma-separated list of "
            f"{', '.join(GROUPS)}",
            param_hint="--by",
        )
    return chosen


@app.callback()
def costs(
    ctx: typer.Context,
    since: SinceOpt = "30d",
    until: UntilOpt = None,
    by: Annotated[
        str, typer.Option("--by", help=f"Breakdowns, comma-separated: {', '.join(GROUPS)}.")
    ] = "provider,model,day",
    budget: Annotated[
        float | None,
        typer.Option("--budget", help="Monthly limit in USD to show what is left and burn-down."),
    ] = None,
    store: StoreOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Totals and breakdowns over a time range, cache savings, budgets and the forecast."""
    if ctx.invoked_subcommand is not None:
        return
    start, end = time_range(since, until)
    groups = _groups(by)
    target = stores(store, home=home)

    def read() -> dict[str, object]:
        tracker = target.tracker()
        try:
            return cost_summary(tracker, start, end, by=groups, budget_usd=budget)
        finally:
            tracker.close()

    data = run(read)
    out = Out(as_json)
    if as_json:
        out.json(data)
        return
    _print(out, data, budget)


def _print(out: Out, data: dict, budget: float | None) -> None:  # type: ignore[type-arg]
    out.line(
        f"{iso(data['start'])} to {iso(data['end'])}: {usd(data['total_usd'])} over "
        f"{data['calls']} calls ({data['errors']} failed), {data['input_tokens']} input and "
        f"{data['output_tokens']} output tokens."
    )
    saved = data["saved_usd"]
    out.line(
        f"Saved by the response cache: {usd(saved)}."
        if saved is not None
        else "Cache savings: not recorded by this ledger."
    )
    for field, rows in data["breakdowns"].items():
        if field in ("day", "tag"):
            out.table(f"cost by {field}", [field, "calls", "cost_usd"] if field == "day"
                      else [field, "cost_usd"],
                      [[r["key"], r["calls"], r["cost_usd"]] if field == "day"
                       else [r["key"], r["cost_usd"]] for r in rows])  # fmt: skip
            continue
        out.table(
            f"cost by {field}",
            [field, "calls", "cost_usd", "share", "errors", "input_tokens", "output_tokens"],
            [
                [r["key"], r["calls"], r["cost_usd"], f"{r['share']:.1%}", r["errors"],
                 r["input_tokens"], r["output_tokens"]]
                for r in rows
            ],
        )  # fmt: skip
    b = data["budget"]
    out.table(
        "budget (global, UTC windows)",
        ["period", "spent_usd", "reserved_now_usd"],
        [[p, v["spent_usd"], v["reserved_usd"]] for p, v in b["periods"].items()],
    )
    if budget is not None:
        out.line(f"Monthly budget {usd(budget)}: {usd(b['remaining_usd'])} left.")
    f = data["forecast"]
    line = (
        f"Forecast for {f['month']}: {usd(f['projected_cost'])} (spent {usd(f['month_to_date'])}"
        f" so far, {usd(f['daily_rate'])}/day over the last 7 days"
    )
    if f["limit_usd"] is not None:
        line += f"; {'over' if f['will_exceed'] else 'within'} the {usd(f['limit_usd'])} limit"
    out.line(line + ").")


@app.command("export")
def export(
    fmt_: Annotated[str, typer.Option("--format", help="csv or json.")] = "csv",
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="File to write (default: stdout).")
    ] = None,
    since: SinceOpt = "30d",
    until: UntilOpt = None,
    store: StoreOpt = None,
    home: HomeOpt = None,
) -> None:
    """Export the ledger records of a time range as CSV or JSON."""
    if fmt_ not in ("csv", "json"):
        raise typer.BadParameter(f"{fmt_!r}: use csv or json", param_hint="--format")
    start, end = time_range(since, until)
    target = stores(store, home=home)

    def write() -> int:
        tracker = target.tracker()
        try:
            exporter = tracker.export_csv if fmt_ == "csv" else tracker.export_json
            if output is None:
                exporter(sys.stdout, start, end)
                if fmt_ == "json":
                    sys.stdout.write("\n")
            else:
                exporter(output, start, end)
            return sum(r.calls for r in tracker.breakdown("status", start, end))
        finally:
            tracker.close()

    count = run(write)
    if output is not None:
        typer.echo(f"wrote {count} records to {output}", err=True)

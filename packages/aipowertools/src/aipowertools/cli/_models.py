"""``aipowertools models``: the model catalog, filtered; ``models show NAME``."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from aipowertools.cli._common import HomeOpt, JsonOpt, Out, StoreOpt, fail, run, stores

app = typer.Typer(
    help="The model catalog: prices, context windows, capabilities, observed latency.",
    invoke_without_command=True,
)


def _observed_latency(store: str | None, home: str | None) -> dict[str, float]:
    """Median latency per model over the last 7 days of the ledger (empty if none)."""
    from aipowertools.console._data import deployment_stats

    target = stores(store, home=home)

    def read() -> dict[str, float]:
        tracker = target.tracker()
        try:
            records = tracker.records(time.time() - 7 * 86400)
        finally:
            tracker.close()
        by_model: dict[str, list[Any]] = {}
        for r in records:
            by_model.setdefault(r.model, []).append(r)
        out = {}
        for model, rows in by_model.items():
            stats = deployment_stats(rows, 7 * 86400)
            p50 = stats[0]["latency_p50_ms"] if stats else None
            if p50 is not None:
                out[model] = p50
        return out

    return run(read)


def _info(m: Any, observed: dict[str, float]) -> dict[str, Any]:
    return {
        "id": m.id,
        "provider": m.provider,
        "input_usd_per_1m": m.input_cost_per_token * 1e6,
        "output_usd_per_1m": m.output_cost_per_token * 1e6,
        "price_per_1k_blended": m.price_per_1k,
        "context_window": m.context_window,
        "max_output_tokens": m.max_output_tokens,
        "capabilities": sorted(m.capabilities),
        "quality": m.quality,
        "local": m.local,
        "observed_latency_ms": observed.get(m.id, m.latency_ms),
    }


@app.callback()
def models(
    ctx: typer.Context,
    provider: Annotated[str | None, typer.Option(help="Only this provider.")] = None,
    capability: Annotated[
        list[str] | None, typer.Option("--capability", "-c", help="Required (repeatable).")
    ] = None,
    max_cost: Annotated[
        float | None, typer.Option(help="Most USD per 1k tokens (half input, half output).")
    ] = None,
    min_window: Annotated[int | None, typer.Option(help="Smallest context window.")] = None,
    max_latency: Annotated[
        float | None, typer.Option(help="Most observed median latency (ms, from the ledger).")
    ] = None,
    store: StoreOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the curated and added models, cheapest first, with optional filters."""
    if ctx.invoked_subcommand is not None:
        return
    from aipowertools.core import default_catalog

    catalog = default_catalog()
    found = run(lambda: catalog.by_capability(*capability) if capability else catalog.models())
    if provider is not None:
        found = [m for m in found if m.provider == provider]
    if max_cost is not None:
        found = [m for m in found if m.price_per_1k <= max_cost]
    if min_window is not None:
        found = [m for m in found if (m.context_window or 0) >= min_window]
    observed = _observed_latency(store, home)
    rows = [_info(m, observed) for m in sorted(found, key=lambda m: (m.price_per_1k, m.id))]
    if max_latency is not None:
        rows = [
            r
            for r in rows
            if r["observed_latency_ms"] is not None and r["observed_latency_ms"] <= max_latency
        ]
    out = Out(as_json)
    if as_json:
        out.json(rows)
        return
    if not rows:
        typer.echo("no model matches these filters", err=True)
        return
    out.table(
        "models (USD per 1M tokens)",
        ["id", "provider", "input", "output", "window", "quality", "latency_ms", "capabilities"],
        [
            [r["id"], r["provider"], round(r["input_usd_per_1m"], 4),
             round(r["output_usd_per_1m"], 4), r["context_window"], r["quality"],
             r["observed_latency_ms"], ",".join(r["capabilities"])]
            for r in rows
        ],
    )  # fmt: skip


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="A catalog id or any litellm model name.")],
    store: StoreOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Everything the catalog knows about one model."""
    from aipowertools.core import default_catalog
    from aipowertools.core.errors import UnknownModelError

    try:
        info = default_catalog().get(name)
    except UnknownModelError as exc:
        raise fail(str(exc)) from None
    data = info.model_dump(mode="json")
    data["capabilities"] = sorted(info.capabilities)
    data["observed_latency_ms"] = _observed_latency(store, home).get(info.id)
    out = Out(as_json)
    if as_json:
        out.json(data)
        return
    for key, value in data.items():
        if value not in (None, [], ()):
            out.line(f"{key}: {value}")

"""``aipowertools monitor``, ``simulate``, ``doctor``, ``dashboard`` and ``report``."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from aipowertools.cli._common import (
    HomeOpt,
    JsonOpt,
    LogStoreOpt,
    Out,
    SinceOpt,
    StoreOpt,
    UntilOpt,
    fail,
    parse_time,
    run,
    stores,
    time_range,
)

DISTRIBUTIONS = (
    "aipowertools",
    "aipowertools-core",
    "aipowertools-resilience",
    "aipowertools-sessions",
    "aipowertools-callbacks",
    "aipowertools-cache",
    "aipowertools-prompts",
    "aipowertools-router",
    "aipowertools-testing",
)
EXTRAS = {
    "langchain": ("langchain_core", "LangChain adapters"),
    "langgraph": ("langgraph", "LangGraph checkpointer and store"),
    "llama-index": ("llama_index.core", "LlamaIndex adapters"),
    "redis": ("redis", "Redis stores"),
    "postgres": ("psycopg", "PostgreSQL stores"),
    "s3": ("boto3", "S3 session archives"),
    "otel": ("opentelemetry.sdk", "OpenTelemetry SDK export"),
    "console": ("starlette", "dashboard (and fpdf2 for PDF reports)"),
}
PROVIDER_KEYS = (
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY",
    "MISTRAL_API_KEY",
    "GROQ_API_KEY",
    "AZURE_API_KEY",
)


def monitor(
    window: Annotated[str, typer.Option(help="Window of recent calls: 15m, 1h, 24h.")] = "1h",
    store: StoreOpt = None,
    log_store: LogStoreOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Per-deployment latency p50/p95/p99, TTFT, tokens/s, error rate, availability and open
    circuits, from the shared stores (ledger, logs, Redis circuit state)."""
    from aipowertools.console._data import deployment_stats, open_circuits, ttft_by_model

    now = time.time()
    start = parse_time(window, now=now, name="--window")
    target = stores(store, log_store, home)

    def read() -> dict[str, Any]:
        tracker = target.tracker()
        try:
            deployments = deployment_stats(tracker.records(start, now), now - start)
        finally:
            tracker.close()
        ttft: dict[str, Any] = {}
        try:
            sink = target.log_sink()
        except Exception:  # a log store that cannot be queried only loses the TTFT column
            sink = None
        if sink is not None:
            try:
                ttft = ttft_by_model(sink, start, now)
            finally:
                sink.close()
        for d in deployments:
            model = d["deployment"].split("/", 1)[-1]
            d.update(ttft.get(d["deployment"]) or ttft.get(model) or
                     {"ttft_p50_ms": None, "ttft_p95_ms": None})  # fmt: skip
        return {
            "window_s": now - start,
            "deployments": deployments,
            "open_circuits": open_circuits(target.ledger),
        }

    data = run(read)
    out = Out(as_json)
    if as_json:
        out.json(data)
        return
    if not data["deployments"]:
        typer.echo(f"no calls recorded in the last {window}", err=True)
    else:
        out.table(
            f"deployments, last {window}",
            ["deployment", "calls", "err_rate", "avail", "p50_ms", "p95_ms", "p99_ms",
             "ttft_p50_ms", "tok/s", "rpm"],
            [
                [d["deployment"], d["calls"], f"{d['error_rate']:.1%}", f"{d['availability']:.1%}",
                 _ms(d["latency_p50_ms"]), _ms(d["latency_p95_ms"]), _ms(d["latency_p99_ms"]),
                 _ms(d["ttft_p50_ms"]), _ms(d["tokens_per_second"]), round(d["rpm"], 2)]
                for d in data["deployments"]
            ],
        )  # fmt: skip
    circuits = data["open_circuits"]
    if circuits:
        out.table(
            "open circuits",
            ["name", "state", "source", "reason"],
            [[c["name"], c["state"], c["source"], c.get("reason")] for c in circuits],
        )
    else:
        out.line("Open circuits: none shared (circuit state is shared only on a redis:// store).")
    out.line("Queue depth is per process: read it with ProviderMonitor.stats() in the app.")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def simulate(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8765,
    config: Annotated[Path | None, typer.Option(help="TOML file with [[models]] tables.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the scripted faults.")] = None,
) -> None:
    """Serve the provider simulator (OpenAI, Anthropic, Ollama, llama.cpp formats) until Ctrl-C."""
    from aipowertools.testing._cli import main as serve

    argv = ["serve", "--host", host, "--port", str(port)]
    if config is not None:
        argv += ["--config", str(config)]
    if seed is not None:
        argv += ["--seed", str(seed)]
    try:
        code = serve(argv)
    except OSError as exc:
        raise fail(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None
    raise typer.Exit(code)


def _check_store(name: str, url: str, opener: Any) -> dict[str, Any]:
    from aipowertools.console._stores import mask

    began = time.perf_counter()
    try:
        opener()
    except Exception as exc:
        return {"store": name, "url": mask(url), "ok": False,
                "detail": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}  # fmt: skip
    return {"store": name, "url": mask(url), "ok": True,
            "latency_ms": round((time.perf_counter() - began) * 1000, 1)}  # fmt: skip


def _local_servers() -> list[dict[str, Any]]:
    import httpx

    found = []
    for name, url, path in (
        ("ollama", os.environ.get("OLLAMA_HOST", "http://localhost:11434"), "/api/tags"),
        ("llama.cpp", os.environ.get("LLAMACPP_URL", "http://localhost:8080"), "/health"),
    ):
        try:
            ok = httpx.get(url + path, timeout=0.5).status_code == 200
        except httpx.HTTPError:
            ok = False
        found.append({"server": name, "url": url, "found": ok})
    return found


def doctor(
    store: StoreOpt = None,
    log_store: LogStoreOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check the setup and say what to fix: versions, extras, stores, prices, keys, servers."""
    target = stores(store, log_store, home)
    versions: dict[str, str | None] = {}
    for dist in DISTRIBUTIONS:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    extras = {}
    for extra, (module, what) in EXTRAS.items():
        try:
            present = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            present = False
        extras[extra] = {"installed": present, "for": what}

    def ledger() -> None:
        target.tracker().close()

    def logs() -> None:
        sink = target.log_sink()
        try:
            sink.query(limit=1)
        finally:
            sink.close()

    def sessions() -> None:
        from aipowertools.sessions import open_store

        open_store(target.sessions).sessions("default")

    checks = [
        _check_store("ledger", target.ledger, ledger),
        _check_store("logs", target.logs, logs),
        _check_store("sessions", target.sessions, sessions),
    ]
    local_map = os.environ.get("LITELLM_LOCAL_MODEL_COST_MAP", "").lower() in ("true", "1")
    keys = {k: bool(os.environ.get(k)) for k in PROVIDER_KEYS}
    local = _local_servers()
    data: dict[str, Any] = {
        "python": platform.python_version(),
        "executable": sys.executable,
        "distributions": versions,
        "extras": extras,
        "stores": checks,
        "litellm_local_price_map": local_map,
        "provider_keys": keys,
        "local_servers": local,
    }
    fixes: list[str] = []
    fixes += [f"install {d} (pip install {d})" for d, v in versions.items() if v is None]
    fixes += [f"{c['store']} store {c['url']} does not answer: {c['detail']}"
              for c in checks if not c["ok"]]  # fmt: skip
    if not local_map:
        fixes.append("export LITELLM_LOCAL_MODEL_COST_MAP=True to price calls from litellm's "
                     "bundled map (offline) instead of fetching it at import")  # fmt: skip
    if not any(keys.values()) and not any(s["found"] for s in local):
        fixes.append("no provider key and no local server: set e.g. OPENAI_API_KEY, start "
                     "Ollama, or try everything on `aipowertools simulate`")  # fmt: skip
    data["fixes"] = fixes
    out = Out(as_json)
    if as_json:
        out.json(data)
    else:
        out.line(f"Python {data['python']} ({sys.executable})")
        out.table("distributions", ["distribution", "version"],
                  [[d, v or "not installed"] for d, v in versions.items()])  # fmt: skip
        out.table("extras", ["extra", "installed", "for"],
                  [[e, v["installed"], v["for"]] for e, v in extras.items()])  # fmt: skip
        out.table("stores", ["store", "url", "ok", "latency_ms / problem"],
                  [[c["store"], c["url"], c["ok"], c.get("latency_ms", c.get("detail"))]
                   for c in checks])  # fmt: skip
        out.line(f"litellm local price map: {'in use' if local_map else 'NOT set'}")
        out.line("provider keys present (values never shown): "
                 + (", ".join(k for k, v in keys.items() if v) or "none"))  # fmt: skip
        out.line("local servers: " + ", ".join(
            f"{s['server']} {'found' if s['found'] else 'not found'} at {s['url']}"
            for s in data["local_servers"]))  # fmt: skip
        out.line("what to fix: " + ("nothing" if not fixes else ""))
        for fix in fixes:
            out.line(f"  - {fix}")
    if any(not c["ok"] for c in checks):
        raise typer.Exit(1)


def report(
    output: Annotated[Path, typer.Option("-o", "--output", help="File to write.")],
    fmt_: Annotated[
        str | None, typer.Option("--format", help="html or pdf (default: from -o).")
    ] = None,
    since: SinceOpt = "30d",
    until: UntilOpt = None,
    budget: Annotated[float | None, typer.Option(help="Monthly budget in USD.")] = None,
    store: StoreOpt = None,
    log_store: LogStoreOpt = None,
    home: HomeOpt = None,
) -> None:
    """Write a self-contained HTML report (charts embedded) or a PDF of the same content."""
    from aipowertools.console import generate_report

    fmt = fmt_ or output.suffix.lstrip(".").lower()
    if fmt not in ("html", "pdf"):
        raise typer.BadParameter(
            f"{fmt!r}: use --format html or pdf (or an -o name ending .html / .pdf)",
            param_hint="--format",
        )
    start, end = time_range(since, until)
    target = stores(store, log_store, home)
    try:
        run(lambda: generate_report(fmt, output, start=start, end=end, stores=target,  # type: ignore[arg-type]
                                    budget_usd=budget))  # fmt: skip
    except ImportError as exc:
        raise fail(f"{exc}", 1) from None
    typer.echo(f"wrote {fmt} report to {output}")


def dashboard(
    port: Annotated[int, typer.Option(help="Port.")] = 8470,
    host: Annotated[
        str, typer.Option(help="Interface (anything but 127.0.0.1 / localhost needs --token).")
    ] = "127.0.0.1",
    token: Annotated[
        str | None,
        typer.Option(envvar="AIPOWERTOOLS_DASHBOARD_TOKEN", help="Token every request must carry."),
    ] = None,
    since: SinceOpt = "30d",
    budget: Annotated[float | None, typer.Option(help="Monthly budget in USD.")] = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="Show what `aipowertools demo` recorded last.")
    ] = False,
    store: StoreOpt = None,
    log_store: LogStoreOpt = None,
    home: HomeOpt = None,
) -> None:
    """Serve the live dashboard on http://127.0.0.1:8470 (Ctrl-C stops)."""
    try:
        from aipowertools.console import serve_dashboard
    except ImportError as exc:  # pragma: no cover - only without the console extra
        raise fail(f"the dashboard needs the console extra: pip install 'aipowertools[console]' "
                   f"({exc})") from None  # fmt: skip
    if demo:
        from aipowertools.core.stores import data_dir

        home = str(data_dir() / "demo")
    target = stores(store, log_store, home)
    now = time.time()
    since_s = now - parse_time(since, now=now)
    try:
        serve_dashboard(target, host=host, port=port, token=token, since_s=since_s,
                        budget_usd=budget)  # fmt: skip
    except ValueError as exc:
        raise fail(str(exc), 2) from None

"""``generate_report``: the spend, latency, errors, budget and savings of a time range, as one
self-contained HTML file (charts as inline SVG) or a PDF of the same content (fpdf2)."""

from __future__ import annotations

import datetime as dt
import re
import time
from html import escape
from pathlib import Path
from typing import Any, Literal

from aipowertools.console._data import (
    audit_status,
    cost_summary,
    deployment_stats,
    open_circuits,
    recent_errors,
    top_requests,
)
from aipowertools.console._stores import Stores
from aipowertools.console._svg import CHART_CSS, bar_chart, line_chart, money
from aipowertools.core.errors import ConfigurationError

Format = Literal["html", "pdf"]


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _prompt_savings(sink: Any, start: float, end: float) -> float | None:
    """USD saved by the prompt optimiser, from its ``prompt_optimized`` events (if any)."""
    events = sink.query(event_type="prompt_optimized", start=start, end=end)
    values = [e.get("saved_usd") for e in events if isinstance(e.get("saved_usd"), (int, float))]
    return float(sum(values)) if values else None


def report_data(
    stores: Stores | None = None,
    *,
    start: float | None = None,
    end: float | None = None,
    budget_usd: float | None = None,
) -> dict[str, Any]:
    """Everything a report shows, as a JSON-ready dictionary (default: the last 30 days)."""
    stores = stores or Stores.resolve()
    end = time.time() if end is None else end
    start = end - 30 * 86400 if start is None else start
    if end <= start:
        raise ConfigurationError(f"a report needs start < end, got {start!r} and {end!r}")
    tracker = stores.tracker()
    try:
        summary = cost_summary(
            tracker, start, end, by=("day", "provider", "model", "user", "task"),
            budget_usd=budget_usd,
        )  # fmt: skip
        records = tracker.records(start, end)
    finally:
        tracker.close()
    data: dict[str, Any] = {
        "generated_at": time.time(),
        "stores": stores.describe(),
        "summary": summary,
        "deployments": deployment_stats(records, end - start),
        "top_requests": top_requests(records, 10),
        "open_circuits": open_circuits(stores.ledger),
        "audit": None,
        "recent_errors": [],
        "prompt_saved_usd": None,
    }
    try:
        sink = stores.log_sink()
    except ConfigurationError:
        return data
    try:
        data["audit"] = audit_status(sink)
        data["recent_errors"] = recent_errors(sink, 10)
        data["prompt_saved_usd"] = _prompt_savings(sink, start, end)
    finally:
        sink.close()
    return data


def generate_report(
    format: Format = "html",
    output: str | Path | None = None,
    *,
    start: float | None = None,
    end: float | None = None,
    stores: Stores | None = None,
    budget_usd: float | None = None,
) -> Path | bytes:
    """Write the report of ``[start, end)`` (default: the last 30 days) as HTML or PDF.

    Args:
        format: ``"html"`` (one self-contained file, charts embedded as SVG) or ``"pdf"``.
        output: File to write; ``None`` returns the bytes instead.
        start: Start of the range (epoch seconds).
        end: End of the range (epoch seconds, default now).
        stores: Which stores to read (default: as the library, from the environment).
        budget_usd: Monthly budget to show the burn-down against.

    Returns:
        The path written, or the document's bytes when ``output`` is None.
    """
    if format not in ("html", "pdf"):
        raise ConfigurationError(f"report format {format!r}: use 'html' or 'pdf'")
    data = report_data(stores, start=start, end=end, budget_usd=budget_usd)
    body = render_html(data).encode() if format == "html" else render_pdf(data)
    if output is None:
        return body
    path = Path(output)
    path.write_bytes(body)
    return path


# --------------------------------------------------------------------------- shared content


def charts(data: dict[str, Any]) -> dict[str, str]:
    """The report's charts as SVG markup, by name."""
    s = data["summary"]
    b = s["breakdowns"]
    cumulative, total = [], 0.0
    for p in b.get("day", []):
        total += p["cost_usd"]
        cumulative.append((p["key"], total))
    return {
        "spend_by_day": line_chart(
            [(p["key"], p["cost_usd"]) for p in b.get("day", [])],
            chart_id="chart-spend-day", title="Spend per day (USD)",
        ),
        "burn_down": line_chart(
            cumulative, chart_id="chart-burn", title="Cumulative spend in the range (USD)",
            limit=s["budget"]["limit_usd"], limit_label="monthly budget",
        ),
        "by_model": bar_chart(
            [(r["key"], r["cost_usd"]) for r in b.get("model", [])[:10]],
            chart_id="chart-model", title="Spend by model",
        ),
        "by_provider": bar_chart(
            [(r["key"], r["cost_usd"]) for r in b.get("provider", [])[:10]],
            chart_id="chart-provider", title="Spend by provider",
        ),
        "by_user": bar_chart(
            [(r["key"], r["cost_usd"]) for r in b.get("user", [])[:10]],
            chart_id="chart-user", title="Spend by user",
        ),
    }  # fmt: skip


def headline(data: dict[str, Any]) -> list[tuple[str, str]]:
    """The key figures, as (name, value) pairs."""
    s = data["summary"]
    f = s["forecast"]
    audit = data["audit"]
    return [
        ("Total spend", money(s["total_usd"])),
        ("Calls", f"{s['calls']:,}"),
        ("Failed calls", f"{s['errors']:,}"),
        ("Saved by the cache", money(s["saved_usd"]) if s["saved_usd"] is not None
         else "not recorded"),
        ("Saved by prompt optimisation", money(data["prompt_saved_usd"])
         if data["prompt_saved_usd"] is not None else "not recorded"),
        ("Forecast this month", money(f["projected_cost"])),
        ("Monthly budget", money(f["limit_usd"]) if f["limit_usd"] is not None else "none set"),
        ("Reserved now", money(s["budget"]["periods"]["month"]["reserved_usd"])),
        ("Audit chain", "no log store" if audit is None else
         (f"intact ({audit['checked']} records)" if audit["ok"]
          else f"BROKEN at record {audit['first_bad_seq']}")),
    ]  # fmt: skip


def tables(data: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """The report's tables: (title, header, rows of text)."""
    b = data["summary"]["breakdowns"]
    out: list[tuple[str, list[str], list[list[str]]]] = []
    for field in ("provider", "model", "user", "task"):
        out.append((
            f"Cost by {field}", [field, "calls", "cost", "share", "errors"],
            [[r["key"], f"{r['calls']:,}", money(r["cost_usd"]), f"{r['share']:.1%}",
              str(r["errors"])] for r in b.get(field, [])],
        ))  # fmt: skip
    out.append((
        "Cost by day", ["day", "calls", "cost"],
        [[p["key"], f"{p['calls']:,}", money(p["cost_usd"])] for p in b.get("day", [])],
    ))  # fmt: skip
    out.append((
        "Latency and errors per deployment",
        ["deployment", "calls", "error rate", "p50 ms", "p95 ms", "p99 ms", "tokens/s"],
        [[d["deployment"], f"{d['calls']:,}", f"{d['error_rate']:.1%}", _ms(d["latency_p50_ms"]),
          _ms(d["latency_p95_ms"]), _ms(d["latency_p99_ms"]), _ms(d["tokens_per_second"])]
         for d in data["deployments"]],
    ))  # fmt: skip
    out.append((
        "Most expensive requests", ["time", "model", "user", "task", "tokens in/out", "cost"],
        [[r["time"][:19].replace("T", " "), r["model"], r["user"] or "-", r["task"] or "-",
          f"{r['input_tokens']}/{r['output_tokens']}", money(r["cost_usd"])]
         for r in data["top_requests"]],
    ))  # fmt: skip
    periods = data["summary"]["budget"]["periods"]
    out.append((
        "Budget (global, UTC windows)", ["period", "spent", "reserved now"],
        [[p, money(v["spent_usd"]), money(v["reserved_usd"])] for p, v in periods.items()],
    ))  # fmt: skip
    out.append((
        "Recent errors", ["time", "event", "detail"],
        [[str(e.get("time", ""))[:19].replace("T", " "), str(e.get("event")),
          str(e.get("error") or e.get("error_type") or e.get("message") or "")[:80]]
         for e in data["recent_errors"]],
    ))  # fmt: skip
    return out


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


# --------------------------------------------------------------------------- HTML

_CSS = (
    """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1000px; color: #222; }
h1 { margin-bottom: 0.2rem; } .sub { color: #666; margin-top: 0; }
.figures { display: grid; grid-template-columns: repeat(3, 1fr); gap: 0.6rem; margin: 1rem 0; }
.figure { border: 1px solid #ddd; border-radius: 6px; padding: 0.5rem 0.8rem; }
.figure .name { color: #666; font-size: 0.8rem; } .figure .value { font-size: 1.2rem; }
table { border-collapse: collapse; width: 100%; margin: 0.5rem 0 1.5rem; font-size: 0.85rem; }
th, td { border-bottom: 1px solid #eee; padding: 0.25rem 0.5rem; text-align: left; }
th { background: #f6f6f6; } .charts { display: grid; grid-template-columns: 1fr; gap: 1rem; }
"""
    + CHART_CSS
)


def render_html(data: dict[str, Any]) -> str:
    """The report as one HTML document with no external resource."""
    s = data["summary"]
    figures = "".join(
        f'<div class="figure" data-name="{escape(n)}"><div class="name">{escape(n)}</div>'
        f'<div class="value">{escape(v)}</div></div>'
        for n, v in headline(data)
    )
    chart_html = "".join(f'<div class="chart-box">{svg}</div>' for svg in charts(data).values())
    table_html = ""
    for title, header, rows in tables(data):
        head = "".join(f"<th>{escape(h)}</th>" for h in header)
        body = (
            "".join(
                "<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows
            )
            or f'<tr><td colspan="{len(header)}">none</td></tr>'
        )
        table_html += f"<h2>{escape(title)}</h2><table><tr>{head}</tr>{body}</table>"
    stores = ", ".join(f"{k}: {escape(v)}" for k, v in data["stores"].items())
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        "<title>AI PowerTools report</title>"
        f"<style>{_CSS}</style></head><body>"
        "<h1>AI PowerTools report</h1>"
        f'<p class="sub">{escape(_iso(s["start"]))} to {escape(_iso(s["end"]))}; generated '
        f"{escape(_iso(data['generated_at']))}; {stores}</p>"
        f'<div class="figures" id="figures" data-total-usd="{s["total_usd"]:.9f}" '
        f'data-calls="{s["calls"]}">{figures}</div>'
        f'<div class="charts">{chart_html}</div>{table_html}</body></html>'
    )


# --------------------------------------------------------------------------- PDF


def render_pdf(data: dict[str, Any]) -> bytes:
    """The report as a PDF (fpdf2: pure Python, charts drawn from the same SVG)."""
    try:
        from fpdf import FPDF
        from fpdf.fonts import FontFace
    except ImportError as exc:
        raise ImportError("PDF reports need fpdf2: pip install 'aipowertools[console]'") from exc
    import io

    s = data["summary"]
    pdf = FPDF(orientation="portrait", format="A4")
    pdf.set_title("AI PowerTools report")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 18)
    pdf.cell(0, 10, "AI PowerTools report", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 9)
    when = f"{_iso(s['start'])} to {_iso(s['end'])}; generated {_iso(data['generated_at'])}"
    pdf.multi_cell(0, 5, _latin(when), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    pdf.set_font("Helvetica", "", 10)
    for name, value in headline(data):
        pdf.cell(70, 6, _latin(name))
        pdf.cell(0, 6, _latin(value), new_x="LMARGIN", new_y="NEXT")
    for svg in charts(data).values():
        pdf.ln(3)
        # fpdf2 draws SVG shapes and text; tooltips (<title>) have no place on paper.
        pdf.image(io.BytesIO(re.sub(r"<title>.*?</title>", "", svg).encode()), w=170)
    heading = FontFace(emphasis="BOLD", fill_color=(240, 240, 240))
    for title, header, rows in tables(data):
        pdf.ln(4)
        pdf.set_font("Helvetica", "B", 12)
        pdf.cell(0, 7, _latin(title), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 8)
        if not rows:
            pdf.cell(0, 5, "none", new_x="LMARGIN", new_y="NEXT")
            continue
        with pdf.table(headings_style=heading, line_height=5) as table:
            table.row([_latin(h) for h in header])
            for row in rows:
                table.row([_latin(c) for c in row])
    return bytes(pdf.output())


def _latin(text: str) -> str:
    """Text the PDF core fonts can show (Latin-1; anything else becomes '?')."""
    return text.replace("…", "...").encode("latin-1", "replace").decode("latin-1")

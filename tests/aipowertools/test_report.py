"""``generate_report``: the HTML file stands alone and the PDF holds the same, right, totals."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import pypdf
import pytest

from aipowertools.console import Stores, generate_report, report_data
from aipowertools.console._svg import bar_chart, line_chart
from aipowertools.core.errors import ConfigurationError

from .conftest import Seeded


def _text(pdf: bytes) -> str:
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    return "\n".join(page.extract_text() for page in reader.pages)


def test_html_report_is_self_contained_and_holds_the_numbers(
    seeded: Seeded, tmp_path: Path
) -> None:
    path = generate_report("html", tmp_path / "r.html", start=time.time() - 7 * 86400)
    assert isinstance(path, Path)
    html = path.read_text()
    assert f'data-total-usd="{seeded.total_usd:.9f}"' in html
    assert f'data-calls="{seeded.calls}"' in html
    # nothing loaded from elsewhere: no script, stylesheet link, image or font URL
    assert "<script" not in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "@import" not in html
    # the model chart carries the ledger's numbers
    chart = html[html.index('id="chart-model"') :]
    chart = chart[: chart.index("</svg>")]
    bars = dict(re.findall(r'class="bar"[^>]*data-label="([^"]+)" data-value="([^"]+)"', chart))
    assert {k: float(v) for k, v in bars.items()} == pytest.approx(seeded.by_model, rel=1e-5)
    assert "Most expensive requests" in html
    top = html[html.index("Most expensive requests") :]
    assert top.index("$0.0240") < top.index("$0.0230")  # req-23 then req-22, the costliest
    assert "intact (1 records)" in html


def test_pdf_report_text_has_the_right_totals(seeded: Seeded, tmp_path: Path) -> None:
    body = generate_report("pdf", None, start=time.time() - 7 * 86400, budget_usd=2.0)
    assert isinstance(body, bytes)
    text = _text(body)
    assert "AI PowerTools report" in text
    assert f"Total spend ${seeded.total_usd:.4f}" in text
    assert f"Calls {seeded.calls}" in text
    assert f"Failed calls {seeded.errors}" in text
    assert "Monthly budget $2.0000" in text
    for model, cost in seeded.by_model.items():
        assert re.search(rf"{model} 12 \${cost:.4f}", text), model
    for user, cost in seeded.by_user.items():
        assert f"{user} ${cost:.4f}" in text
    assert "Audit chain intact (1 records)" in text
    # the PDF file written to disk is the same document
    out = generate_report("pdf", tmp_path / "r.pdf", start=time.time() - 7 * 86400)
    assert f"Total spend ${seeded.total_usd:.4f}" in _text(Path(out).read_bytes())


def test_report_range_and_errors(seeded: Seeded) -> None:
    data = report_data(start=time.time() - 13 * 3600)
    assert data["summary"]["calls"] == 3  # 0, 6 and 12 hours ago
    assert [r["request_id"] for r in data["top_requests"]] == ["req-02", "req-01", "req-00"]
    assert data["recent_errors"][0]["event"] == "provider_error"
    with pytest.raises(ConfigurationError, match="start < end"):
        report_data(start=10, end=5)
    with pytest.raises(ConfigurationError, match="'html' or 'pdf'"):
        generate_report("docx")  # type: ignore[arg-type]


def test_report_without_a_queryable_log_store(seeded: Seeded) -> None:
    stores = Stores.resolve(log_store="redis://127.0.0.1:6379/0")
    data = report_data(stores)
    assert data["audit"] is None
    assert data["summary"]["calls"] == seeded.calls
    assert "Audit chain" in generate_report("html", None, stores=stores).decode()


def test_prompt_savings_are_read_from_the_optimiser_events(seeded: Seeded) -> None:
    from aipowertools.callbacks import StructuredLogger

    log = StructuredLogger("prompts", store=f"sqlite:///{seeded.home / 'events.db'}")
    log.info("prompt_optimized", saved_usd=0.125, saved_tokens=400)
    log.flush()
    assert report_data()["prompt_saved_usd"] == 0.125


def test_charts_mark_every_value_and_the_budget() -> None:
    svg = line_chart([("2026-01-01", 1.0), ("2026-01-02", 3.0)], chart_id="c", title="t", limit=5)
    assert svg.count('class="point"') == 2
    assert 'class="limit"' in svg
    assert 'data-value="5"' in svg
    assert "no data" in line_chart([], chart_id="e", title="t")
    bars = bar_chart([("a" * 40, 2.0), ("b", 0.0)], chart_id="b", title="t", value_format="n")
    assert "…" in bars
    assert 'data-value="0"' in bars
    assert "no data" in bar_chart([], chart_id="e", title="t")

"""Charts as inline SVG, drawn by us: no JavaScript library, nothing fetched at run time.

Every mark carries its number in a ``data-value`` attribute (and a ``<title>`` tooltip), so the
same markup serves the HTML report, the dashboard, and the tests that read the numbers back.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

PALETTE = ("#3b6fd8", "#e07b39", "#3aa676", "#c94f7c", "#8a63d2", "#c9a227", "#4aa3b5")


def _num(value: float) -> str:
    return f"{value:.6g}"


def money(value: float) -> str:
    """USD as the charts label it."""
    return f"${value:,.2f}" if abs(value) >= 100 else f"${value:.4f}"


def line_chart(
    points: Sequence[tuple[str, float]],
    *,
    chart_id: str,
    title: str,
    width: int = 640,
    height: int = 220,
    limit: float | None = None,
    limit_label: str = "budget",
) -> str:
    """A line of ``(label, value)`` points over equally spaced x positions (e.g. days).

    ``limit`` draws a dashed horizontal line (a budget) when given.
    """
    left, right, top, bottom = 64, 12, 28, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    top_value = max([v for _, v in points] + [limit or 0.0, 0.0]) or 1.0
    n = max(len(points) - 1, 1)

    def x(i: int) -> float:
        return left + plot_w * i / n

    def y(v: float) -> float:
        return top + plot_h * (1 - v / top_value)

    parts = [
        f'<svg id="{escape(chart_id)}" class="chart" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<text x="{left}" y="16" class="chart-title">{escape(title)}</text>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
        'stroke="#999"/>',
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end" class="axis">'
        f"{escape(money(top_value))}</text>",
        f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end" class="axis">$0</text>',
    ]
    if points:
        path = " ".join(
            f"{'M' if i == 0 else 'L'}{x(i):.1f},{y(v):.1f}" for i, (_, v) in enumerate(points)
        )
        parts.append(f'<path d="{path}" fill="none" stroke="{PALETTE[0]}" stroke-width="2"/>')
        for i, (label, value) in enumerate(points):
            parts.append(
                f'<circle class="point" cx="{x(i):.1f}" cy="{y(value):.1f}" r="3" '
                f'fill="{PALETTE[0]}" data-label="{escape(label)}" data-value="{_num(value)}">'
                f"<title>{escape(label)}: {escape(money(value))}</title></circle>"
            )
        step = max(1, len(points) // 6)
        for i in range(0, len(points), step):
            anchor = "end" if i == len(points) - 1 and i else "middle"
            parts.append(
                f'<text x="{x(i):.1f}" y="{height - 12}" text-anchor="{anchor}" class="axis">'
                f"{escape(points[i][0][5:] if len(points[i][0]) == 10 else points[i][0])}</text>"
            )
    else:
        parts.append(
            f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" text-anchor="middle" '
            'class="empty">no data in this range</text>'
        )
    if limit is not None:
        parts.append(
            f'<line class="limit" x1="{left}" y1="{y(limit):.1f}" x2="{left + plot_w}" '
            f'y2="{y(limit):.1f}" stroke="#c0392b" stroke-dasharray="6 4" '
            f'data-value="{_num(limit)}"/>'
            f'<text x="{left + plot_w}" y="{y(limit) - 4:.1f}" text-anchor="end" class="axis">'
            f"{escape(limit_label)} {escape(money(limit))}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(
    rows: Sequence[tuple[str, float]],
    *,
    chart_id: str,
    title: str,
    width: int = 640,
    bar_height: int = 22,
    value_format: str = "money",
) -> str:
    """Horizontal bars, one per ``(label, value)``, largest first as given."""
    left, right, top = 170, 90, 28
    height = top + max(len(rows), 1) * (bar_height + 6) + 8
    plot_w = width - left - right
    top_value = max([v for _, v in rows] + [0.0]) or 1.0
    parts = [
        f'<svg id="{escape(chart_id)}" class="chart" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<text x="8" y="16" class="chart-title">{escape(title)}</text>',
    ]
    if not rows:
        parts.append(f'<text x="{left}" y="{top + 14}" class="empty">no data in this range</text>')
    for i, (label, value) in enumerate(rows):
        y = top + i * (bar_height + 6)
        w = max(1.0, plot_w * value / top_value) if value > 0 else 0.0
        shown = money(value) if value_format == "money" else f"{value:g}"
        short = label if len(label) <= 26 else label[:25] + "…"
        parts.append(
            f'<text x="{left - 6}" y="{y + bar_height * 0.7:.1f}" text-anchor="end" '
            f'class="label">{escape(short)}</text>'
            f'<rect class="bar" x="{left}" y="{y}" width="{w:.1f}" height="{bar_height}" '
            f'fill="{PALETTE[i % len(PALETTE)]}" data-label="{escape(label)}" '
            f'data-value="{_num(value)}"><title>{escape(label)}: {escape(shown)}</title></rect>'
            f'<text x="{left + w + 6:.1f}" y="{y + bar_height * 0.7:.1f}" class="value">'
            f"{escape(shown)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


CHART_CSS = """
.chart { max-width: 100%; height: auto; font-family: system-ui, sans-serif; }
.chart .chart-title { font-size: 13px; font-weight: 600; fill: #222; }
.chart .axis, .chart .value, .chart .label { font-size: 11px; fill: #444; }
.chart .empty { font-size: 12px; fill: #888; }
"""

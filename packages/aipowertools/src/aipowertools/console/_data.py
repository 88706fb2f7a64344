"""The figures the command line, the reports and the dashboard show, read through the library's
own APIs (:class:`~aipowertools.core.CostTracker` queries, the log sinks' queries and audit
check), as plain JSON-ready dictionaries."""

from __future__ import annotations

import datetime as dt
import heapq
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from aipowertools.core import CostTracker, LedgerRecord

BREAKDOWNS = ("provider", "model", "user", "task", "day")
PERIODS: tuple[Literal["day"], Literal["month"], Literal["total"]] = ("day", "month", "total")


def _row(row: Any) -> dict[str, Any]:
    return {
        "key": row.key if row.key is not None else "-",
        "calls": row.calls,
        "cost_usd": row.cost_usd,
        "input_tokens": row.input_tokens,
        "output_tokens": row.output_tokens,
        "errors": row.errors,
        "share": row.share,
    }


def saved_usd(tracker: CostTracker, start: float, end: float) -> float | None:
    """What the response cache saved in ``[start, end)``, where the ledger records it.

    Uses ``CostTracker.saved_usd(start, end)`` when the installed core has it, else the
    ``saved_usd`` field of the records; ``None`` when the ledger has no such figure.
    """
    method = getattr(tracker, "saved_usd", None)
    if callable(method):
        return float(method(start, end))
    from aipowertools.core import LedgerRecord

    if "saved_usd" not in LedgerRecord.__dataclass_fields__:
        return None
    return float(sum(getattr(r, "saved_usd", 0.0) or 0.0 for r in tracker.records(start, end)))


def budget_state(tracker: CostTracker, limit_usd: float | None = None) -> dict[str, Any]:
    """Spend and reservations held now in the global day / month / all-time buckets."""
    periods: dict[str, Any] = {}
    for period in PERIODS:
        periods[period] = {
            "spent_usd": tracker.spent_usd("global", period),
            "reserved_usd": tracker.reserved_usd("global", period),
        }
    month = periods["month"]
    return {
        "periods": periods,
        "limit_usd": limit_usd,
        "remaining_usd": (
            None
            if limit_usd is None
            else max(0.0, limit_usd - month["spent_usd"] - month["reserved_usd"])
        ),
    }


def forecast(tracker: CostTracker, limit_usd: float | None = None) -> dict[str, Any]:
    """This month's projection (``CostTracker.forecast_monthly``), against ``limit_usd``."""
    data = asdict(tracker.forecast_monthly())
    if limit_usd is not None:
        data["limit_usd"] = limit_usd
        data["will_exceed"] = data["projected_cost"] > limit_usd
    return data


def cost_summary(
    tracker: CostTracker,
    start: float,
    end: float,
    *,
    by: Sequence[str] = ("provider", "model", "day"),
    budget_usd: float | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """Totals, breakdowns, cache savings, budget state and the monthly forecast."""
    breakdowns: dict[str, list[dict[str, Any]]] = {}
    for field in by:
        if field == "tag":
            breakdowns["tag"] = [
                {"key": k, "cost_usd": v} for k, v in tracker.cost_per_tag(start, end).items()
            ]
        elif field == "day":
            last = min(end - 1e-6, now or time.time())
            days = (dt.date.fromisoformat(_day(last)) - dt.date.fromisoformat(_day(start))).days + 1
            if days <= 400:
                points = tracker.trend(days, end=last)
                breakdowns["day"] = [
                    {"key": p.day, "calls": p.calls, "cost_usd": p.cost_usd}
                    for p in points
                    if p.day >= _day(start)
                ]
            else:
                rows = tracker.breakdown("day", start, end)
                breakdowns["day"] = sorted((_row(r) for r in rows), key=lambda r: r["key"])
        else:
            breakdowns[field] = [_row(r) for r in tracker.breakdown(field, start, end)]  # type: ignore[arg-type]
    total = tracker.breakdown("status", start, end)
    return {
        "start": start,
        "end": end,
        "total_usd": sum(r.cost_usd for r in total),
        "calls": sum(r.calls for r in total),
        "errors": sum(r.errors for r in total),
        "input_tokens": sum(r.input_tokens for r in total),
        "output_tokens": sum(r.output_tokens for r in total),
        "saved_usd": saved_usd(tracker, start, end),
        "breakdowns": breakdowns,
        "budget": budget_state(tracker, budget_usd),
        "forecast": forecast(tracker, budget_usd),
    }


def _day(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d")


def _quantile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank quantile of sorted ``values``."""
    if not values:
        return None
    return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]


def deployment_stats(records: Iterable[LedgerRecord], window_s: float) -> list[dict[str, Any]]:
    """Per deployment (provider/model): calls, errors, availability, latency quantiles and
    output tokens per second, from the ledger records of a window."""
    groups: dict[str, list[LedgerRecord]] = {}
    for r in records:
        name = r.model if r.provider is None or "/" in r.model else f"{r.provider}/{r.model}"
        groups.setdefault(name, []).append(r)
    out = []
    for name, rows in sorted(groups.items()):
        latencies = sorted(r.latency_ms for r in rows if r.latency_ms is not None)
        errors = sum(1 for r in rows if r.status != "ok")
        ok = [r for r in rows if r.status == "ok" and r.latency_ms]
        gen_s = sum((r.latency_ms or 0.0) for r in ok) / 1000.0
        out.append(
            {
                "deployment": name,
                "calls": len(rows),
                "errors": errors,
                "error_rate": errors / len(rows),
                "availability": 1.0 - errors / len(rows),
                "latency_p50_ms": _quantile(latencies, 0.50),
                "latency_p95_ms": _quantile(latencies, 0.95),
                "latency_p99_ms": _quantile(latencies, 0.99),
                "tokens_per_second": (sum(r.output_tokens for r in ok) / gen_s) if gen_s else None,
                "rpm": len(rows) / (window_s / 60.0),
                "cost_usd": sum(r.cost_usd for r in rows),
            }
        )
    return out


def ttft_by_model(sink: Any, start: float, end: float) -> dict[str, dict[str, float | None]]:
    """Time-to-first-token quantiles per model from the ``*_end`` events the callback
    handlers log for streamed calls."""
    values: dict[str, list[float]] = {}
    for event_type in ("chat_model_end", "llm_end"):
        for event in sink.query(event_type=event_type, start=start, end=end):
            ttft = event.get("ttft_ms")
            if isinstance(ttft, (int, float)):
                values.setdefault(str(event.get("model")), []).append(float(ttft))
    return {
        model: {"ttft_p50_ms": _quantile(sorted(v), 0.5), "ttft_p95_ms": _quantile(sorted(v), 0.95)}
        for model, v in values.items()
    }


def open_circuits(ledger_url: str) -> list[dict[str, Any]]:
    """Circuits open or half-open now, shared through Redis by the resilience breakers and the
    router (with embedded stores a circuit lives in its process and is not listed)."""
    from aipowertools.core.stores import parse_store_url

    if parse_store_url(ledger_url, default="memory://").scheme != "redis":
        return []
    import json

    from aipowertools.core.stores import redis_client

    client = redis_client(ledger_url)
    found: list[dict[str, Any]] = []
    for key in client.scan_iter(match="aipowertools:circuit:*:state", count=500):
        name = key.decode() if isinstance(key, bytes) else str(key)
        state, opened = client.hmget(key, "state", "opened_at")
        text = state.decode() if isinstance(state, bytes) else state
        if text in ("open", "half_open"):
            found.append(
                {
                    "name": name.split("{", 1)[-1].split("}", 1)[0],
                    "state": text,
                    "since": float(opened) if opened else None,
                    "source": "circuit breaker",
                }
            )
    for key in client.scan_iter(match="aipowertools:router:health:open:*", count=500):
        name = key.decode() if isinstance(key, bytes) else str(key)
        raw = client.get(key)
        entry = json.loads(raw) if raw else {}
        found.append(
            {
                "name": name.rsplit(":", 1)[-1],
                "state": "open",
                "until": entry.get("until"),
                "reason": entry.get("reason"),
                "source": "router",
            }
        )
    return sorted(found, key=lambda c: str(c["name"]))


def top_requests(records: Iterable[LedgerRecord], n: int = 10) -> list[dict[str, Any]]:
    """The ``n`` most expensive calls."""
    return [r.to_dict() for r in heapq.nlargest(n, records, key=lambda r: r.cost_usd)]


def audit_status(sink: Any, key: bytes | None = None) -> dict[str, Any]:
    """The audit chain check: ok, records checked, the first bad record and why."""
    report = sink.verify_audit(key)
    return {
        "ok": report.ok,
        "checked": report.checked,
        "first_bad_seq": report.first_bad_seq,
        "reason": report.reason,
        "record": report.record,
        "head_hash": report.head_hash,
    }


def recent_errors(sink: Any, limit: int = 20) -> list[dict[str, Any]]:
    """The newest events at level error or above."""
    return [event for _id, event in sink.search(
        text=None, levels=["error", "critical"], event_type=None, kind=None, start=None,
        end=None, filters=None, after_id=None, limit=limit, newest_first=True,
    )]  # fmt: skip

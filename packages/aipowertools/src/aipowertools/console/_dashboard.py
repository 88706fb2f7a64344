"""The live dashboard: a small Starlette app served by uvicorn on 127.0.0.1.

Why these: Starlette is a small, well-kept ASGI toolkit with server-sent events through a plain
streaming response, and uvicorn is its usual server; both are pure-Python wheels from PyPI and
need nothing at run time. The page, its CSS and its script are ours and ship in the wheel;
charts are SVG drawn on the server by :mod:`aipowertools.console._svg` (no chart library, no CDN).

A poller thread reads the stores every ``poll_s`` seconds: a cheap fingerprint (ledger calls and
spend of the last hour, the newest log event id); when it changes (or every ``full_every_s``)
the snapshot is rebuilt and its version bumped. ``/api/snapshot`` serves the last snapshot from
memory, ``/api/events`` tells each open page (server-sent events) the new version, and the page
fetches the snapshot again. Binding anything but loopback requires a token, checked on every
request (``Authorization: Bearer <token>`` or ``?token=``).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import threading
import time
from collections.abc import AsyncIterator
from html import escape
from importlib import resources
from typing import Any
from urllib.parse import quote

from aipowertools.console._data import (
    audit_status,
    cost_summary,
    deployment_stats,
    open_circuits,
    recent_errors,
)
from aipowertools.console._stores import Stores
from aipowertools.console._svg import bar_chart, line_chart, money

MONITOR_WINDOW_S = 3600.0
KEEPALIVE_S = 15.0  # a comment line on an idle event stream, so proxies keep it open


def _table(header: list[str], rows: list[list[Any]], table_id: str) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = (
        "".join(
            "<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
        )
        or f'<tr><td colspan="{len(header)}" class="none">none</td></tr>'
    )
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


class DashboardState:
    """The stores, the last snapshot and its version; refreshed by :meth:`poll`."""

    def __init__(
        self,
        stores: Stores,
        *,
        since_s: float = 30 * 86400,
        budget_usd: float | None = None,
        poll_s: float = 0.5,
        full_every_s: float = 30.0,
    ) -> None:
        self.stores = stores
        self.since_s = since_s
        self.budget_usd = budget_usd
        self.poll_s = poll_s
        self.full_every_s = full_every_s
        self.version = 0
        self.snapshot: bytes = b"{}"
        self.error: str | None = None
        self._fingerprint: Any = None
        self._built = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._tracker: Any = None
        self._sink: Any = None

    # ------------------------------------------------------------------ store access
    def _open(self) -> None:
        if self._tracker is None:
            self._tracker = self.stores.tracker()
        if self._sink is None:
            try:
                self._sink = self.stores.log_sink()
            except Exception:  # a store that cannot be queried only loses the log panels
                self._sink = False

    def fingerprint(self) -> tuple[Any, ...]:
        """Cheap: calls and spend of the last hour in the ledger, the newest log event id."""
        self._open()
        rows = self._tracker.breakdown("status", time.time() - MONITOR_WINDOW_S)
        newest = 0
        if self._sink:
            hits = self._sink.search(text=None, levels=None, event_type=None, kind=None,
                                     start=None, end=None, filters=None, after_id=None,
                                     limit=1, newest_first=True)  # fmt: skip
            newest = hits[0][0] if hits else 0
        return (sum(r.calls for r in rows), round(sum(r.cost_usd for r in rows), 12), newest)

    def build(self) -> dict[str, Any]:
        """The dashboard's content now."""
        self._open()
        now = time.time()
        start = now - self.since_s
        summary = cost_summary(
            self._tracker, start, now, by=("day", "provider", "model", "user"),
            budget_usd=self.budget_usd, now=now,
        )  # fmt: skip
        deployments = deployment_stats(
            self._tracker.records(now - MONITOR_WINDOW_S, now), MONITOR_WINDOW_S
        )
        circuits = open_circuits(self.stores.ledger)
        audit = audit_status(self._sink) if self._sink else None
        errors = recent_errors(self._sink, 15) if self._sink else []
        return {
            "summary": summary,
            "deployments": deployments,
            "open_circuits": circuits,
            "audit": audit,
            "recent_errors": errors,
        }

    def render(self, data: dict[str, Any]) -> dict[str, str]:
        """HTML fragments of each panel (the page swaps them in)."""
        s = data["summary"]
        b = s["breakdowns"]
        f = s["forecast"]
        audit = data["audit"]
        cumulative, total = [], 0.0
        for p in b["day"]:
            total += p["cost_usd"]
            cumulative.append((p["key"], total))
        figures = [
            ("total", "Spend in range", money(s["total_usd"])),
            ("calls", "Calls", f"{s['calls']:,}"),
            ("errors", "Failed calls", f"{s['errors']:,}"),
            ("saved", "Saved by cache",
             money(s["saved_usd"]) if s["saved_usd"] is not None else "not recorded"),
            ("forecast", "Forecast this month", money(f["projected_cost"])),
            ("reserved", "Reserved now", money(s["budget"]["periods"]["month"]["reserved_usd"])),
            ("budget", "Budget left this month",
             money(s["budget"]["remaining_usd"]) if s["budget"]["remaining_usd"] is not None
             else "no budget set"),
            ("audit", "Audit chain", "no log store" if audit is None else
             (f"intact, {audit['checked']} records" if audit["ok"]
              else f"BROKEN at record {audit['first_bad_seq']}")),
        ]  # fmt: skip
        return {
            "figures": "".join(
                f'<div class="figure" id="fig-{k}"><div class="name">{escape(n)}</div>'
                f'<div class="value">{escape(v)}</div></div>'
                for k, n, v in figures
            ),
            "spend": line_chart([(p["key"], p["cost_usd"]) for p in b["day"]],
                                chart_id="chart-spend-day", title="Spend per day (USD)"),
            "burn": line_chart(cumulative, chart_id="chart-burn",
                               title="Cumulative spend and monthly budget",
                               limit=s["budget"]["limit_usd"], limit_label="budget"),
            "models": bar_chart([(r["key"], r["cost_usd"]) for r in b["model"][:10]],
                                chart_id="chart-model", title="Spend by model"),
            "providers": bar_chart([(r["key"], r["cost_usd"]) for r in b["provider"][:10]],
                                   chart_id="chart-provider", title="Spend by provider"),
            "users": bar_chart([(r["key"], r["cost_usd"]) for r in b["user"][:10]],
                               chart_id="chart-user", title="Spend by user"),
            "deployments": _table(
                ["deployment", "calls", "error rate", "p50 ms", "p95 ms", "p99 ms", "tokens/s"],
                [[d["deployment"], d["calls"], f"{d['error_rate']:.1%}", _ms(d["latency_p50_ms"]),
                  _ms(d["latency_p95_ms"]), _ms(d["latency_p99_ms"]), _ms(d["tokens_per_second"])]
                 for d in data["deployments"]], "deployments"),
            "circuits": _table(
                ["name", "state", "source", "reason"],
                [[c["name"], c["state"], c["source"], c.get("reason") or ""]
                 for c in data["open_circuits"]], "circuits"),
            "errors": _table(
                ["time", "event", "detail"],
                [[str(e.get("time", ""))[:19].replace("T", " "), e.get("event"),
                  str(e.get("error") or e.get("error_type") or e.get("message") or "")[:100]]
                 for e in data["recent_errors"]], "recent-errors"),
        }  # fmt: skip

    def refresh(self, force: bool = False) -> bool:
        """Rebuild the snapshot if the stores changed (or ``force``); True when rebuilt."""
        try:
            fingerprint = self.fingerprint()
            stale = time.monotonic() - self._built >= self.full_every_s
            if not force and not stale and fingerprint == self._fingerprint:
                return False
            data = self.build()
            self.error = None
        except Exception as exc:  # a store that went away: say so on the page, keep polling
            message = f"store unavailable: {str(exc).splitlines()[0] if str(exc) else exc!r}"
            changed = message != self.error
            self.error = message
            if changed:
                with self._lock:
                    self.version += 1
                    self.snapshot = json.dumps({"version": self.version, "error": message}).encode()
            return changed
        html = self.render(data)
        with self._lock:
            self.version += 1
            self._fingerprint = fingerprint
            self._built = time.monotonic()
            self.snapshot = json.dumps(
                {"version": self.version, "generated_at": time.time(), "html": html,
                 "data": data, "error": None}, default=str,
            ).encode()  # fmt: skip
        return True

    def start(self) -> None:
        """Build the first snapshot and start polling in a daemon thread."""
        self.refresh(force=True)
        self._thread = threading.Thread(target=self._run, name="aipowertools-dashboard",
                                        daemon=True)  # fmt: skip
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.refresh()

    def stop(self) -> None:
        """Stop polling and close the store connections."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._tracker is not None:
            self._tracker.close()
        if self._sink:
            self._sink.close()

    def search(self, text: str | None, level: str | None, limit: int = 50) -> list[dict[str, Any]]:
        """Log events matching words and a lowest level, newest first."""
        from aipowertools.callbacks._search import levels_from

        self._open()
        if not self._sink:
            return []
        hits = self._sink.search(text=text or None, levels=levels_from(level or None),
                                 event_type=None, kind=None, start=None, end=None,
                                 filters=None, after_id=None, limit=limit,
                                 newest_first=True)  # fmt: skip
        return [event for _id, event in hits]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _asset(name: str) -> bytes:
    return resources.files("aipowertools.console").joinpath("_static").joinpath(name).read_bytes()


def create_app(state: DashboardState, *, token: str | None = None) -> Any:
    """The Starlette application of the dashboard (``state`` must be started)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    def authorized(request: Request) -> bool:
        if token is None:
            return True
        given = request.query_params.get("token") or ""
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            given = header[7:]
        return hmac.compare_digest(given.encode(), token.encode())

    def guard(handler: Any) -> Any:
        async def wrapped(request: Request) -> Response:
            if not authorized(request):
                return JSONResponse({"error": "a valid token is required"}, status_code=401)
            result: Response = await handler(request)
            return result

        return wrapped

    async def page(request: Request) -> Response:
        body = _asset("dashboard.html")
        if token is not None:  # the page's own assets carry the token too
            query = ("?token=" + quote(token, safe="")).encode()
            body = body.replace(b'"dashboard.css"', b'"dashboard.css' + query + b'"')
            body = body.replace(b'"dashboard.js"', b'"dashboard.js' + query + b'"')
        return Response(body, media_type="text/html; charset=utf-8")

    async def script(request: Request) -> Response:
        return Response(_asset("dashboard.js"), media_type="text/javascript; charset=utf-8")

    async def style(request: Request) -> Response:
        return Response(_asset("dashboard.css"), media_type="text/css; charset=utf-8")

    async def snapshot(request: Request) -> Response:
        return Response(state.snapshot, media_type="application/json",
                        headers={"cache-control": "no-store"})  # fmt: skip

    async def search(request: Request) -> Response:
        from aipowertools.core.errors import ConfigurationError

        text = request.query_params.get("q")
        level = request.query_params.get("level")
        try:
            events = await asyncio.to_thread(state.search, text, level)
        except ConfigurationError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"events": json.loads(json.dumps(events, default=str))})

    async def events(request: Request) -> Response:
        async def stream() -> AsyncIterator[str]:
            sent = -1
            idle = 0.0
            yield "retry: 1000\n\n"
            while not await request.is_disconnected():
                if state.version != sent:
                    sent = state.version
                    idle = 0.0
                    yield f"event: update\ndata: {json.dumps({'version': sent})}\n\n"
                await asyncio.sleep(0.2)
                idle += 0.2
                if idle >= KEEPALIVE_S:
                    idle = 0.0
                    yield ": keep-alive\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"cache-control": "no-store"})  # fmt: skip

    async def favicon(request: Request) -> Response:
        return Response(status_code=204)

    routes = [
        Route("/", guard(page)),
        Route("/dashboard.js", guard(script)),
        Route("/dashboard.css", guard(style)),
        Route("/api/snapshot", guard(snapshot)),
        Route("/api/search", guard(search)),
        Route("/api/events", guard(events)),
        Route("/favicon.ico", favicon),
    ]
    return Starlette(routes=routes)


def serve_dashboard(
    stores: Stores | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8470,
    token: str | None = None,
    since_s: float = 30 * 86400,
    budget_usd: float | None = None,
) -> None:
    """Serve the dashboard until interrupted (``since_s``: the range shown, in seconds).

    Raises:
        ValueError: ``host`` is not loopback and no ``token`` was given.
    """
    import uvicorn

    if not _is_loopback(host) and not token:
        raise ValueError(
            f"binding {host} exposes your spend and logs to the network: pass --token SECRET "
            "(or AIPOWERTOOLS_DASHBOARD_TOKEN), or bind 127.0.0.1"
        )
    state = DashboardState(stores or Stores.resolve(), since_s=since_s, budget_usd=budget_usd)
    state.start()
    shown = f"http://{host if ':' not in host else f'[{host}]'}:{port}/"
    print(f"dashboard on {shown}{'?token=...' if token else ''} (Ctrl-C stops)", flush=True)
    try:
        uvicorn.run(create_app(state, token=token), host=host, port=port, log_level="warning")
    finally:
        state.stop()

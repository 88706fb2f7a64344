"""The dashboard: its state follows the stores, its API answers, its token is checked."""

from __future__ import annotations

import time

import pytest
from starlette.testclient import TestClient

from aipowertools.console import Stores, create_app, serve_dashboard
from aipowertools.console._dashboard import DashboardState, _is_loopback
from aipowertools.core import CostTracker, Usage

from .conftest import Seeded


@pytest.fixture
def state(seeded: Seeded) -> DashboardState:
    state = DashboardState(Stores.resolve(), budget_usd=1.0, poll_s=3600)
    state.refresh(force=True)
    yield state
    state.stop()


def test_snapshot_holds_the_store_numbers(state: DashboardState, seeded: Seeded) -> None:
    client = TestClient(create_app(state))
    snap = client.get("/api/snapshot").json()
    summary = snap["data"]["summary"]
    assert summary["total_usd"] == pytest.approx(seeded.total_usd)
    assert summary["calls"] == seeded.calls
    by_model = {r["key"]: r["cost_usd"] for r in summary["breakdowns"]["model"]}
    assert by_model == pytest.approx(seeded.by_model)
    assert snap["data"]["audit"]["ok"] is True
    assert snap["data"]["recent_errors"][0]["event"] == "provider_error"
    assert 'id="chart-model"' in snap["html"]["models"]
    assert "Budget left this month" in snap["html"]["figures"]
    assert "anthropic/claude-sonnet" in snap["html"]["deployments"]  # called a minute ago
    page = client.get("/")
    assert page.status_code == 200
    assert '<script src="dashboard.js">' in page.text
    assert "EventSource" in client.get("/dashboard.js").text
    assert client.get("/dashboard.css").headers["content-type"].startswith("text/css")
    assert client.get("/favicon.ico").status_code == 204


def test_a_new_record_bumps_the_version_once(state: DashboardState, seeded: Seeded) -> None:
    version = state.version
    assert state.refresh() is False  # nothing changed: no rebuild
    assert state.version == version
    with CostTracker(store=f"sqlite:///{seeded.home / 'ledger.db'}") as tracker:
        tracker.record(model="gpt-4o", usage=Usage(input_tokens=10, output_tokens=5),
                       cost_usd=1.5, request_id="new-one", user="cy")  # fmt: skip
    assert state.refresh() is True
    assert state.version == version + 1
    client = TestClient(create_app(state))
    summary = client.get("/api/snapshot").json()["data"]["summary"]
    assert summary["total_usd"] == pytest.approx(seeded.total_usd + 1.5)
    assert {r["key"] for r in summary["breakdowns"]["user"]} == {"ann", "bob", "cy"}


def test_a_new_log_event_bumps_the_version(state: DashboardState, seeded: Seeded) -> None:
    from aipowertools.callbacks import StructuredLogger

    version = state.version
    log = StructuredLogger("late", store=f"sqlite:///{seeded.home / 'events.db'}")
    log.error("late_failure", error="disk full")
    log.flush()
    assert state.refresh() is True
    assert state.version == version + 1
    assert "late_failure" in state.snapshot.decode()


def test_search_finds_a_log_line(state: DashboardState) -> None:
    client = TestClient(create_app(state))
    hits = client.get("/api/search", params={"q": "rate limit"}).json()["events"]
    assert [e["event"] for e in hits] == ["llm_call"]
    errors = client.get("/api/search", params={"level": "error"}).json()["events"]
    assert [e["event"] for e in errors] == ["provider_error"]
    bad = client.get("/api/search", params={"level": "loud"})
    assert bad.status_code == 400
    assert "unknown level" in bad.json()["error"]


def test_every_request_needs_the_token(state: DashboardState) -> None:
    client = TestClient(create_app(state, token="s3cret"))
    for path in ("/", "/dashboard.js", "/api/snapshot", "/api/search", "/api/events"):
        assert client.get(path).status_code == 401, path
        assert client.get(path + "?token=wrong").status_code == 401, path
    assert client.get("/api/snapshot?token=s3cret").status_code == 200
    assert client.get("/", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_a_store_that_goes_down_is_said_on_the_page(seeded: Seeded) -> None:
    state = DashboardState(Stores.resolve("postgresql://postgres@127.0.0.1:9/x"), poll_s=3600)
    try:
        assert state.refresh(force=True) is True
        snap = TestClient(create_app(state)).get("/api/snapshot").json()
        assert snap["error"].startswith("store unavailable:")
        assert state.refresh(force=True) is False  # the same error again: no new version
    finally:
        state.stop()


def test_events_stream_announces_versions(state: DashboardState) -> None:
    import asyncio

    app = create_app(state)
    received: list[bytes] = []

    async def run() -> None:
        messages = [{"type": "http.request", "body": b"", "more_body": False}]

        async def receive() -> dict[str, object]:
            if messages:
                return messages.pop()
            await asyncio.sleep(0.3)
            return {"type": "http.disconnect"}

        async def send(message: dict[str, object]) -> None:
            if message["type"] == "http.response.body":
                received.append(message.get("body", b""))  # type: ignore[arg-type]

        scope = {"type": "http", "method": "GET", "path": "/api/events", "headers": [],
                 "query_string": b"", "root_path": "", "scheme": "http",
                 "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1)}  # fmt: skip
        await app(scope, receive, send)

    asyncio.run(run())
    text = b"".join(received).decode()
    assert "retry: 1000" in text
    assert f'event: update\ndata: {{"version": {state.version}}}' in text


def test_binding_beyond_loopback_needs_a_token(seeded: Seeded) -> None:
    with pytest.raises(ValueError, match="pass --token"):
        serve_dashboard(Stores.resolve(), host="0.0.0.0")
    assert _is_loopback("127.0.0.1")
    assert _is_loopback("::1")
    assert _is_loopback("localhost")
    assert not _is_loopback("192.168.1.5")
    assert not _is_loopback("example.org")


def test_serve_dashboard_runs_uvicorn(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    seen: dict[str, object] = {}

    def fake_run(app: object, **kw: object) -> None:
        seen.update(kw)
        seen["app"] = app

    monkeypatch.setattr(uvicorn, "run", fake_run)
    serve_dashboard(Stores.resolve(), host="::1", port=8555, token=None, budget_usd=3.0)
    assert seen["host"] == "::1"
    assert seen["port"] == 8555
    assert seen["app"] is not None


def test_state_fingerprint_is_cheap_and_follows_the_last_hour(state: DashboardState) -> None:
    calls, _spend, newest = state.fingerprint()
    assert calls >= 1  # the seeded call a minute ago
    assert newest > 0
    assert time.time() > 0

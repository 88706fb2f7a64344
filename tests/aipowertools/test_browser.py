"""The dashboard and the HTML report in a real browser (Debian's headless chromium over the
DevTools protocol): no console errors, the charts hold the store's numbers, a new ledger record
shows up on the page by itself, the search box finds a log line, a wrong token gets 401."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aipowertools.console import Stores, create_app, generate_report
from aipowertools.console._dashboard import DashboardState
from aipowertools.core import CostTracker, Usage

from .cdp import Page, browser, find_chromium
from .conftest import Seeded

CHROMIUM = find_chromium()
if CHROMIUM is None and os.environ.get("CI"):  # pragma: no cover - .ci/run installs it
    raise RuntimeError("chromium is required under CI=true: apt-get install -y chromium")
pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install chromium)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """The dashboard app on uvicorn in a thread of this process."""

    def __init__(self, state: DashboardState, token: str | None = None) -> None:
        import uvicorn

        self.port = _free_port()
        config = uvicorn.Config(create_app(state, token=token), host="127.0.0.1",
                                port=self.port, log_level="warning")  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        return f"http://127.0.0.1:{self.port}/"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def page() -> Iterator[Page]:
    assert CHROMIUM is not None
    with browser(CHROMIUM) as page:
        yield page


@pytest.fixture
def state(seeded: Seeded) -> Iterator[DashboardState]:
    state = DashboardState(Stores.resolve(), budget_usd=1.0, poll_s=0.2)
    state.start()
    yield state
    state.stop()


CHART_VALUES = """Object.fromEntries([...document.querySelectorAll('#chart-model .bar')]
  .map(b => [b.dataset.label, Number(b.dataset.value)]))"""


def test_dashboard_live_in_the_browser(page: Page, state: DashboardState, seeded: Seeded) -> None:
    with Server(state) as url:
        page.navigate(url)
        page.wait_for("Number(document.body.dataset.version) >= 1")
        # the charts hold the store's numbers
        assert page.eval(CHART_VALUES) == pytest.approx(seeded.by_model, rel=1e-5)
        assert page.eval("document.querySelector('#fig-calls .value').textContent") == "24"
        days = page.eval("document.querySelectorAll('#chart-spend-day .point').length")
        assert days == 31  # the 30-day range touches 31 UTC days
        assert "intact" in page.eval("document.querySelector('#fig-audit').textContent")
        assert "provider_error" in page.eval("document.querySelector('#recent-errors').textContent")
        # a new ledger record appears without a reload, in the very next update
        updates = page.eval("Number(document.body.dataset.updates)")
        version = state.version
        with CostTracker(store=f"sqlite:///{seeded.home / 'ledger.db'}") as tracker:
            tracker.record(model="gpt-4o", usage=Usage(input_tokens=10, output_tokens=5),
                           cost_usd=2.5, request_id="browser-new")  # fmt: skip
        written = time.monotonic()
        page.wait_for("[...document.querySelectorAll('#chart-model .bar')]"
                      ".some(b => b.dataset.label === 'gpt-4o')", timeout=30)  # fmt: skip
        seen_after = time.monotonic() - written
        assert page.eval(CHART_VALUES)["gpt-4o"] == 2.5
        assert page.eval("Number(document.body.dataset.updates)") == updates + 1
        assert page.eval("Number(document.body.dataset.version)") == version + 1
        print(f"new record on the page after {seen_after:.2f} s")  # the figure is in the bench
        # the search box finds a log line
        page.eval("document.getElementById('search-text').value = 'rate limit'")
        page.eval("document.getElementById('search-form').requestSubmit()")
        page.wait_for("document.getElementById('search-results').dataset.count === '1'")
        assert "llm_call" in page.eval("document.getElementById('search-results').textContent")
        assert page.errors() == []


def test_a_wrong_token_gets_401_in_the_browser(page: Page, state: DashboardState) -> None:
    with Server(state, token="right-token") as url:
        page.navigate(url + "?token=wrong-token")
        assert page.statuses()[url + "?token=wrong-token"] == 401
        assert "a valid token is required" in page.eval("document.body.textContent")
        page.events.clear()
        page.navigate(url + "?token=right-token")
        page.wait_for("Number(document.body.dataset.version) >= 1")
        assert page.eval("document.querySelectorAll('#chart-model .bar').length") == 2
        assert page.errors() == []


def test_html_report_opens_clean(page: Page, seeded: Seeded, tmp_path: Path) -> None:
    path = generate_report("html", tmp_path / "report.html")
    page.navigate(Path(path).as_uri())
    assert page.eval("document.title") == "AI PowerTools report"
    assert page.eval(CHART_VALUES) == pytest.approx(seeded.by_model, rel=1e-5)
    width = page.eval("document.querySelector('#chart-spend-day').getBoundingClientRect().width")
    assert width > 100  # the SVG is drawn, not an empty box
    assert page.errors() == []

"""Make the docs' screenshots of the dashboard and the HTML report from the simulator's data.

Run by ``nox -s screenshots``: the demo records a routed conversation on the built-in
simulator, then more calls are made to the simulator (several users and models) and recorded
with the usage it returned, spread over the last two weeks so that the charts have a history.
Headless chromium (Debian's ``chromium``) takes the pictures into ``docs/images/``.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from rich.console import Console

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "aipowertools"))

from cdp import browser, find_chromium  # noqa: E402


def record_history(home: Path) -> None:
    from aipowertools.callbacks import StructuredLogger
    from aipowertools.core import CostTracker, Usage
    from aipowertools.testing import SimModel, Simulator

    tracker = CostTracker(store=f"sqlite:///{home / 'ledger.db'}")
    log = StructuredLogger("app", store=f"sqlite:///{home / 'events.db'}")
    models = ["gpt-4o-mini", "gpt-4o", "claude-sonnet"]
    users = ["ann", "bob", "cy", "dee"]
    now = time.time()
    with Simulator(
        models=[SimModel(m, reply="An answer from the simulator.") for m in models]
    ) as sim:
        for i in range(84):
            model = models[i % 3 if i % 5 else 0]
            reply = httpx.post(
                sim.base_url("openai", model) + "/chat/completions",
                json={"model": model, "messages": [{"role": "user", "content": "q " * (50 + i)}]},
                headers={"Authorization": "Bearer sk-sim"}, timeout=30,
            ).json()  # fmt: skip
            usage = reply["usage"]
            tracker.record(
                model=model, user=users[i % 4], task=("chat", "summarize", "code")[i % 3],
                usage=Usage(input_tokens=usage["prompt_tokens"],
                            output_tokens=usage["completion_tokens"] * (1 + i % 7)),
                latency_ms=200.0 + 37 * (i % 11), ts=now - i * 4 * 3600 - 120,
                status="error" if i % 13 == 12 else "ok",
            )  # fmt: skip
    log.warning("retry_scheduled", reason="rate limited by provider", deployment="gpt-4o")
    log.error("provider_error", error="upstream timeout after 30 s", deployment="claude-sonnet")
    log.audit("budget_changed", by="ops", limit_usd=5)
    log.flush()
    tracker.close()


def main() -> int:
    chromium = find_chromium()
    if chromium is None:
        print("screenshots need chromium: apt-get install -y chromium", file=sys.stderr)
        return 1
    from aipowertools.cli._demo import run_demo
    from aipowertools.console import Stores, create_app, generate_report
    from aipowertools.console._dashboard import DashboardState

    images = ROOT / "docs" / "images"
    images.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="aipt-shots-") as tmp:
        home = Path(tmp) / "demo"
        os.environ["AIPOWERTOOLS_HOME"] = str(home)
        for key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "MISTRAL_API_KEY"):
            os.environ.pop(key, None)
        run_demo(Console(file=io.StringIO()), force_simulator=True, home=str(home))
        record_history(home)
        report = generate_report("html", Path(tmp) / "report.html", budget_usd=0.05)
        import uvicorn

        state = DashboardState(Stores.resolve(), budget_usd=0.05)
        state.start()
        server = uvicorn.Server(uvicorn.Config(create_app(state), host="127.0.0.1", port=0,
                                               log_level="warning"))  # fmt: skip
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        try:
            with browser(chromium) as page:
                page.navigate(f"http://127.0.0.1:{port}/")
                page.wait_for("Number(document.body.dataset.version) >= 1")
                page.eval("document.getElementById('search-text').value = 'rate limited'")
                page.eval("document.getElementById('search-form').requestSubmit()")
                page.wait_for("document.getElementById('search-results').dataset.count")
                page.screenshot(images / "dashboard.png")
                page.navigate(Path(report).as_uri())
                page.screenshot(images / "report.png")
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            state.stop()
    print(f"wrote {images / 'dashboard.png'} and {images / 'report.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

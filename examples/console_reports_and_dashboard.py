"""Look at what the library recorded: the command line, an HTML / PDF report, the dashboard.

Runs offline against the provider simulator: ``python examples/console_reports_and_dashboard.py``.
Calls go to the simulator over HTTP, their usage is priced and recorded in a ledger, a
structured logger writes events with an audit chain; then the same stores are read the way an
operator would: ``aipowertools costs`` / ``logs search`` / ``logs verify``, a report, and one
request to the live dashboard's data endpoint.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import httpx
from typer.testing import CliRunner

from aipowertools.callbacks import StructuredLogger
from aipowertools.cli import app
from aipowertools.console import Stores, create_app, generate_report
from aipowertools.console._dashboard import DashboardState
from aipowertools.core import CostTracker, Usage
from aipowertools.testing import SimModel, Simulator


def record(home: Path) -> None:
    tracker = CostTracker(store=f"sqlite:///{home / 'ledger.db'}")
    log = StructuredLogger("example", store=f"sqlite:///{home / 'events.db'}")
    models = [
        SimModel("gpt-4o-mini", reply="Paris."),
        SimModel("gpt-4o", reply="The capital of France is Paris."),
    ]
    question = [{"role": "user", "content": "Capital of France?"}]
    with Simulator(models=models) as sim:
        for i, user in enumerate(["ann", "bob", "ann", "cy"]):
            model = "gpt-4o" if i % 2 else "gpt-4o-mini"
            reply = httpx.post(
                sim.base_url("openai", model) + "/chat/completions",
                json={"model": model, "messages": question},
                headers={"Authorization": "Bearer sk-sim"}, timeout=30,
            ).json()  # fmt: skip
            usage = reply["usage"]
            tracker.record(model=model, user=user, latency_ms=120.0 + i,
                           usage=Usage(input_tokens=usage["prompt_tokens"],
                                       output_tokens=usage["completion_tokens"]))  # fmt: skip
            log.info(
                "llm_call",
                model=model,
                user_id=user,
                message=reply["choices"][0]["message"]["content"],
            )
    log.warning("retry_scheduled", reason="rate limited by provider")
    log.audit("budget_changed", by="ops", limit_usd=10)
    log.flush()
    tracker.close()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        record(home)
        cli = CliRunner()
        # 1. The command line, as `aipowertools costs --home DIR --by user` prints it (piped).
        print(cli.invoke(app, ["costs", "--home", str(home), "--by", "user"]).output)
        # 2. Free-text search on the log store's own index, and the audit chain.
        print(cli.invoke(app, ["logs", "search", "rate limited", "--home", str(home)]).output)
        print(cli.invoke(app, ["logs", "verify", "--home", str(home)]).output)
        # 3. Reports: one self-contained HTML file, and a PDF of the same content.
        stores = Stores.resolve(home=home)
        html = generate_report("html", home / "report.html", stores=stores)
        pdf = generate_report("pdf", home / "report.pdf", stores=stores, budget_usd=10.0)
        print(
            f"report: {Path(html).stat().st_size:,} bytes of HTML, "
            f"{Path(pdf).stat().st_size:,} of PDF"
        )
        # 4. The dashboard's data, as the page reads it (`aipowertools dashboard --home DIR`).
        state = DashboardState(stores, poll_s=3600)
        state.refresh(force=True)
        from starlette.testclient import TestClient

        snapshot = TestClient(create_app(state)).get("/api/snapshot").json()
        summary = snapshot["data"]["summary"]
        print(f"dashboard: ${summary['total_usd']:.6f} over {summary['calls']} calls")
        state.stop()


if __name__ == "__main__":
    main()

"""The commands and the dashboard on a PostgreSQL store shared by several writers."""

from __future__ import annotations

import json
import re
import time

from typer.testing import CliRunner

from aipowertools.callbacks import StructuredLogger
from aipowertools.cli import app
from aipowertools.console import Stores
from aipowertools.console._dashboard import DashboardState
from aipowertools.core import CostTracker, Usage

runner = CliRunner()


def test_costs_logs_and_dashboard_on_postgres(postgres_url: str) -> None:
    now = time.time()
    with CostTracker(store=postgres_url) as a, CostTracker(store=postgres_url) as b:
        for i in range(6):
            (a if i % 2 else b).record(
                model="gpt-4o-mini", usage=Usage(input_tokens=10, output_tokens=5),
                cost_usd=0.5, user=f"u{i % 3}", ts=now - i * 3600, latency_ms=100.0,
            )  # fmt: skip
    log = StructuredLogger("pg-app", store=postgres_url)
    log.warning("retry", reason="throttled by upstream")
    log.audit("key_rotated", by="ops")
    log.flush()
    costs = runner.invoke(app, ["costs", "--store", postgres_url, "--json", "--by", "user"])
    assert costs.exit_code == 0, costs.output
    data = json.loads(costs.output)
    assert data["calls"] == 6
    assert data["total_usd"] == 3.0
    found = runner.invoke(app, ["logs", "search", "throttled", "--store", postgres_url, "--json"])
    assert [e["event"] for e in json.loads(found.output)] == ["retry"]
    verified = runner.invoke(app, ["logs", "verify", "--store", postgres_url])
    assert verified.exit_code == 0, verified.output
    # The database is shared with the session's other PostgreSQL tests, which audit too.
    assert re.search(r"intact: [1-9]\d* records", verified.output), verified.output
    state = DashboardState(Stores.resolve(postgres_url), poll_s=3600)
    try:
        assert state.refresh(force=True)
        snap = json.loads(state.snapshot)
        assert snap["data"]["summary"]["total_usd"] == 3.0
        assert snap["data"]["audit"]["ok"] is True
    finally:
        state.stop()

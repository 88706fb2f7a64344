"""Open circuits shared through Redis show up in ``monitor``, reports and the dashboard."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aipowertools.cli import app
from aipowertools.console import Stores, report_data
from aipowertools.core import CostTracker, Usage
from aipowertools.core.stores import redis_client


def test_open_circuits_from_redis(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIPOWERTOOLS_HOME", str(tmp_path))
    monkeypatch.delenv("AIPOWERTOOLS_LOG_STORE", raising=False)
    client = redis_client(redis_url)
    now = time.time()
    client.hset("aipowertools:circuit:{openai/gpt-4o}:state",
                mapping={"state": "open", "opened_at": str(now)})  # fmt: skip
    client.hset("aipowertools:circuit:{claude}:state", mapping={"state": "closed"})
    client.hset("aipowertools:circuit:{mistral}:state", mapping={"state": "half_open"})
    entry = {"until": now + 30, "reason": "5 failures", "by": "r1"}
    client.set("aipowertools:router:health:open:gpt-4o-mini", json.dumps(entry), px=60_000)
    with CostTracker(store=redis_url) as tracker:
        tracker.record(model="gpt-4o", usage=Usage(input_tokens=5, output_tokens=5),
                       cost_usd=0.25, latency_ms=90.0, status="error")  # fmt: skip
    result = CliRunner().invoke(app, ["monitor", "--store", redis_url, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    circuits = {(c["name"], c["state"], c["source"]) for c in data["open_circuits"]}
    assert circuits == {
        ("openai/gpt-4o", "open", "circuit breaker"),
        ("mistral", "half_open", "circuit breaker"),
        ("gpt-4o-mini", "open", "router"),
    }
    assert data["deployments"][0]["error_rate"] == 1.0
    table = CliRunner().invoke(app, ["monitor", "--store", redis_url])
    assert "# open circuits" in table.output
    assert "5 failures" in table.output
    assert len(report_data(Stores.resolve(redis_url))["open_circuits"]) == 3

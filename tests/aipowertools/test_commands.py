"""Every command, as a person runs it: through typer's runner and through a real subprocess
(stdout is a pipe in both, so output is plain lines), against a data directory that the
library itself wrote."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aipowertools.cli import app

from .conftest import Seeded

runner = CliRunner()
# Real subprocesses import the suite (litellm with the simulator) and, under `nox -s tests`,
# run under coverage: on a loaded machine one can take tens of seconds to start.
pytestmark = pytest.mark.timeout(240)


def cli(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output + repr(result.exception)
    return result.output


def flat(text: str) -> str:
    """Usage errors come in a box that wraps: the words, one space apart."""
    return " ".join(text.replace("│", " ").split())


def sub(seeded: Seeded, *args: str, code: int = 0, env: dict[str, str] | None = None) -> str:
    environ = {**os.environ, "AIPOWERTOOLS_HOME": str(seeded.home), "COLUMNS": "80", **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "aipowertools.cli", *args],
        capture_output=True, text=True, env=environ, timeout=180,
    )  # fmt: skip
    assert proc.returncode == code, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


# ----------------------------------------------------------------------------- costs


def test_costs_totals_and_breakdowns(seeded: Seeded) -> None:
    out = cli("costs", "--since", "7d", "--by", "provider,model,user,task,tag,day")
    assert f"over {seeded.calls} calls ({seeded.errors} failed)" in out
    assert f"${seeded.total_usd:.6f}" in out
    lines = out.splitlines()
    model_rows = {ln.split("\t")[0]: float(ln.split("\t")[2]) for ln in lines
                  if ln.startswith(("gpt-4o-mini\t", "claude-sonnet\t"))}  # fmt: skip
    assert model_rows == pytest.approx(seeded.by_model)
    tag = next(ln for ln in lines if ln.startswith("proj\t"))
    assert float(tag.split("\t")[1]) == pytest.approx(seeded.total_usd)
    assert "Forecast for" in out
    assert "Saved by the response cache: $0.000000." in out


def test_costs_json_is_machine_readable(seeded: Seeded) -> None:
    data = json.loads(cli("costs", "--json", "--by", "user", "--budget", "1"))
    assert data["total_usd"] == pytest.approx(seeded.total_usd)
    assert {r["key"]: r["cost_usd"] for r in data["breakdowns"]["user"]} == pytest.approx(
        seeded.by_user
    )
    assert data["forecast"]["limit_usd"] == 1
    assert data["budget"]["remaining_usd"] <= 1


def test_costs_range_excludes_older_calls(seeded: Seeded) -> None:
    data = json.loads(cli("costs", "--json", "--since", "25h", "--by", "day"))
    # calls every 6 h, the newest a minute ago: 0, 6, 12, 18, 24 h -> 5 calls
    assert data["calls"] == 5
    assert data["total_usd"] == pytest.approx(sum(0.001 * (i + 1) for i in range(5)))


def test_costs_reads_cache_savings_from_the_ledger(seeded: Seeded) -> None:
    from aipowertools.core import CostTracker

    with CostTracker(store=f"sqlite:///{seeded.home / 'ledger.db'}") as tracker:
        # a response-cache hit: a $0 call that records what it saved
        tracker.record(model="gpt-4o", cost_usd=0.0, saved_usd=0.25, tags=["cache:exact"])
    assert json.loads(cli("costs", "--json"))["saved_usd"] == 0.25
    assert "Saved by the response cache: $0.250000." in cli("costs")


def test_costs_usage_errors_say_what_to_do(seeded: Seeded) -> None:
    out = cli("costs", "--since", "yesterday", code=2)
    assert "30m, 24h, 7d" in flat(out)
    assert "cannot break costs down by colour" in cli("costs", "--by", "colour", code=2)
    assert "must be after --since" in flat(
        cli("costs", "--since", "1d", "--until", "2020-01-01", code=2)
    )


def test_costs_on_a_store_that_is_down_is_one_line(seeded: Seeded) -> None:
    out = cli("costs", "--store", "postgresql://postgres@127.0.0.1:9/nowhere", code=2)
    assert out.startswith("aipowertools: store unavailable:")
    assert len(out.strip().splitlines()) == 1
    assert "Traceback" not in out


def test_costs_subprocess(seeded: Seeded) -> None:
    out = sub(seeded, "costs", "--since", "7d")
    assert f"${seeded.total_usd:.6f}" in out
    out = sub(seeded, "costs", "--store", "redis://127.0.0.1:9/0", code=2)
    assert out.startswith("aipowertools: store unavailable")
    assert "Traceback" not in out


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_costs_export(seeded: Seeded, tmp_path: Path, fmt: str) -> None:
    target = tmp_path / f"ledger.{fmt}"
    cli("costs", "export", "--format", fmt, "-o", str(target), "--since", "7d")
    text = target.read_text()
    rows = list(csv.DictReader(io.StringIO(text))) if fmt == "csv" else json.loads(text)
    assert len(rows) == seeded.calls
    assert sum(float(r["cost_usd"]) for r in rows) == pytest.approx(seeded.total_usd)
    printed = cli("costs", "export", "--format", fmt)
    assert "req-00" in printed
    assert "use csv or json" in cli("costs", "export", "--format", "xml", code=2)


def test_costs_export_subprocess(seeded: Seeded) -> None:
    out = sub(seeded, "costs", "export", "--format", "csv")
    assert out.count("req-") == seeded.calls


# ----------------------------------------------------------------------------- logs


def test_logs_query_filters(seeded: Seeded) -> None:
    out = cli("logs")
    assert "llm_call" in out
    assert "provider_error" in out
    assert "budget_changed" in out
    assert "provider_error" in cli("logs", "--level", "error")
    assert "llm_call" not in cli("logs", "--level", "warning")
    assert "retry_scheduled" in cli("logs", "--type", "retry_scheduled")
    only = json.loads(cli("logs", "--field", "attempt=2", "--json"))
    assert [e["event"] for e in only] == ["retry_scheduled"]
    assert json.loads(cli("logs", "--kind", "audit", "--json"))[0]["by"] == "ann"
    assert "is not KEY=VALUE" in cli("logs", "--field", "nonsense", code=2)
    assert "unknown level" in cli("logs", "--level", "loud", code=2)


def test_logs_free_text_search_uses_the_index(seeded: Seeded) -> None:
    hits = json.loads(cli("logs", "search", "rate limit", "--json"))
    assert [e["event"] for e in hits] == ["llm_call"]
    assert (
        json.loads(cli("logs", "--search", "upstream", "--json", "--level", "error"))[0]["event"]
        == "provider_error"
    )
    assert json.loads(cli("logs", "search", "nothing-like-this", "--json")) == []
    # the index is there: SQLite's FTS5 table, filled by a trigger
    with sqlite3.connect(seeded.home / "events.db") as db:
        count = db.execute("SELECT count(*) FROM events_fts WHERE events_fts MATCH 'timeout'")
        assert count.fetchone()[0] == 1


def test_logs_subprocess(seeded: Seeded) -> None:
    out = sub(seeded, "logs", "search", "throttled")
    assert "retry_scheduled" in out
    assert "llm_call" not in out


def test_logs_tail_and_follow(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    out = cli("logs", "tail", "-n", "2")
    assert out.count("\n") == 2
    assert "budget_changed" in out

    from aipowertools.callbacks import StructuredLogger
    from aipowertools.cli import _logs

    waits: list[float] = []

    def idle(seconds: float) -> None:
        # The first idle poll of `tail -f`: another process writes an event meanwhile.
        waits.append(seconds)
        if len(waits) == 1:
            log = StructuredLogger("late", store=f"sqlite:///{seeded.home / 'events.db'}")
            log.info("arrived_later", n=1)
            log.flush()

    monkeypatch.setattr(_logs, "_idle", idle)
    out = cli("logs", "tail", "-f", "-n", "0", "--max-events", "1", "--interval", "0.05")
    assert out.splitlines()[-1].split()[2] == "arrived_later"
    assert waits == [0.05]


def test_logs_tail_subprocess(seeded: Seeded) -> None:
    with _child(seeded, "logs", "tail", "-f", "-n", "1", "--json", stop=signal.SIGINT) as child:
        assert json.loads(child.readline())["event"] == "budget_changed"
        from aipowertools.callbacks import StructuredLogger

        log = StructuredLogger("late", store=f"sqlite:///{seeded.home / 'events.db'}")
        log.warning("followed", n=2)
        log.flush()
        assert json.loads(child.readline())["event"] == "followed"
    assert child.returncode == 0


class _Child:
    """A CLI subprocess whose stdout lines are read on a thread, so a child that never prints
    (or never exits) fails its test within a bounded time instead of hanging the suite."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.returncode: int | None = None
        self._lines: queue.Queue[str] = queue.Queue()
        assert proc.stdout is not None
        stdout = proc.stdout
        threading.Thread(target=lambda: [self._lines.put(ln) for ln in stdout], daemon=True).start()

    def readline(self, timeout: float = 60.0) -> str:
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the child printed nothing within {timeout} s") from None


@contextlib.contextmanager
def _child(seeded: Seeded, *args: str, stop: int = signal.SIGTERM) -> Iterator[_Child]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "aipowertools.cli", *args],
        stdout=subprocess.PIPE, text=True,
        env={**os.environ, "AIPOWERTOOLS_HOME": str(seeded.home)},
    )  # fmt: skip
    child = _Child(proc)
    try:
        yield child
    finally:
        proc.send_signal(stop)
        try:
            child.returncode = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
            raise
        finally:
            assert proc.stdout is not None
            proc.stdout.close()


def test_logs_export(seeded: Seeded, tmp_path: Path) -> None:
    lines = cli("logs", "export").splitlines()
    assert [json.loads(ln)["event"] for ln in lines] == [
        "llm_call", "retry_scheduled", "provider_error", "budget_changed"]  # fmt: skip
    target = tmp_path / "events.csv"
    cli("logs", "export", "--format", "csv", "-o", str(target), "--level", "warning")
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert [r["event"] for r in rows] == ["retry_scheduled", "provider_error"]
    assert json.loads(rows[0]["fields"])["reason"] == "throttled by upstream"
    assert "use json or csv" in cli("logs", "export", "--format", "xml", code=2)
    assert sub(seeded, "logs", "export").count("\n") == 4


def test_logs_verify_intact_and_broken(seeded: Seeded) -> None:
    assert "audit chain intact: 1 records" in cli("logs", "verify")
    assert json.loads(cli("logs", "verify", "--json"))["ok"] is True
    assert "audit chain intact" in sub(seeded, "logs", "verify")
    with sqlite3.connect(seeded.home / "events.db") as db:
        db.execute("UPDATE audit SET payload = replace(payload, 'ann', 'eve')")
    out = cli("logs", "verify", code=1)
    assert "BROKEN at record 1" in out
    assert '"by": "eve"' in out
    assert json.loads(cli("logs", "verify", "--json", code=1))["first_bad_seq"] == 1
    assert "BROKEN at record 1" in sub(seeded, "logs", "verify", code=1)


def test_logs_on_a_store_that_cannot_be_queried(seeded: Seeded) -> None:
    out = cli("logs", "--log-store", "redis://127.0.0.1:6379/0", code=2)
    assert "cannot be queried" in out
    assert len(out.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- sessions


def test_sessions_list_show_export(seeded: Seeded) -> None:
    out = cli("sessions", "list")
    assert "conv-1\t1\t1\t2\t" in out
    assert "conv-2\t1\t0\t0\t" in out
    shown = cli("sessions", "show", "conv-1")
    assert "history: list of 2 items" in shown
    assert '"content": "hello"' in shown
    assert json.loads(cli("sessions", "show", "conv-1", "--json"))["user"] == {"id": 7}
    exported = json.loads(cli("sessions", "export"))
    assert exported["conv-2"] == {"draft": "unsent"}
    assert "no live session 'nope'" in cli("sessions", "show", "nope", code=1)
    assert json.loads(cli("sessions", "list", "--json"))[0]["items"] == 2


def test_sessions_backup_restore_cleanup(seeded: Seeded, tmp_path: Path) -> None:
    from aipowertools.sessions import Session

    backups = tmp_path / "backups"
    assert "backed up 2 sessions" in cli("sessions", "backup", str(backups))
    store = f"diskcache://{seeded.home / 'sessions'}"
    Session("conv-1", store=store).append("history", {"role": "user", "content": "lost?"})
    assert "restored 2 sessions" in cli("sessions", "restore", str(backups))
    assert len(json.loads(cli("sessions", "show", "conv-1", "--json"))["history"]) == 2
    assert "neither a backup file" in cli("sessions", "restore", str(tmp_path / "x"), code=1)
    Session("short", store=store, ttl=0.001).set("k", 1)
    import time

    time.sleep(0.01)
    assert "removed 1 expired sessions" in cli("sessions", "cleanup")
    assert json.loads(cli("sessions", "cleanup", "--json"))["removed"] == 0


def test_sessions_subprocess(seeded: Seeded, tmp_path: Path) -> None:
    assert "conv-1" in sub(seeded, "sessions", "list")
    assert "history" in sub(seeded, "sessions", "show", "conv-1")
    assert "conv-2" in sub(seeded, "sessions", "export")
    assert "backed up 2" in sub(seeded, "sessions", "backup", str(tmp_path / "b"))
    assert "restored 2" in sub(seeded, "sessions", "restore", str(tmp_path / "b"))
    assert "removed 0" in sub(seeded, "sessions", "cleanup")


# ----------------------------------------------------------------------------- models


def test_models_list_filter_show(seeded: Seeded) -> None:
    out = cli("models", "--provider", "openai", "--capability", "tools", "--min-window", "100000")
    assert "gpt-4o-mini" in out
    assert "claude" not in out
    rows = json.loads(cli("models", "--max-cost", "0.001", "--json"))
    assert rows
    assert all(r["price_per_1k_blended"] <= 0.001 for r in rows)
    observed = json.loads(cli("models", "--max-latency", "1000", "--json"))
    assert {r["id"] for r in observed} == {"gpt-4o-mini", "claude-sonnet"}  # seen in the ledger
    shown = json.loads(cli("models", "show", "gpt-4o-mini", "--json"))
    assert shown["provider"] == "openai"
    assert shown["observed_latency_ms"] is not None
    assert "input_cost_per_token" in cli("models", "show", "gpt-4o-mini")
    assert "unknown model" in cli("models", "show", "gpt-4o-minj", code=1)
    assert "no model matches" in cli("models", "--max-cost", "0", "--provider", "openai")


def test_models_subprocess(seeded: Seeded) -> None:
    assert "gpt-4o-mini" in sub(seeded, "models", "--provider", "openai")
    assert "openai" in sub(seeded, "models", "show", "gpt-4o-mini")


# ----------------------------------------------------------------------------- monitor


def test_monitor_per_deployment(seeded: Seeded) -> None:
    data = json.loads(cli("monitor", "--window", "7d", "--json"))
    names = {d["deployment"]: d for d in data["deployments"]}
    assert set(names) == {"openai/gpt-4o-mini", "anthropic/claude-sonnet"}
    mini = names["openai/gpt-4o-mini"]  # odd i: latencies 110, 130, ..., 330 ms
    assert mini["calls"] == 12
    assert mini["latency_p50_ms"] == 210.0
    assert mini["latency_p99_ms"] == 330.0
    assert mini["errors"] == 3
    assert mini["error_rate"] == pytest.approx(0.25)
    assert data["open_circuits"] == []
    out = cli("monitor", "--window", "7d")
    assert "openai/gpt-4o-mini\t12\t25.0%\t75.0%\t210" in out
    assert "no calls recorded in the last 1s" in cli("monitor", "--window", "1s")


def test_monitor_subprocess(seeded: Seeded) -> None:
    assert "anthropic/claude-sonnet" in sub(seeded, "monitor", "--window", "7d")


# ----------------------------------------------------------------------------- doctor


def test_doctor_checks_and_never_prints_keys(
    seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value-123")
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    data = json.loads(cli("doctor", "--json"))
    assert all(c["ok"] for c in data["stores"])
    assert data["provider_keys"]["OPENAI_API_KEY"] is True
    assert data["distributions"]["aipowertools-core"]
    assert data["litellm_local_price_map"] is True
    out = cli("doctor")
    assert "sk-secret" not in out
    assert "OPENAI_API_KEY" in out
    monkeypatch.delenv("LITELLM_LOCAL_MODEL_COST_MAP")
    bad = cli("doctor", "--log-store", "postgresql://postgres@127.0.0.1:9/x", code=1)
    assert "does not answer" in bad
    assert "LITELLM_LOCAL_MODEL_COST_MAP=True" in bad


def test_doctor_subprocess(seeded: Seeded) -> None:
    out = sub(seeded, "doctor", env={"ANTHROPIC_API_KEY": "sk-ant-hidden"})
    assert "ANTHROPIC_API_KEY" in out
    assert "sk-ant-hidden" not in out


# ----------------------------------------------------------------------------- simulate


def test_simulate_serves_the_simulator(monkeypatch: pytest.MonkeyPatch) -> None:
    import functools

    from aipowertools.testing import _cli

    stop = threading.Event()
    stop.set()
    monkeypatch.setattr(_cli, "main", functools.partial(_cli.main, stop=stop))
    out = cli("simulate", "--port", "0", "--seed", "3")
    assert "simulator serving on http://127.0.0.1:" in out


def test_simulate_subprocess(seeded: Seeded) -> None:
    import httpx

    with _child(seeded, "simulate", "--port", "0") as child:
        url = child.readline().split()[-1]
        assert httpx.get(url + "/_sim/stats", timeout=10).status_code == 200


def test_simulate_on_a_taken_port_is_one_line(seeded: Seeded) -> None:
    import socket

    # In a subprocess: the simulator leaves its unbound socket to the garbage collector.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        out = sub(seeded, "simulate", "--port", str(taken.getsockname()[1]), code=1)
    assert out.startswith("aipowertools: cannot serve on 127.0.0.1:")


# ----------------------------------------------------------------------------- report


def test_report_command_html_and_pdf(seeded: Seeded, tmp_path: Path) -> None:
    html = tmp_path / "r.html"
    assert "wrote html report" in cli("report", "-o", str(html), "--since", "7d")
    assert f'data-total-usd="{seeded.total_usd:.9f}"' in html.read_text()
    pdf = tmp_path / "r.pdf"
    assert "wrote pdf report" in sub(seeded, "report", "--format", "pdf", "-o", str(pdf))
    assert pdf.read_bytes().startswith(b"%PDF")
    assert "use --format html or pdf" in cli("report", "-o", str(tmp_path / "r.doc"), code=2)


# ----------------------------------------------------------------------------- dashboard


def test_dashboard_command(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    import aipowertools.console as console

    seen: dict[str, object] = {}
    monkeypatch.setattr(console, "serve_dashboard", lambda stores, **kw: seen.update(kw))
    cli("dashboard", "--port", "9999", "--since", "2d", "--budget", "5")
    assert seen["port"] == 9999
    assert seen["budget_usd"] == 5
    assert seen["since_s"] == pytest.approx(2 * 86400, abs=5)
    monkeypatch.undo()
    monkeypatch.setenv("AIPOWERTOOLS_HOME", str(seeded.home))
    out = cli("dashboard", "--host", "0.0.0.0", code=2)
    assert "pass --token" in out


def test_dashboard_subprocess(seeded: Seeded) -> None:
    import socket
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with _child(seeded, "dashboard", "--port", str(port)) as child:
        assert f"http://127.0.0.1:{port}/" in child.readline()
        deadline = time.monotonic() + 150
        while True:
            try:
                snap = httpx.get(f"http://127.0.0.1:{port}/api/snapshot", timeout=5).json()
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the dashboard did not answer"
                time.sleep(0.1)
        assert snap["data"]["summary"]["calls"] == seeded.calls


# ----------------------------------------------------------------------------- the rest


def test_version_and_where_subprocess(seeded: Seeded) -> None:
    assert "aipowertools-core" in sub(seeded, "version")
    assert json.loads(sub(seeded, "version", "--json"))["aipowertools-router"]
    assert str(seeded.home) in sub(seeded, "where")


def test_help_lists_every_command() -> None:
    out = cli("--help")
    for name in ("costs", "logs", "sessions", "models", "monitor", "simulate", "doctor",
                 "dashboard", "report", "demo", "version", "where"):  # fmt: skip
        assert name in out

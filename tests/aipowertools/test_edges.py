"""The less travelled paths a user still meets: terminal tables, every kind of store failure,
TTFT and cache savings when recorded, empty stores, missing optional packages."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from aipowertools.cli import app
from aipowertools.cli._common import Out, store_errors
from aipowertools.console import Stores, generate_report, report_data
from aipowertools.console._stores import mask

from .conftest import Seeded

runner = CliRunner()


def cli(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output + repr(result.exception)
    return result.output


def test_a_terminal_gets_a_table(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    out = Out()
    out.table("cost by model", ["model", "cost_usd", "ok", "none"], [["gpt-4o", 0.5, True, None]])
    shown = capsys.readouterr().out
    assert "cost by model" in shown
    assert "│ gpt-4o" in shown or "┃ model" in shown
    assert "yes" in shown


@pytest.mark.parametrize(
    ("exc", "code", "text"),
    [
        (OSError("disk gone"), 2, "cannot reach the store: disk gone"),
        (
            type("OperationalError", (Exception,), {})("closed\nmore"),
            2,
            "store unavailable: closed",
        ),
    ],
)
def test_store_failures_are_one_line(exc: Exception, code: int, text: str, capsys) -> None:
    with pytest.raises(typer.Exit) as info, store_errors():
        raise exc
    assert info.value.exit_code == code
    assert capsys.readouterr().err.strip() == f"aipowertools: {text}"


def test_library_errors_are_one_line_and_others_propagate(capsys) -> None:
    from aipowertools.sessions import SessionIntegrityError

    with pytest.raises(typer.Exit) as info, store_errors():
        raise SessionIntegrityError("b.json", "not a session backup file")
    assert info.value.exit_code == 1
    assert "not a session backup file" in capsys.readouterr().err
    with pytest.raises(ZeroDivisionError), store_errors():
        raise ZeroDivisionError


def test_monitor_reads_ttft_from_the_handlers_events(seeded: Seeded) -> None:
    from aipowertools.callbacks import StructuredLogger

    log = StructuredLogger("lc", store=f"sqlite:///{seeded.home / 'events.db'}")
    for ttft in (40.0, 60.0, 80.0):
        log.info("chat_model_end", model="gpt-4o-mini", ttft_ms=ttft, duration_ms=300)
    log.flush()
    data = json.loads(cli("monitor", "--window", "7d", "--json"))
    mini = next(d for d in data["deployments"] if d["deployment"] == "openai/gpt-4o-mini")
    assert mini["ttft_p50_ms"] == 60.0
    assert mini["ttft_p95_ms"] == 80.0
    # a log store that cannot be queried only loses the TTFT column
    plain = json.loads(cli("monitor", "--window", "7d", "--json", "--log-store", "redis://x/0"))
    assert all(d["ttft_p50_ms"] is None for d in plain["deployments"])


def test_cache_savings_from_a_saved_usd_ledger_field(
    seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aipowertools.core import LedgerRecord

    monkeypatch.setitem(LedgerRecord.__dataclass_fields__, "saved_usd", None)  # type: ignore[arg-type]
    assert json.loads(cli("costs", "--json"))["saved_usd"] == 0.0


def test_long_ranges_break_down_by_recorded_day(seeded: Seeded) -> None:
    data = json.loads(cli("costs", "--json", "--since", "500d", "--by", "day"))
    days = data["breakdowns"]["day"]
    assert sum(d["calls"] for d in days) == seeded.calls
    assert all(d["calls"] for d in days)  # only days with calls


def test_empty_stores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIPOWERTOOLS_HOME", str(tmp_path))
    monkeypatch.delenv("AIPOWERTOOLS_STORE", raising=False)
    monkeypatch.delenv("AIPOWERTOOLS_LOG_STORE", raising=False)
    assert "no live sessions" in cli("sessions", "list")
    assert "no matching events" in cli("logs")
    assert "no calls recorded" in cli("monitor")
    text = json.loads(cli("costs", "--json"))
    assert text["calls"] == 0
    pdf = generate_report("pdf", None)
    import io

    import pypdf

    words = "".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf)).pages)
    assert "Total spend $0.0000" in words
    assert "none" in words


def test_sessions_export_to_a_file_and_filters(seeded: Seeded, tmp_path: Path) -> None:
    target = tmp_path / "s.json"
    assert "exported 1 sessions" in cli("sessions", "export", "conv-2", "-o", str(target))
    assert json.loads(target.read_text()) == {"conv-2": {"draft": "unsent"}}
    hits = json.loads(cli("logs", "--field", "model=gpt-4o-mini", "--json"))
    assert [e["event"] for e in hits] == ["llm_call"]


def test_pdf_without_fpdf2_says_what_to_install(
    seeded: Seeded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "fpdf", None)
    with pytest.raises(ImportError, match=r"pip install 'aipowertools\[console\]'"):
        generate_report("pdf", None)
    out = cli("report", "-o", str(tmp_path / "r.pdf"), code=1)
    assert out.strip().startswith("aipowertools: PDF reports need fpdf2")


def test_dashboard_without_a_queryable_log_store(seeded: Seeded) -> None:
    from aipowertools.console._dashboard import DashboardState

    state = DashboardState(Stores.resolve(log_store="redis://127.0.0.1:9/0"), poll_s=3600)
    try:
        assert state.refresh(force=True)
        snap = json.loads(state.snapshot)
        assert snap["data"]["audit"] is None
        assert "no log store" in snap["html"]["figures"]
        assert state.search("rate", None) == []
    finally:
        state.stop()


def test_event_stream_keepalive(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from aipowertools.console import _dashboard, create_app
    from aipowertools.console._dashboard import DashboardState

    monkeypatch.setattr(_dashboard, "KEEPALIVE_S", 0.2)
    state = DashboardState(Stores.resolve(), poll_s=3600)
    state.refresh(force=True)
    chunks: list[bytes] = []

    async def run() -> None:
        calls = 0

        async def receive() -> dict[str, object]:
            nonlocal calls
            calls += 1
            if calls == 1:
                return {"type": "http.request", "body": b"", "more_body": False}
            await asyncio.sleep(1.0)
            return {"type": "http.disconnect"}

        async def send(message: dict[str, object]) -> None:
            if message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))  # type: ignore[arg-type]

        scope = {"type": "http", "method": "GET", "path": "/api/events", "headers": [],
                 "query_string": b"", "root_path": "", "scheme": "http",
                 "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1)}  # fmt: skip
        await create_app(state)(scope, receive, send)

    asyncio.run(run())
    state.stop()
    assert ": keep-alive" in b"".join(chunks).decode()


def test_simulate_with_a_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import functools
    import threading

    from aipowertools.testing import _cli

    config = tmp_path / "sim.toml"
    config.write_text('[[models]]\nname = "house-model"\nreply = "hi"\n')
    stop = threading.Event()
    stop.set()
    monkeypatch.setattr(_cli, "main", functools.partial(_cli.main, stop=stop))
    assert "model house-model" in cli("simulate", "--port", "0", "--config", str(config))


def test_doctor_names_what_is_missing(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    from aipowertools.cli import _app, _ops

    for key in _ops.PROVIDER_KEYS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(_ops, "DISTRIBUTIONS", (*_ops.DISTRIBUTIONS, "aipowertools-nope"))
    monkeypatch.setattr(_ops, "EXTRAS", {**_ops.EXTRAS, "nope": ("nope_pkg.sub", "nothing")})
    monkeypatch.setattr(_ops, "_local_servers", lambda: [])
    data = json.loads(cli("doctor", "--json"))
    assert data["distributions"]["aipowertools-nope"] is None
    assert data["extras"]["nope"]["installed"] is False
    assert "install aipowertools-nope (pip install aipowertools-nope)" in data["fixes"]
    assert any("no provider key and no local server" in f for f in data["fixes"])
    monkeypatch.setattr(_app, "DISTRIBUTIONS", ("aipowertools-nope",))
    assert json.loads(cli("version", "--json")) == {"aipowertools-nope": None}
    assert "not installed" in cli("version")


def test_masking_a_url_that_does_not_parse() -> None:
    assert mask("postgresql://u:secret@db/x") == "postgresql://u:***@db/x"
    assert mask("weird://u:pw@host") == "host"


def test_report_data_defaults_to_the_last_30_days(seeded: Seeded) -> None:
    data = report_data()
    assert data["summary"]["end"] - data["summary"]["start"] == pytest.approx(30 * 86400)
    assert data["summary"]["end"] <= time.time()

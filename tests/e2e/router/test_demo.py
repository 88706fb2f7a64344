"""The README's first command: ``aipowertools demo`` on a machine with no keys and no servers."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from aipowertools.cli import _demo

pytestmark = pytest.mark.filterwarnings(
    "ignore:Item .* is using the `ReadOnly` qualifier:UserWarning"
)


def test_demo_runs_on_the_simulator(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    for key in _demo._KEYS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(_demo, "_OLLAMA_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setattr(_demo, "_LLAMACPP_URL", "http://127.0.0.1:9")
    out = io.StringIO()
    assert _demo.run_demo(Console(file=out, width=200), home=str(tmp_path)) == 0
    text = out.getvalue()
    first = text.splitlines()[0]
    assert "simulator" in first
    assert "no network" in first
    assert text.count("running total $") == 3
    # The easy first turn stays local and free; the coding turn needs a better model.
    turns = re.findall(r"-> (\S+) \| why: ([^\n]+)", text)
    assert turns[0][0] == "local/llama3"
    assert turns[1][0] in ("gpt-4o-mini", "gpt-4o")
    assert "quality floor" in turns[1][1]
    assert "3 ledger records" in text
    assert "6 messages in the session" in text


def test_demo_uses_a_local_server_and_degrades_without_optional_packages(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    import sys

    from aipowertools.testing import SimModel, Simulator

    for key in _demo._KEYS:
        monkeypatch.delenv(key, raising=False)
    # Without aipowertools-sessions / -callbacks the demo still runs and says what it uses.
    monkeypatch.setitem(sys.modules, "aipowertools.sessions.langchain", None)
    monkeypatch.setitem(sys.modules, "aipowertools.callbacks", None)
    with Simulator(models=[SimModel("llama3:latest", reply="local reply")]) as sim:
        monkeypatch.setattr(_demo, "_OLLAMA_URL", sim.base_url("ollama"))
        monkeypatch.setattr(_demo, "_LLAMACPP_URL", sim.url)
        out = io.StringIO()
        assert _demo.run_demo(Console(file=out, width=200), home=str(tmp_path)) == 0
    text = out.getvalue()
    assert text.splitlines()[0].startswith("Using your own providers: ollama_chat/llama3:latest")
    assert "in-memory history (aipowertools-sessions absent)" in text
    assert "no structured logger" in text
    assert text.count("running total $0.000000") == 3  # local models are free

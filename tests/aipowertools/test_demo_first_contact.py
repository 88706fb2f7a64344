"""``aipowertools demo`` as a newcomer meets it (issue 16 §4, issue 15's acceptance)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aipowertools.cli import app

pytestmark = [
    pytest.mark.filterwarnings("ignore:Item .* is using the `ReadOnly` qualifier:UserWarning"),
    # a real subprocess running the demo (litellm, LangChain, the simulator), under coverage
    pytest.mark.timeout(240),
]

BLOCK_LANGCHAIN = """
import sys

class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "langchain_core" or name.startswith("langchain_core."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, Block())
sys.argv = ["aipowertools", "demo", "--home", sys.argv[1]]
from aipowertools.cli import main
main()
"""


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(
        AIPOWERTOOLS_HOME=str(tmp_path / "data"),
        OLLAMA_HOST="http://127.0.0.1:9",  # nothing listens there
        LLAMACPP_URL="http://127.0.0.1:9",
        COLUMNS="40",
        **extra,
    )
    return env


def test_demo_without_langchain_says_what_to_install_in_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", BLOCK_LANGCHAIN, str(tmp_path / "demo")],
        capture_output=True, text=True, env=_env(tmp_path), timeout=180,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "pip install 'aipowertools[langchain]'" in lines[0]


def test_demo_keeps_its_stores_forces_the_simulator_and_explains_itself(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "aipowertools.cli", "demo", "--simulator", "--home", str(home)],
        capture_output=True, text=True, timeout=180,
        env=_env(tmp_path, OPENAI_API_KEY="sk-not-a-real-key"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    lines = out.splitlines()
    # --simulator wins over a provider key that is set
    assert lines[0].startswith("--simulator given: this demo runs against the built-in simulator")
    # piped with COLUMNS=40, a long sentence stays on one line
    assert (
        "Turn 2 you: Write a Python function that merges two sorted lists, then analyze its "
        "time complexity step by step and compare it with sorting the concatenation. "
        "Why is it better?"
    ) in lines
    # the terms it prints are explained
    legend = next(ln for ln in lines if ln.startswith("(complexity:"))
    assert "quality floor: the lowest model quality score" in legend
    assert "confidence: 0-1, how clear-cut the choice was" in legend
    # the stores outlive the demo, and the last lines say how to look at them
    assert (home / "ledger.db").exists()
    assert (home / "events.db").exists()
    assert f"aipowertools dashboard --home {home}" in out
    runner = CliRunner()
    costs = runner.invoke(app, ["costs", "--home", str(home), "--json", "--since", "1h"])
    assert json.loads(costs.output)["calls"] == 3
    logs = runner.invoke(app, ["logs", "--home", str(home), "--json"])
    assert any(e["event"] == "chat_model_end" for e in json.loads(logs.output))


def test_demo_home_is_emptied_before_a_run(tmp_path: Path) -> None:
    from aipowertools.cli._demo import demo_home

    home = tmp_path / "demo"
    (home / "sessions").mkdir(parents=True)
    (home / "ledger.db").write_text("old")
    (home / "notes.txt").write_text("mine")
    assert demo_home(str(home)) == str(home)
    assert not (home / "ledger.db").exists()
    assert not (home / "sessions").exists()
    assert (home / "notes.txt").read_text() == "mine"  # only the demo's own stores go


def test_demo_default_home_is_under_the_data_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aipowertools.cli._demo import demo_home

    monkeypatch.setenv("AIPOWERTOOLS_HOME", str(tmp_path))
    assert demo_home() == str(tmp_path.resolve() / "demo")

"""Conversations persist across a process restart: LangChain and LlamaIndex, via the simulator."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aipowertools.sessions.langchain import SessionChatMessageHistory
from aipowertools.testing import SimModel, Simulator


def _load_turn() -> Any:
    spec = importlib.util.spec_from_file_location("_sessions_e2e_turn", TURN_PATH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TURN_PATH = Path(__file__).with_name("_turn.py")
TURN = str(TURN_PATH)


def _reply(request: Any) -> str:
    said = [m["content"] for m in request.messages if m.get("role") == "user"]
    return "heard: " + " | ".join(str(s) for s in said)


def _run(store: str, base_url: str, question: str) -> dict[str, str]:
    env = {**os.environ, "OPENAI_API_KEY": "sk-sim"}
    done = subprocess.run(
        [sys.executable, TURN, store, base_url, question],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(line.split(": ", 1) for line in done.stdout.splitlines() if ": " in line)


def test_conversations_survive_a_process_restart(tmp_path: Path) -> None:
    store = f"diskcache://{tmp_path / 'sessions'}"
    with Simulator(models=[SimModel("gpt-4o-mini", reply=_reply)]) as sim:
        base_url = sim.base_url("openai")
        turn = _load_turn()
        question = "My name is Ada."
        # RunnableWithMessageHistory is deprecated upstream (langchain-core 1.3.3): legacy path
        with pytest.warns(DeprecationWarning, match="RunnableWithMessageHistory"):
            legacy = turn.langchain_turn(store, base_url, question)
        first = {  # in this process ...
            "langchain": legacy,
            "buffer": turn.llama_turn(store, base_url, question, new_memory=False),
            "memory": turn.llama_turn(store, base_url, question, new_memory=True),
        }
        second = _run(store, base_url, "What is my name?")  # ... and in a new one
    assert first == {
        "langchain": "heard: My name is Ada.",
        "buffer": "heard: My name is Ada.",
        "memory": "heard: My name is Ada.",
    }
    # the second process saw the first one's turn: the model got the whole conversation
    for framework in ("langchain", "buffer", "memory"):
        assert second[framework] == "heard: My name is Ada. | What is my name?", framework
    history = SessionChatMessageHistory("lc-user", store=store).messages
    assert [m.content for m in history] == [
        "My name is Ada.",
        "heard: My name is Ada.",
        "What is my name?",
        "heard: My name is Ada. | What is my name?",
    ]

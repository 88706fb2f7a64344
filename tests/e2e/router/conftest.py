"""Simulator-backed routers for the end-to-end tests."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from aipowertools.router import Deployment
from aipowertools.testing import SimModel, Simulator, ToolCall

KEY = "sk-simulator"


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content or "")


def _arguments(tool: dict[str, Any], prompt: str) -> dict[str, Any]:
    """Fill a tool's required parameters from the prompt: numbers, then quoted strings."""
    params = tool["function"].get("parameters") or {}
    numbers = re.findall(r"-?\d+", prompt)
    quoted = re.findall(r"'([^']+)'|\"([^\"]+)\"", prompt)
    args: dict[str, Any] = {}
    for name in params.get("required", []):
        kind = (params.get("properties", {}).get(name) or {}).get("type")
        if kind in ("integer", "number"):
            args[name] = int(numbers.pop(0)) if numbers else 1
        elif kind == "string":
            args[name] = next((a or b for a, b in quoted), prompt.split()[-1] if prompt else "x")
        elif kind == "boolean":
            args[name] = True
        elif kind == "array":
            args[name] = []
        else:
            args[name] = {}
    return args


def smart_reply(request: Any) -> Any:
    """Call the first offered tool unless a tool result just came back; JSON when asked."""
    last = request.messages[-1] if request.messages else {}
    if request.tools and last.get("role") != "tool":
        prompt = next((_text(m) for m in reversed(request.messages) if m["role"] == "user"), "")
        tool = request.tools[0]
        return ToolCall(tool["function"]["name"], _arguments(tool, prompt))
    if request.response_format:
        return (
            '{"setup": "Why did the cat sit on the computer?", "punchline": "To watch the mouse."}'
        )
    return "Hello from the simulator. 2 + 2 = 4."


def sim_deployment(sim: Simulator, model: str, **kw: Any) -> Deployment:
    options: dict[str, Any] = {"local": False, "api_key": KEY}
    options.update(kw)
    return Deployment(
        f"openai/{model}", name=model, api_base=sim.base_url("openai", model=model), **options
    )


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    models = [SimModel(name, reply=smart_reply) for name in ("gpt-4o-mini", "gpt-4o")]
    with Simulator(models=models, seed=1) as s:
        yield s

"""langchain-tests' ChatModelIntegrationTests through the direct Anthropic and Ollama wires.

The simulator answers in each provider's own wire format; every call goes out directly (the
fallback transport fails the test if it is used), so the suite exercises the translation of
messages, tools, tool results, streams and usage both ways.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_tests.integration_tests import ChatModelIntegrationTests

from aipowertools.router import Deployment, LLMRouter, OpenAICompatibleTransport
from aipowertools.router.langchain import RouterChatModel
from aipowertools.testing import SimModel, Simulator

from .conftest import KEY, smart_reply

_SIM: dict[str, Simulator] = {}
_MODELS = {"anthropic": ("anthropic", "claude-haiku-4-5", "claude-sonnet-4-5"),
           "ollama": ("ollama_chat", "llama3", "qwen2")}  # fmt: skip


class _NoFallback:
    async def complete(self, *args: Any) -> Any:
        raise AssertionError(f"went to the fallback with {args[2]}")

    def stream(self, *args: Any) -> Any:
        raise AssertionError(f"went to the fallback with {args[2]}")


@pytest.fixture(scope="module")
def wire_sim() -> Iterator[Simulator]:
    names = [n for _, *pair in _MODELS.values() for n in pair]
    with Simulator(models=[SimModel(n, reply=smart_reply) for n in names], seed=1) as s:
        yield s


@pytest.fixture(autouse=True)
def _running_sim(wire_sim: Simulator) -> None:
    _SIM["sim"] = wire_sim


def _router(flavor: str) -> LLMRouter:
    sim = _SIM["sim"]
    prefix, small, big = _MODELS[flavor]
    deployments = [
        Deployment(f"{prefix}/{name}", name=name, api_base=sim.base_url(flavor, model=name),
                   api_key=KEY, local=False, input_cost_per_token=1e-6,
                   output_cost_per_token=2e-6, supports_tools=True, supports_json=True)
        for name in (small, big)
    ]  # fmt: skip
    return LLMRouter(deployments, transport=OpenAICompatibleTransport(_NoFallback()), monitor=False)


class TestAnthropicWireIntegration(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return RouterChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"router": _router("anthropic")}

    @property
    def model_override_value(self) -> str | None:
        return "claude-sonnet-4-5"

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def returns_usage_metadata(self) -> bool:
        return True


class TestOllamaWireIntegration(TestAnthropicWireIntegration):
    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"router": _router("ollama")}

    @property
    def model_override_value(self) -> str | None:
        return "qwen2"

    @property
    def supports_json_mode(self) -> bool:
        return True

"""langchain-tests' ChatModelIntegrationTests for RouterChatModel against the simulator."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_tests.integration_tests import ChatModelIntegrationTests

from aipowertools.router import LLMRouter
from aipowertools.router.langchain import RouterChatModel
from aipowertools.testing import Simulator

from .conftest import sim_deployment

# litellm's response types make pydantic warn about a TypedDict's ReadOnly item; not ours.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Item .* is using the `ReadOnly` qualifier:UserWarning"
)

_SIM: dict[str, Simulator] = {}


@pytest.fixture(autouse=True)
def _running_sim(sim: Simulator) -> None:
    _SIM["sim"] = sim


class TestRouterChatModelIntegration(ChatModelIntegrationTests):
    """The suite with every call through litellm (LiteLLMTransport): the path of every provider
    without a direct wire."""

    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return RouterChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        from aipowertools.router import LiteLLMTransport

        sim = _SIM["sim"]
        router = LLMRouter(
            [sim_deployment(sim, "gpt-4o-mini"), sim_deployment(sim, "gpt-4o")],
            transport=LiteLLMTransport(),
            monitor=False,
        )
        return {"router": router}

    @property
    def model_override_value(self) -> str | None:
        return "gpt-4o"

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def returns_usage_metadata(self) -> bool:
        return True


class TestRouterChatModelDirectTransportIntegration(TestRouterChatModelIntegration):
    """The same suite with OpenAICompatibleTransport instead of litellm."""

    @property
    def chat_model_params(self) -> dict[str, Any]:
        from aipowertools.router import OpenAICompatibleTransport

        sim = _SIM["sim"]
        router = LLMRouter(
            [sim_deployment(sim, "gpt-4o-mini"), sim_deployment(sim, "gpt-4o")],
            transport=OpenAICompatibleTransport(),
            monitor=False,
        )
        return {"router": router}

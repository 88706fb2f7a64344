"""Acceptance matrix: each client x each fault raises what the real provider would cause."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from aipowertools.testing import Fault, SimModel, Simulator
from aipowertools.testing._compat import litellm as _litellm

_spec = importlib.util.spec_from_file_location(
    "_sim_client_matrix", Path(__file__).with_name("test_client_matrix.py")
)
assert _spec is not None
assert _spec.loader is not None
matrix = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("_sim_client_matrix", matrix)
_spec.loader.exec_module(matrix)

pytestmark = matrix.pytestmark
ll = _litellm()
lc = pytest.importorskip("langchain_openai.chat_models.base")

FAULTS = [
    "rate_limit",
    "server_error",
    "bad_gateway",
    "unavailable",
    "context",
    "authentication",
    "content_policy",
    "hang",
    "stream_cut",
    "malformed_json",
    "disconnect",
    "down",
]

LITELLM_COMMON: dict[str, Any] = {
    "rate_limit": ll.RateLimitError,
    "server_error": ll.InternalServerError,
    "bad_gateway": ll.BadGatewayError,
    "authentication": ll.AuthenticationError,
    "content_policy": ll.ContentPolicyViolationError,
    "context": ll.ContextWindowExceededError,
    "hang": ll.Timeout,
    "stream_cut": (ll.APIConnectionError, ll.InternalServerError),
    "malformed_json": (ll.APIConnectionError, ll.InternalServerError),
    "disconnect": (ll.APIConnectionError, ll.InternalServerError),
    "down": (ll.APIConnectionError, ll.InternalServerError),
}
EXPECTED: dict[str, dict[str, Any]] = {
    "litellm-openai": {**LITELLM_COMMON, "unavailable": ll.ServiceUnavailableError},
    # Anthropic answers 529 overloaded_error, which litellm maps to InternalServerError.
    "litellm-anthropic": {**LITELLM_COMMON, "unavailable": ll.InternalServerError},
    # Ollama has no context-length error code: litellm sees a plain 400.
    "litellm-ollama": {
        **LITELLM_COMMON,
        "unavailable": ll.ServiceUnavailableError,
        "context": ll.BadRequestError,
        "content_policy": ll.BadRequestError,
    },
    "openai-sdk": {
        "rate_limit": openai.RateLimitError,
        "server_error": openai.InternalServerError,
        "bad_gateway": openai.InternalServerError,
        "unavailable": openai.InternalServerError,
        "context": openai.BadRequestError,
        "authentication": openai.AuthenticationError,
        "content_policy": openai.BadRequestError,
        "hang": openai.APITimeoutError,
        "stream_cut": openai.APIConnectionError,
        "malformed_json": ValueError,
        "disconnect": openai.APIConnectionError,
        "down": openai.APIConnectionError,
    },
    "anthropic-sdk": {
        "rate_limit": anthropic.RateLimitError,
        "server_error": anthropic.InternalServerError,
        "bad_gateway": anthropic.InternalServerError,
        "unavailable": anthropic.OverloadedError,
        "context": anthropic.BadRequestError,
        "authentication": anthropic.AuthenticationError,
        "content_policy": anthropic.BadRequestError,
        "hang": anthropic.APITimeoutError,
        "stream_cut": anthropic.APIConnectionError,
        "malformed_json": ValueError,
        "disconnect": anthropic.APIConnectionError,
        "down": anthropic.APIConnectionError,
    },
    "langchain-openai": {
        "rate_limit": openai.RateLimitError,
        "server_error": openai.InternalServerError,
        "bad_gateway": openai.InternalServerError,
        "unavailable": openai.InternalServerError,
        "context": openai.BadRequestError,
        "authentication": openai.AuthenticationError,
        "content_policy": openai.BadRequestError,
        "hang": openai.APITimeoutError,
        "stream_cut": openai.APIConnectionError,
        "malformed_json": ValueError,
        "disconnect": openai.APIConnectionError,
        "down": openai.APIConnectionError,
    },
}


def _arm(sim: Simulator, fault: str) -> None:
    if fault == "down":
        sim.down()
    elif fault == "stream_cut":
        sim.fail_next(matrix.MODEL, 1, Fault("stream_cut", after_chunks=2))
    elif fault != "context":
        sim.fail_next(matrix.MODEL, 1, Fault(fault, retry_after=7))


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("client", sorted(EXPECTED))
def test_fault_raises_the_provider_class(client: str, fault: str) -> None:
    window = 5 if fault == "context" else 128_000
    model = SimModel(matrix.MODEL, reply=matrix.REPLY, context_window=window)
    with Simulator(models=[model]) as sim:
        _arm(sim, fault)
        with pytest.raises(EXPECTED[client][fault]) as info:
            matrix.CLIENTS[client](sim, "text", False)
        stats = sim.stats()
    if fault == "down":
        assert stats.requests == 0  # refused before any request reached the server
    else:
        assert stats.requests == 1
        assert stats.served == (1 if fault in ("stream_cut", "malformed_json") else 0)
    if fault == "rate_limit":
        exc = info.value
        headers = (
            exc.litellm_response_headers if client.startswith("litellm") else exc.response.headers  # type: ignore[attr-defined]
        )
        assert headers["retry-after"] == "7"
        assert headers["x-ratelimit-remaining-requests"] == "0"


STREAM_FAULTS = {
    "litellm-openai": ll.exceptions.MidStreamFallbackError,
    "litellm-anthropic": ll.exceptions.MidStreamFallbackError,
    "litellm-ollama": ll.exceptions.MidStreamFallbackError,
    "openai-sdk": httpx.RemoteProtocolError,
    "anthropic-sdk": Exception,  # the SDK surfaces its bundled httpx's RemoteProtocolError
    "langchain-openai": httpx.RemoteProtocolError,
}


@pytest.mark.parametrize("client", sorted(STREAM_FAULTS))
def test_stream_cut_mid_stream(client: str) -> None:
    with Simulator(models=[SimModel(matrix.MODEL, reply=matrix.REPLY)]) as sim:
        sim.fail_next(None, 1, Fault("stream_cut", after_chunks=3))
        with pytest.raises(STREAM_FAULTS[client]) as info:
            matrix.CLIENTS[client](sim, "text", True)
        assert "peer closed connection" in str(info.value) or client.startswith("litellm")
        assert sim.wait_idle()
        assert sim.stats().faults == {"stream_cut": 1}


@pytest.mark.parametrize("client", ["openai-sdk", "anthropic-sdk", "litellm-openai"])
def test_malformed_stream_chunk(client: str) -> None:
    expected = ll.exceptions.MidStreamFallbackError if client.startswith("litellm") else ValueError
    with Simulator(models=[SimModel(matrix.MODEL, reply=matrix.REPLY)]) as sim:
        sim.fail_next(matrix.MODEL, 1, "malformed_json")
        with pytest.raises(expected):
            matrix.CLIENTS[client](sim, "text", True)


@pytest.mark.parametrize("client", sorted(matrix.CLIENTS))
def test_slow_first_token_still_answers(client: str) -> None:
    with Simulator(models=[SimModel(matrix.MODEL, reply=matrix.REPLY)]) as sim:
        sim.fail_next(matrix.MODEL, 1, Fault("slow_first_token", delay_s=0.2))
        result = matrix.CLIENTS[client](sim, "text", True)
        (record,) = sim.requests
    assert result.text == matrix.REPLY
    assert record.latency_ms >= 200
    assert record.fault == "slow_first_token"

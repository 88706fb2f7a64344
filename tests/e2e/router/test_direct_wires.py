"""The direct Anthropic and Ollama wires against the simulator: answers, streams, tools, errors.

Every call here goes out directly: the fallback transport fails the test if it is ever used.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from aipowertools.core.errors import (
    ContextWindowExceededError,
    RateLimitedError,
    TransientProviderError,
)
from aipowertools.router import Deployment, LLMRouter, OpenAICompatibleTransport
from aipowertools.testing import Fault, SimModel, Simulator, ToolCall

FLAVORS = {"anthropic": "anthropic", "ollama": "ollama_chat"}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "f",
            "description": "a tool",
            "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}},
        },
    }
]


class _NoFallback:
    """A fallback transport that fails the test: every call must go out directly."""

    async def complete(self, *args: Any) -> Any:
        raise AssertionError(f"went to the fallback: {args[0].model} {args[2]}")

    def stream(self, *args: Any) -> Any:
        raise AssertionError(f"went to the fallback: {args[0].model} {args[2]}")


def _dep(sim: Simulator, flavor: str, name: str, **kw: Any) -> Deployment:
    return Deployment(
        f"{FLAVORS[flavor]}/{name}",
        name=name,
        api_base=sim.base_url(flavor, name),
        api_key="sk-sim",
        local=False,
        input_cost_per_token=1e-6,
        output_cost_per_token=2e-6,
        supports_tools=True,
        **kw,
    )


@pytest.mark.parametrize("flavor", sorted(FLAVORS))
async def test_answers_streams_and_tool_round_trips(flavor: str) -> None:
    models = [SimModel("m", reply="hello world"), SimModel("t", reply=ToolCall("f", {"x": 1}))]
    with Simulator(models=models) as sim:
        transport = OpenAICompatibleTransport(_NoFallback())
        deps = [_dep(sim, flavor, "m"), _dep(sim, flavor, "t")]
        router = LLMRouter(deps, transport=transport, monitor=False)
        result = await router.route(
            messages=[
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hi"},
            ],
            deployments=["m"],
            max_tokens=20,
            temperature=0.1,
            stop=["\n\n"],
        )
        assert result.content == "hello world"
        assert result.input_tokens > 0
        assert result.output_tokens > 0
        assert result.completion.finish_reason == "stop"
        stream = router.stream(task="hi", deployments=["m"])
        assert "".join([c.content async for c in stream]) == "hello world"
        assert stream.result is not None
        assert stream.result.output_tokens == result.output_tokens

        called = await router.route(task="call f", tools=TOOLS, deployments=["t"])
        assert called.completion.finish_reason == "tool_calls"
        assert called.tool_calls[0].name == "f"
        assert json.loads(called.tool_calls[0].arguments) == {"x": 1}
        streamed = router.stream(task="call f", tools=TOOLS, deployments=["t"])
        _ = [c async for c in streamed]
        assert streamed.result is not None
        assert json.loads(streamed.result.tool_calls[0].arguments) == {"x": 1}

        # The tool's answer goes back in the provider's own shape and is accepted.
        call = called.tool_calls[0]
        follow_up = [
            {"role": "user", "content": "call f"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": call.arguments},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": call.id, "name": "f", "content": "42"},
        ]
        answered = await router.route(
            messages=follow_up, tools=TOOLS, tool_choice="auto", deployments=["m"]
        )
        assert answered.content == "hello world"
        flavors = {r.flavor for r in sim.requests}
        assert flavors == {flavor}
        await transport.aclose()


@pytest.mark.parametrize("flavor", sorted(FLAVORS))
async def test_errors_are_classified(flavor: str) -> None:
    with Simulator(models=[SimModel("m"), SimModel("w", context_window=5)]) as sim:
        transport = OpenAICompatibleTransport(_NoFallback())
        m = _dep(sim, flavor, "m")
        w = _dep(sim, flavor, "w", context_window=100_000)
        hi = [{"role": "user", "content": "hi"}]
        sim.fail_next("m", 1, Fault("rate_limit", retry_after=7))
        with pytest.raises(RateLimitedError) as info:
            await transport.complete(m, hi, {})
        assert info.value.retry_after == 7
        for kind in ("server_error", "unavailable"):
            sim.fail_next("m", 1, kind)
            with pytest.raises(TransientProviderError):
                await transport.complete(m, hi, {})
        with pytest.raises(ContextWindowExceededError):
            await transport.complete(w, [{"role": "user", "content": "a long prompt " * 20}], {})
        sim.fail_next("m", 1, "server_error")
        with pytest.raises(TransientProviderError):
            _ = [c async for c in transport.stream(m, hi, {})]
        sim.fail_next("m", 1, "malformed_json")
        with pytest.raises(TransientProviderError):
            await transport.complete(m, hi, {})
        await transport.aclose()


async def test_parameters_a_wire_does_not_speak_go_to_the_fallback() -> None:
    from pydantic import BaseModel

    class Answer(BaseModel):
        text: str

    transport = OpenAICompatibleTransport(_NoFallback())
    claude, llama = Deployment("anthropic/claude-x"), Deployment("ollama_chat/llama3")
    assert transport.handles(claude, {"max_tokens": 5, "tools": TOOLS, "top_k": 3})
    assert not transport.handles(claude, {"response_format": {"type": "json_object"}})
    assert transport.handles(llama, {"response_format": {"type": "json_object"}, "seed": 1})
    assert not transport.handles(llama, {"response_format": Answer})
    assert not transport.handles(llama, {"drop_params": True})
    assert not transport.handles(Deployment("gemini/gemini-2.0-flash"))
    assert not transport.handles(Deployment("mistral/mistral-small"))


# -- the providers' documented examples, replayed through the direct wires -----------------

CASSETTES = Path(__file__).parents[2] / "cassettes"


@pytest.mark.parametrize(
    ("cassette", "model", "api_base"),
    [
        ("anthropic_messages_cache", "anthropic/claude-3-5-sonnet-20241022", None),
        ("ollama_chat", "ollama_chat/llama3.2", "http://localhost:11434"),
    ],
)
async def test_documented_examples_read_like_litellm(
    cassette: str, model: str, api_base: str | None
) -> None:
    """The direct wire reads the same text and usage from a provider's example as litellm."""
    import vcr

    from aipowertools.core import litellm

    path = str(CASSETTES / f"{cassette}.yaml")
    hi = [{"role": "user", "content": "Hello!"}]
    match = ["method", "scheme", "host", "port", "path"]
    dep = Deployment(model, api_base=api_base, api_key="sk-test-not-a-real-key-000000")
    transport = OpenAICompatibleTransport(_NoFallback())
    with vcr.use_cassette(path, record_mode="none", match_on=match):
        ours = await transport.complete(dep, hi, {"max_tokens": 1024})
    await transport.aclose()
    with vcr.use_cassette(path, record_mode="none", match_on=match):
        theirs = litellm().completion(
            model=model, messages=hi, api_base=api_base, api_key=dep.api_key, num_retries=0,
            max_tokens=1024,
        )  # fmt: skip
    usage = theirs.usage
    assert ours.content == theirs.choices[0].message.content
    assert ours.input_tokens == usage.prompt_tokens
    assert ours.output_tokens == usage.completion_tokens
    details = getattr(usage, "prompt_tokens_details", None)
    assert ours.cached_input_tokens == int(getattr(details, "cached_tokens", 0) or 0)
    assert ours.cache_creation_tokens == int(
        getattr(usage, "cache_creation_input_tokens", 0) or 0
    )
    assert ours.finish_reason == theirs.choices[0].finish_reason

"""OpenAICompatibleTransport against the simulator: answers, streams, tools, every error kind."""

from __future__ import annotations

import json

import pytest

from aipowertools.core.errors import (
    ContextWindowExceededError,
    ProviderTimeoutError,
    RateLimitedError,
    TransientProviderError,
)
from aipowertools.router import Deployment, LLMRouter, OpenAICompatibleTransport
from aipowertools.testing import Fault, SimModel, Simulator, ToolCall

pytestmark = pytest.mark.filterwarnings(
    "ignore:Item .* is using the `ReadOnly` qualifier:UserWarning"
)


def _dep(sim: Simulator, name: str, **kw: object) -> Deployment:
    return Deployment(
        f"openai/{name}",
        name=name,
        api_base=sim.base_url("openai", name),
        api_key="sk-sim",
        local=False,
        input_cost_per_token=1e-6,
        output_cost_per_token=2e-6,
        supports_tools=True,
        **kw,
    )  # type: ignore[arg-type]


async def test_answers_streams_and_tools() -> None:
    models = [
        SimModel("m", reply="hello world"),
        SimModel("t", reply=ToolCall("f", {"x": 1})),
        SimModel("w", context_window=10),
    ]
    with Simulator(models=models) as sim:
        transport = OpenAICompatibleTransport()
        router = LLMRouter([_dep(sim, "m"), _dep(sim, "t")], transport=transport, monitor=False)
        result = await router.route(task="hi", deployments=["m"], max_tokens=20)
        assert result.content == "hello world"
        assert result.input_tokens > 0
        assert result.output_tokens > 0
        assert result.cost == pytest.approx(
            result.input_tokens * 1e-6 + result.output_tokens * 2e-6
        )
        stream = router.stream(task="hi", deployments=["m"])
        assert "".join([c.content async for c in stream]) == "hello world"
        assert stream.result is not None
        assert stream.result.output_tokens == result.output_tokens
        tools = [
            {
                "type": "function",
                "function": {
                    "name": "f",
                    "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}},
                },
            }
        ]
        called = await router.route(task="call f", tools=tools, deployments=["t"])
        assert called.tool_calls[0].name == "f"
        assert json.loads(called.tool_calls[0].arguments) == {"x": 1}
        streamed = router.stream(task="call f", tools=tools, deployments=["t"])
        _ = [c async for c in streamed]
        assert streamed.result is not None
        assert json.loads(streamed.result.tool_calls[0].arguments) == {"x": 1}
        await transport.aclose()


async def test_errors_are_classified() -> None:
    with Simulator(models=[SimModel("m"), SimModel("w", context_window=5)]) as sim:
        transport = OpenAICompatibleTransport()
        m, w = _dep(sim, "m"), _dep(sim, "w", context_window=100_000)
        sim.fail_next("m", 1, Fault("rate_limit", retry_after=7))
        with pytest.raises(RateLimitedError) as info:
            await transport.complete(m, [{"role": "user", "content": "hi"}], {})
        assert info.value.retry_after == 7
        sim.fail_next("m", 1, "server_error")
        with pytest.raises(TransientProviderError):
            await transport.complete(m, [{"role": "user", "content": "hi"}], {})
        with pytest.raises(ContextWindowExceededError):
            await transport.complete(w, [{"role": "user", "content": "a long prompt " * 20}], {})
        sim.fail_next("m", 1, "server_error")
        with pytest.raises(TransientProviderError):
            _ = [c async for c in transport.stream(m, [{"role": "user", "content": "hi"}], {})]
        slow = m.replace(timeout=0.2)
        sim.fail_next("m", 1, Fault("hang", delay_s=2))
        with pytest.raises(ProviderTimeoutError):
            await transport.complete(slow, [{"role": "user", "content": "hi"}], {})
        sim.down("m")
        with pytest.raises(TransientProviderError):
            await transport.complete(m, [{"role": "user", "content": "hi"}], {})
        await transport.aclose()


async def test_other_providers_go_to_the_fallback() -> None:
    with Simulator(models=[SimModel("llama3", reply="via litellm")]) as sim:
        # Mistral's API speaks OpenAI's format, which the simulator answers; litellm posts it.
        other = Deployment(
            "mistral/llama3",
            api_base=sim.base_url("openai", "llama3"),
            api_key="k",
            local=False,
            input_cost_per_token=1e-6,
            output_cost_per_token=1e-6,
        )
        assert not OpenAICompatibleTransport().handles(other)
        router = LLMRouter([other], transport=OpenAICompatibleTransport(), monitor=False)
        assert (await router.route(task="hi")).content == "via litellm"
        stream = router.stream(task="hi")
        assert "".join([c.content async for c in stream]) == "via litellm"


_SYNC_SCRIPT = """
from aipowertools.router import Deployment, LLMRouter
from aipowertools.router._sync import run_sync
from aipowertools.testing import SimModel, Simulator

with Simulator(models=[SimModel("m", reply="hello")]) as sim:
    dep = Deployment("openai/m", api_base=sim.base_url("openai", "m"), api_key="k", local=False,
                     input_cost_per_token=1e-6, output_cost_per_token=1e-6)
    router = LLMRouter([dep], monitor=False)
    print(run_sync(router.route(task="hi")).content)
"""


def test_sync_calls_leave_no_open_session_at_exit() -> None:
    """The background loop of sync calls closes the transport's pool when the process exits."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-W", "default", "-c", _SYNC_SCRIPT],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "hello"
    assert "Unclosed" not in done.stderr
    assert "Exception ignored" not in done.stderr


class _Recorder:
    """A fallback transport that records what was handed to it."""

    def __init__(self) -> None:
        self.calls: list[dict[str, object]] = []

    async def complete(self, deployment: Deployment, messages: object, params: dict[str, object]):  # type: ignore[no-untyped-def]
        from aipowertools.router import Completion

        self.calls.append(dict(params))
        return Completion(content="via fallback", input_tokens=1, output_tokens=1)

    def stream(self, deployment: Deployment, messages: object, params: object):  # type: ignore[no-untyped-def]
        raise AssertionError("not used")


async def test_only_plain_wire_calls_go_direct() -> None:
    from pydantic import BaseModel

    from aipowertools.core.errors import ConfigurationError

    class Answer(BaseModel):
        text: str

    with Simulator(models=[SimModel("m", reply="direct")]) as sim:
        recorder = _Recorder()
        transport = OpenAICompatibleTransport(recorder)
        dep = _dep(sim, "m")
        hi = [{"role": "user", "content": "hi"}]
        plain = {"temperature": 0.2, "response_format": {"type": "json_object"}}
        assert transport.handles(dep, plain)
        assert (await transport.complete(dep, hi, {"temperature": 0.2})).content == "direct"
        # litellm options and pydantic response formats need litellm's translation
        for params in ({"drop_params": True}, {"response_format": Answer}):
            assert not transport.handles(dep, params)
            assert (await transport.complete(dep, hi, params)).content == "via fallback"
        assert not transport.handles(dep.replace(params={"num_retries": 2}))
        assert not transport.handles(Deployment("gemini/gemini-2.0-flash"))
        assert len(recorder.calls) == 2
        with pytest.raises(ConfigurationError, match="not JSON-serializable"):
            await transport.complete(dep, [{"role": "user", "content": object()}], {})
        await transport.aclose()
    with pytest.raises(ConfigurationError):
        OpenAICompatibleTransport(max_connections=0)


def test_reasoning_models_get_max_completion_tokens() -> None:
    hi = [{"role": "user", "content": "hi"}]
    for model, field in (("o3-mini", "max_completion_tokens"), ("gpt-5", "max_completion_tokens"),
                         ("gpt-4o", "max_tokens")):  # fmt: skip
        dep = Deployment(f"openai/{model}", api_key="k")
        _, headers, payload = OpenAICompatibleTransport._request(dep, hi, {"max_tokens": 9}, False)
        body = json.loads(payload)
        assert body[field] == 9
        assert set(body) == {"model", "messages", field}
        assert headers["Authorization"] == "Bearer k"

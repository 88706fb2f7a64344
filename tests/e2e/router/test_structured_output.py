"""Native structured output through the router: the provider receives ``response_format``.

``RouterChatModel.with_structured_output(method="json_schema" | "json_mode")`` and
``RouterLLM.structured_predict`` with a native method send a ``response_format`` (seen by the
simulator), route only to deployments that support one, and fail over to function calling
only when the user allows it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from aipowertools.router import LLMRouter, NoDeploymentError
from aipowertools.router.langchain import RouterChatModel
from aipowertools.testing import SimModel, SimRequest, Simulator, ToolCall

from .conftest import sim_deployment


class Joke(BaseModel):
    """A joke."""

    setup: str
    punchline: str


JOKE = {"setup": "Why?", "punchline": "Because."}


class Recorder:
    """Reply script that records what each model received."""

    def __init__(self) -> None:
        self.seen: list[SimRequest] = []

    def __call__(self, request: SimRequest) -> Any:
        self.seen.append(request)
        if request.tools:
            return ToolCall(request.tool_names[0], JOKE)
        return json.dumps(JOKE)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def jsim(recorder: Recorder) -> Iterator[Simulator]:
    models = [SimModel(name, reply=recorder) for name in ("json-capable", "tools-only")]
    with Simulator(models=models, seed=3) as s:
        yield s


def _router(sim: Simulator, *, json_capable: bool = True) -> LLMRouter:
    return LLMRouter(
        [
            sim_deployment(
                sim,
                "json-capable",
                supports_json=json_capable,
                supports_tools=True,
                input_cost_per_token=1e-6,
                output_cost_per_token=1e-6,
                quality=0.8,
            ),
            sim_deployment(
                sim,
                "tools-only",
                supports_json=False,
                supports_tools=True,
                input_cost_per_token=1e-9,
                output_cost_per_token=1e-9,
                quality=0.8,
            ),
        ],
        monitor=False,
        catalog={},
    )


@pytest.mark.parametrize("method", ["json_schema", "json_mode"])
async def test_native_methods_send_response_format_to_capable_deployments(
    jsim: Simulator, recorder: Recorder, method: str
) -> None:
    llm = RouterChatModel(router=_router(jsim))
    structured = llm.with_structured_output(Joke, method=method)  # type: ignore[arg-type]
    assert structured.invoke("Tell a joke, as JSON.") == Joke(**JOKE)
    assert await structured.ainvoke("Tell a joke, as JSON.") == Joke(**JOKE)
    # routed only to the deployment that takes a response_format, never the cheaper one
    assert [r.model for r in recorder.seen] == ["json-capable", "json-capable"]
    sent = recorder.seen[0].response_format
    assert sent is not None
    if method == "json_schema":
        assert sent["type"] == "json_schema"
        assert sent["json_schema"]["name"] == "Joke"
        assert set(sent["json_schema"]["schema"]["properties"]) == {"setup", "punchline"}
    else:
        assert sent == {"type": "json_object"}
    assert not recorder.seen[0].tools  # no tool-calling disguise


def test_json_schema_strict_and_include_raw(jsim: Simulator, recorder: Recorder) -> None:
    llm = RouterChatModel(router=_router(jsim))
    out = llm.with_structured_output(
        Joke.model_json_schema(), method="json_schema", strict=True, include_raw=True
    ).invoke("joke")
    assert out["parsed"] == JOKE
    assert out["parsing_error"] is None
    assert out["raw"].response_metadata["deployment"] == "json-capable"
    assert recorder.seen[0].response_format["json_schema"]["strict"] is True


def test_function_calling_sends_tools_and_may_use_any_tool_deployment(
    jsim: Simulator, recorder: Recorder
) -> None:
    llm = RouterChatModel(router=_router(jsim))
    assert llm.with_structured_output(Joke).invoke("joke") == Joke(**JOKE)
    assert llm.with_structured_output(Joke, strict=True).invoke("joke") == Joke(**JOKE)
    assert [r.model for r in recorder.seen] == ["tools-only", "tools-only"]  # the cheapest
    assert all(r.response_format is None and r.tool_names == ["Joke"] for r in recorder.seen)
    assert recorder.seen[1].tools[0]["function"]["strict"] is True


def test_no_capable_deployment_raises_or_falls_back_when_allowed(
    jsim: Simulator, recorder: Recorder
) -> None:
    llm = RouterChatModel(router=_router(jsim, json_capable=False))
    with pytest.raises(NoDeploymentError):
        llm.with_structured_output(Joke, method="json_schema").invoke("joke")
    assert recorder.seen == []  # refused before any call
    fallback = llm.with_structured_output(
        Joke, method="json_schema", function_calling_fallback=True
    )
    assert fallback.invoke("joke") == Joke(**JOKE)
    assert recorder.seen[0].tool_names == ["Joke"]
    assert recorder.seen[0].response_format is None


def test_bad_arguments_are_configuration_errors(jsim: Simulator) -> None:
    from aipowertools.core.errors import ConfigurationError

    llm = RouterChatModel(router=_router(jsim))
    with pytest.raises(ConfigurationError, match="needs a schema"):
        llm.with_structured_output(None, method="json_schema")
    with pytest.raises(ConfigurationError, match="needs a schema"):
        llm.with_structured_output(None)
    with pytest.raises(ConfigurationError, match="method must be"):
        llm.with_structured_output(Joke, method="xml")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="unsupported arguments"):
        llm.with_structured_output(Joke, tools=[])
    # json_mode without a schema gives a dict
    assert llm.with_structured_output(method="json_mode").invoke("JSON joke") == JOKE


@pytest.mark.parametrize("method", ["json_schema", "json_mode"])
async def test_router_llm_structured_predict_natively(
    jsim: Simulator, recorder: Recorder, method: str
) -> None:
    from llama_index.core.prompts import PromptTemplate

    from aipowertools.router.llama_index import RouterLLM

    llm = RouterLLM(router=_router(jsim), structured_output_method=method)
    prompt = PromptTemplate("Tell a joke about {topic}.")
    assert llm.structured_predict(Joke, prompt, topic="cats") == Joke(**JOKE)
    assert await llm.astructured_predict(Joke, prompt, topic="dogs") == Joke(**JOKE)
    assert [r.model for r in recorder.seen] == ["json-capable", "json-capable"]
    sent = recorder.seen[0].response_format
    assert sent is not None
    assert sent["type"] == ("json_schema" if method == "json_schema" else "json_object")
    if method == "json_mode":  # the shape is described to the model
        assert "JSON schema" in recorder.seen[0].messages[0]["content"]


async def test_router_llm_structured_predict_fallback_and_default(
    jsim: Simulator, recorder: Recorder
) -> None:
    from llama_index.core.prompts import PromptTemplate

    from aipowertools.core.errors import ConfigurationError
    from aipowertools.router.llama_index import RouterLLM

    prompt = PromptTemplate("Tell a joke about {topic}.")
    strict_llm = RouterLLM(router=_router(jsim, json_capable=False),
                           structured_output_method="json_schema")  # fmt: skip
    with pytest.raises(NoDeploymentError):
        strict_llm.structured_predict(Joke, prompt, topic="cats")
    with pytest.raises(NoDeploymentError):
        await strict_llm.astructured_predict(Joke, prompt, topic="cats")
    llm = RouterLLM(
        router=_router(jsim, json_capable=False),
        structured_output_method="json_schema",
        function_calling_fallback=True,
    )
    assert llm.structured_predict(Joke, prompt, topic="cats") == Joke(**JOKE)
    assert await llm.astructured_predict(Joke, prompt, topic="cats") == Joke(**JOKE)
    assert [r.tool_names for r in recorder.seen] == [["Joke"], ["Joke"]]
    assert RouterLLM(router=_router(jsim)).structured_predict(Joke, prompt, topic="x") == Joke(
        **JOKE
    )  # default: function calling
    bad = RouterLLM(router=_router(jsim))
    bad.structured_output_method = "xml"  # type: ignore[assignment]
    with pytest.raises(ConfigurationError, match="structured_output_method"):
        bad.structured_predict(Joke, prompt, topic="x")

"""Acceptance matrix: real clients x {non-streaming, streaming, tool call, each fault}.

Each client talks to the simulator over HTTP exactly as it would to the provider. A success
must parse with usage equal to litellm's offline token counter; a fault must raise the class
the real provider's response would make that client raise.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import anthropic
import openai
import pytest

from aipowertools.testing import SimModel, Simulator, ToolCall
from aipowertools.testing._compat import litellm as _litellm

# litellm's streaming types trigger a pydantic UserWarning at first use; not ours to fix.
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore:Item .* is using the .ReadOnly. qualifier"),
]

MODEL = "sim-model"
REPLY = "The capital of France is Paris."
MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is the capital of France?"},
]
PARAMS = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
OPENAI_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": PARAMS,
        },
    }
]
ANTHROPIC_TOOLS = [
    {"name": "get_weather", "description": "Weather in a city", "input_schema": PARAMS}
]
TOOL_CALL = ToolCall("get_weather", {"city": "Paris"})
TIMEOUT = 0.5


@dataclass
class Result:
    text: str = ""
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


def _litellm_call(prefix: str, flavor: str) -> Callable[[Simulator, str, bool], Result]:
    def call(sim: Simulator, mode: str, stream: bool) -> Result:
        ll = _litellm()
        kwargs: dict[str, Any] = {
            "model": f"{prefix}/{MODEL}",
            "api_base": sim.base_url(flavor),
            "api_key": "sk-sim",
            "messages": MESSAGES,
            "num_retries": 0,
            "max_retries": 0,
            "timeout": TIMEOUT,
        }
        if mode == "tool":
            kwargs["tools"] = OPENAI_TOOLS
            kwargs["_skip_mcp_handler"] = True  # litellm imports the absent `mcp` otherwise
        if not stream:
            response = ll.completion(**kwargs)
            message = response.choices[0].message
            return Result(
                text=message.content or "",
                tool_calls=[
                    (c.function.name, json.loads(c.function.arguments))
                    for c in message.tool_calls or []
                ],
                prompt_tokens=response.usage.prompt_tokens,
                completion_tokens=response.usage.completion_tokens,
            )
        chunks = list(ll.completion(**kwargs, stream=True, stream_options={"include_usage": True}))
        rebuilt = ll.stream_chunk_builder(chunks, messages=MESSAGES)
        message = rebuilt.choices[0].message
        usage = next(c.usage for c in reversed(chunks) if getattr(c, "usage", None))
        return Result(
            text=message.content or "",
            tool_calls=[
                (c.function.name, json.loads(c.function.arguments))
                for c in message.tool_calls or []
            ],
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
        )

    return call


def _openai_sdk(sim: Simulator, mode: str, stream: bool) -> Result:
    with openai.OpenAI(
        base_url=sim.base_url("openai"), api_key="sk-sim", max_retries=0, timeout=TIMEOUT
    ) as client:
        extra: dict[str, Any] = {"tools": OPENAI_TOOLS} if mode == "tool" else {}
        if not stream:
            out = client.chat.completions.create(model=MODEL, messages=MESSAGES, **extra)  # type: ignore[arg-type]
            message = out.choices[0].message
            assert out.usage is not None
            return Result(
                text=message.content or "",
                tool_calls=[
                    (c.function.name, json.loads(c.function.arguments))  # type: ignore[union-attr]
                    for c in message.tool_calls or []
                ],
                prompt_tokens=out.usage.prompt_tokens,
                completion_tokens=out.usage.completion_tokens,
            )
        result = Result()
        arguments: dict[int, list[str]] = {}
        names: dict[int, str] = {}
        for chunk in client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            stream=True,  # type: ignore[arg-type]
            stream_options={"include_usage": True},
            **extra,
        ):
            if chunk.usage is not None:
                result.prompt_tokens = chunk.usage.prompt_tokens
                result.completion_tokens = chunk.usage.completion_tokens
            for choice in chunk.choices:
                result.text += choice.delta.content or ""
                for call in choice.delta.tool_calls or []:
                    if call.function and call.function.name:
                        names[call.index] = call.function.name
                    if call.function and call.function.arguments:
                        arguments.setdefault(call.index, []).append(call.function.arguments)
        result.tool_calls = [
            (names[i], json.loads("".join(arguments.get(i, [])))) for i in sorted(names)
        ]
        return result


def _anthropic_sdk(sim: Simulator, mode: str, stream: bool) -> Result:
    with anthropic.Anthropic(
        base_url=sim.base_url("anthropic"), api_key="sk-sim", max_retries=0, timeout=TIMEOUT
    ) as client:
        extra: dict[str, Any] = {"tools": ANTHROPIC_TOOLS} if mode == "tool" else {}
        kwargs = {
            "model": MODEL,
            "max_tokens": 200,
            "system": MESSAGES[0]["content"],
            "messages": MESSAGES[1:],
            **extra,
        }
        if stream:
            with client.messages.stream(**kwargs) as events:  # type: ignore[arg-type]
                message = events.get_final_message()
        else:
            message = client.messages.create(**kwargs)  # type: ignore[call-overload]
        usage = message.usage
        return Result(
            text="".join(b.text for b in message.content if b.type == "text"),
            tool_calls=[(b.name, dict(b.input)) for b in message.content if b.type == "tool_use"],  # type: ignore[arg-type]
            prompt_tokens=usage.input_tokens
            + (usage.cache_read_input_tokens or 0)
            + (usage.cache_creation_input_tokens or 0),
            completion_tokens=usage.output_tokens,
        )


def _langchain_openai(sim: Simulator, mode: str, stream: bool) -> Result:
    from langchain_openai import ChatOpenAI

    chat: Any = ChatOpenAI(
        model=MODEL,
        base_url=sim.base_url("openai"),
        api_key="sk-sim",  # type: ignore[arg-type]
        max_retries=0,
        timeout=TIMEOUT,
        stream_usage=True,
    )
    if mode == "tool":
        chat = chat.bind_tools(OPENAI_TOOLS)
    if stream:
        message: Any = None
        for chunk in chat.stream(MESSAGES):
            message = chunk if message is None else message + chunk
    else:
        message = chat.invoke(MESSAGES)
    usage = message.usage_metadata or {}
    return Result(
        text=message.content if isinstance(message.content, str) else "",
        tool_calls=[(c["name"], c["args"]) for c in message.tool_calls],
        prompt_tokens=usage.get("input_tokens"),
        completion_tokens=usage.get("output_tokens"),
    )


CLIENTS: dict[str, Callable[[Simulator, str, bool], Result]] = {
    "litellm-openai": _litellm_call("openai", "openai"),
    "litellm-anthropic": _litellm_call("anthropic", "anthropic"),
    "litellm-ollama": _litellm_call("ollama_chat", "ollama"),
    "openai-sdk": _openai_sdk,
    "anthropic-sdk": _anthropic_sdk,
    "langchain-openai": _langchain_openai,
}


@pytest.fixture(scope="module")
def litellm() -> ModuleType:
    return _litellm()


def expected_usage(litellm: ModuleType, mode: str) -> tuple[int, int]:
    tools = {"tools": OPENAI_TOOLS} if mode == "tool" else {}
    prompt = litellm.token_counter(model=MODEL, messages=MESSAGES, **tools)
    text = "get_weather" + json.dumps({"city": "Paris"}, separators=(",", ":")) if tools else REPLY
    return prompt, litellm.token_counter(model=MODEL, text=text, count_response_tokens=True)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("mode", ["text", "tool"])
@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_success(client: str, mode: str, stream: bool, litellm: ModuleType) -> None:
    reply = TOOL_CALL if mode == "tool" else REPLY
    with Simulator(models=[SimModel(MODEL, reply=reply)], strict_models=True) as sim:
        result = CLIENTS[client](sim, mode, stream)
        # A streaming client can read the last event before the server's handler returns.
        assert sim.wait_idle()
        assert sim.stats().served == 1
    if mode == "tool":
        assert result.tool_calls == [("get_weather", {"city": "Paris"})]
    else:
        assert result.text == REPLY
    assert (result.prompt_tokens, result.completion_tokens) == expected_usage(litellm, mode)


@pytest.mark.parametrize("method", ["json_schema", "function_calling", "json_mode"])
def test_langchain_structured_output(method: str) -> None:
    from langchain_openai import ChatOpenAI
    from pydantic import BaseModel

    class Capital(BaseModel):
        city: str
        population_millions: float

    with Simulator(models=[SimModel(MODEL, reply="Paris")]) as sim:
        chat = ChatOpenAI(
            model=MODEL,
            base_url=sim.base_url("openai"),
            api_key="sk-sim",  # type: ignore[arg-type]
            max_retries=0,
        )
        if method == "json_mode":
            sim.add_model(SimModel(MODEL, reply='{"city": "Paris", "population_millions": 2.1}'))
        out = chat.with_structured_output(Capital, method=method).invoke(MESSAGES)  # type: ignore[arg-type]
    assert isinstance(out, Capital)
    assert out.city == "Paris"

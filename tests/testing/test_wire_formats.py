"""Wire-format details: tool calls, JSON output, usage details, Anthropic and Ollama shapes."""

from __future__ import annotations

import json
import threading
from types import ModuleType

import anthropic
import httpx
import openai
import pytest

from aipowertools.testing import (
    Reply,
    SimModel,
    SimRequest,
    Simulator,
    SimulatorStopError,
    ToolCall,
)

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "unit": {"enum": ["c", "f"]},
                    "days": {"type": "integer", "minimum": 1},
                },
                "required": ["city"],
            },
        },
    },
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}},
]
USER = [{"role": "user", "content": "Weather and time in Paris?"}]


def test_parallel_tool_calls_and_schema_filled_arguments(llm_simulator: Simulator) -> None:
    llm_simulator.add_model(
        SimModel("m", reply=Reply(tool_calls=[ToolCall("get_weather"), ToolCall("get_time", {})]))
    )
    with openai.OpenAI(base_url=llm_simulator.base_url(), api_key="k", max_retries=0) as client:
        out = client.chat.completions.create(model="m", messages=USER, tools=TOOLS)  # type: ignore[arg-type]
    choice = out.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]  # type: ignore[union-attr]
    assert json.loads(calls[0].function.arguments) == {"city": "example", "unit": "c", "days": 1}  # type: ignore[union-attr]
    assert calls[0].id != calls[1].id


def test_forced_tool_choice_and_no_tools_offered(llm_simulator: Simulator) -> None:
    llm_simulator.add_model(SimModel("m", reply="plain text"))
    url = llm_simulator.base_url() + "/chat/completions"
    forced = httpx.post(
        url,
        json={
            "model": "m",
            "messages": USER,
            "tools": TOOLS,
            "tool_choice": {"type": "function", "function": {"name": "get_time"}},
        },
    ).json()
    assert forced["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_time"
    llm_simulator.add_model(SimModel("t", reply=ToolCall("get_weather", {"city": "Oslo"})))
    untooled = httpx.post(url, json={"model": "t", "messages": USER}).json()
    message = untooled["choices"][0]["message"]
    assert "tool_calls" not in message
    assert "no tools were offered" in message["content"]


def test_json_mode_and_json_schema(llm_simulator: Simulator) -> None:
    llm_simulator.add_model(SimModel("m", reply="not json"))
    url = llm_simulator.base_url() + "/chat/completions"
    mode = httpx.post(
        url,
        json={
            "model": "m",
            "messages": USER,
            "response_format": {"type": "json_object"},
        },
    ).json()
    assert json.loads(mode["choices"][0]["message"]["content"]) == {"reply": "not json"}
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "temps": {"type": "array", "items": {"type": "number"}, "minItems": 2},
            "ok": {"type": "boolean"},
            "where": {"$ref": "#/$defs/Place"},
            "note": {"anyOf": [{"type": "null"}, {"type": "string"}]},
        },
        "$defs": {"Place": {"type": "object", "properties": {"lat": {"type": "number"}}}},
    }
    structured = httpx.post(
        url,
        json={
            "model": "m",
            "messages": USER,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "w", "schema": schema},
            },
        },
    ).json()
    assert json.loads(structured["choices"][0]["message"]["content"]) == {
        "city": "not json",
        "temps": [0.0, 0.0],
        "ok": True,
        "where": {"lat": 0.0},
        "note": "not json",
    }


def test_cached_and_reasoning_token_details(llm_simulator: Simulator, litellm: ModuleType) -> None:
    llm_simulator.add_model(SimModel("o3-mini", reply="42", cached_tokens=4, reasoning_tokens=100))
    response = litellm.completion(
        model="openai/o3-mini",
        api_base=llm_simulator.base_url(),
        api_key="k",
        messages=USER,
    )
    usage = response.usage
    text_tokens = litellm.token_counter(model="o3-mini", text="42", count_response_tokens=True)
    assert usage.completion_tokens == text_tokens + 100
    assert usage.completion_tokens_details.reasoning_tokens == 100
    assert usage.prompt_tokens_details.cached_tokens == 4


def test_anthropic_stream_with_tool_use_and_cache_usage(llm_simulator: Simulator) -> None:
    llm_simulator.add_model(
        SimModel(
            "claude",
            reply=Reply(text="Checking.", tool_calls=[ToolCall("get_weather", {"city": "Paris"})]),
            cached_tokens=5,
            cache_creation_tokens=3,
        )
    )
    client = anthropic.Anthropic(
        base_url=llm_simulator.base_url("anthropic"), api_key="k", max_retries=0
    )
    tools = [{"name": "get_weather", "input_schema": TOOLS[0]["function"]["parameters"]}]  # type: ignore[index]
    with client.messages.stream(
        model="claude",
        max_tokens=100,
        messages=USER,  # type: ignore[arg-type]
        tools=tools,
    ) as stream:
        message = stream.get_final_message()
    assert message.stop_reason == "tool_use"
    assert [b.type for b in message.content] == ["text", "tool_use"]
    assert message.content[1].input == {"city": "Paris"}  # type: ignore[union-attr]
    assert message.usage.cache_read_input_tokens == 5
    assert message.usage.cache_creation_input_tokens == 3
    (record,) = llm_simulator.requests
    assert message.usage.input_tokens == record.prompt_tokens - 8
    client.close()


def test_anthropic_tool_result_round_trip_is_counted(llm_simulator: Simulator) -> None:
    seen: list[SimRequest] = []

    def script(request: SimRequest) -> str:
        seen.append(request)
        return "It is sunny."

    llm_simulator.add_model(SimModel("claude", reply=script))
    body = {
        "model": "claude",
        "max_tokens": 50,
        "system": [{"type": "text", "text": "Be brief."}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"c": 1}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                    {"type": "image", "source": {"type": "base64", "data": ""}},
                ],
            },
        ],
    }
    reply = httpx.post(llm_simulator.url + "/v1/messages", json=body).json()
    assert reply["content"] == [{"type": "text", "text": "It is sunny."}]
    roles = [m["role"] for m in seen[0].messages]
    assert roles == ["system", "user", "assistant", "tool", "user"]
    assert seen[0].messages[2]["tool_calls"][0]["function"]["name"] == "get_weather"


def test_ollama_endpoints(llm_simulator: Simulator) -> None:
    llm_simulator.add_model(SimModel("llama3", reply="Bonjour.", context_window=8192))
    root = llm_simulator.base_url("ollama")
    tags = httpx.get(root + "/api/tags").json()
    assert tags["models"][0]["name"] == "llama3:latest"
    show = httpx.post(root + "/api/show", json={"model": "llama3:latest"}).json()
    assert show["model_info"]["llama.context_length"] == 8192
    assert httpx.get(root + "/api/version").json()["version"]
    lines = httpx.post(root + "/api/chat", json={"model": "llama3", "messages": USER}).text
    events = [json.loads(line) for line in lines.splitlines()]
    assert "".join(e["message"]["content"] for e in events) == "Bonjour."
    assert events[-1]["done"] is True
    assert events[-1]["eval_count"] == llm_simulator.requests[-1].completion_tokens
    plain = httpx.post(
        root + "/api/chat",
        json={
            "model": "llama3",
            "messages": USER,
            "stream": False,
            "format": "json",
        },
    ).json()
    assert json.loads(plain["message"]["content"]) == {"reply": "Bonjour."}


def test_bad_requests_get_400_in_the_flavor_shape(llm_simulator: Simulator) -> None:
    bad_json = httpx.post(llm_simulator.base_url() + "/chat/completions", content=b"{nope")
    assert bad_json.status_code == 400
    assert "invalid JSON" in bad_json.json()["error"]["message"]
    no_messages = httpx.post(llm_simulator.url + "/v1/messages", json={"model": "m"})
    assert no_messages.status_code == 400
    assert no_messages.json()["type"] == "error"
    ollama = httpx.post(llm_simulator.url + "/api/chat", json={"model": "m", "messages": "x"})
    assert ollama.status_code == 400
    assert "messages" in ollama.json()["error"]


def test_timing_ttft_and_per_token(llm_simulator: Simulator) -> None:
    llm_simulator.add_model(
        SimModel("slow", reply="one two three four", ttft_ms=60, per_token_ms=20)
    )
    body = {"model": "slow", "messages": USER, "stream": True}
    with httpx.stream("POST", llm_simulator.base_url() + "/chat/completions", json=body) as r:
        chunks = [line for line in r.iter_lines() if line.startswith("data: {")]
    assert len(chunks) == 6  # role, 4 words, finish
    (record,) = llm_simulator.requests
    assert record.latency_ms >= 60 + 20 * record.completion_tokens * 0.8


async def test_async_context_manager_and_fixture_in_async_test(llm_simulator: Simulator) -> None:
    async with Simulator(models=[SimModel("m", reply="async hi")]) as sim:
        client = openai.AsyncOpenAI(base_url=sim.base_url(), api_key="k", max_retries=0)
        out = await client.chat.completions.create(model="m", messages=USER)  # type: ignore[arg-type]
        await client.close()
        assert out.choices[0].message.content == "async hi"
    assert not sim.running
    async with httpx.AsyncClient() as client:
        models = (await client.get(llm_simulator.base_url() + "/models")).json()
    assert models == {"object": "list", "data": []}


def test_stop_is_bounded_when_a_handler_blocks_the_loop() -> None:
    """A blocked event loop ends stop() with a typed error instead of hanging the caller."""
    sim = Simulator().start()
    loop, thread = sim._loop, sim._thread
    assert loop is not None
    assert thread is not None
    release = threading.Event()
    blocked = threading.Event()

    def block() -> None:  # a handler that never yields to the loop
        blocked.set()
        release.wait()

    loop.call_soon_threadsafe(block)
    assert blocked.wait(10)
    with pytest.raises(SimulatorStopError, match=r"did not stop within 0\.2 s"):
        sim.stop(timeout=0.2)
    assert not sim.running
    release.set()  # the abandoned thread finishes its teardown once the loop runs again
    thread.join(10)
    assert not thread.is_alive()
    sim.stop()  # idempotent after the error too


def test_start_and_stop_are_idempotent() -> None:
    sim = Simulator()
    assert sim.start() is sim.start()
    sim.stop()
    sim.stop()
    with pytest.raises(Exception, match="not running"):
        _ = sim.url

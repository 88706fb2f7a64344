"""Translation to and from the Anthropic and Ollama wire formats, without a server."""

from __future__ import annotations

import json

import pytest

from aipowertools.core.errors import ConfigurationError
from aipowertools.router import Deployment
from aipowertools.router import _wire_anthropic as anthropic
from aipowertools.router import _wire_ollama as ollama

PNG = "data:image/png;base64,iVBORw0KGgo="
CALL = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}
TOOLS = [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {}}}]


def test_anthropic_messages_system_blocks_tools_and_merged_turns() -> None:
    stable = {"type": "text", "text": "rules", "cache_control": {"type": "ephemeral"}}
    system, turns = anthropic.messages_of(
        [
            {"role": "system", "content": [stable]},
            {"role": "user", "content": [{"type": "text", "text": "look"},
                                         {"type": "image_url", "image_url": {"url": PNG}}]},
            {"role": "user", "content": [{"type": "image_url", "image_url": "https://x/y.png"}]},
            {"role": "assistant", "content": "calling", "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": "c1", "content": "42"},
            {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "7"}]},
            {"role": "user", "content": "thanks"},
            {"role": "assistant", "content": None},
        ]
    )  # fmt: skip
    assert system == [stable]
    assert [t["role"] for t in turns] == ["user", "assistant", "user", "assistant"]
    first = turns[0]["content"]
    assert first[1]["source"] == {"type": "base64", "media_type": "image/png",
                                  "data": "iVBORw0KGgo="}  # fmt: skip
    assert first[2]["source"] == {"type": "url", "url": "https://x/y.png"}
    assert turns[1]["content"][1] == {"type": "tool_use", "id": "c1", "name": "f",
                                      "input": {"x": 1}}  # fmt: skip
    results = turns[2]["content"]
    assert [b.get("tool_use_id") for b in results] == ["c1", "c2", None]
    assert results[0]["content"] == [{"type": "text", "text": "42"}]
    assert turns[3]["content"] == []


def test_anthropic_request_fields() -> None:
    dep = Deployment("anthropic/claude-x", api_key="k", params={"top_k": 5})
    url, headers, body = anthropic.request(
        dep,
        [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
        {"max_completion_tokens": 9, "stop": "END", "tools": TOOLS, "tool_choice": "required",
         "parallel_tool_calls": False, "user": "u1", "temperature": 0.3},
        stream=True,
    )  # fmt: skip
    assert url == "https://api.anthropic.com/v1/messages"
    assert headers["x-api-key"] == "k"
    assert headers["anthropic-version"]
    assert body["system"] == "be brief"
    assert body["max_tokens"] == 9
    assert body["stop_sequences"] == ["END"]
    assert body["top_k"] == 5
    schema = {"type": "object", "properties": {}}
    assert body["tools"] == [{"name": "f", "input_schema": schema, "description": "d"}]
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert body["metadata"] == {"user_id": "u1"}
    assert body["stream"] is True
    for base, expected in (
        ("http://h:1", "http://h:1/v1/messages"),
        ("http://h:1/v1", "http://h:1/v1/messages"),
        ("http://h:1/v1/messages/", "http://h:1/v1/messages"),
    ):
        assert anthropic.request(dep.replace(api_base=base), [], {}, False)[0] == expected
    named = {"type": "function", "function": {"name": "f"}}
    _, _, chosen = anthropic.request(dep, [], {"tools": TOOLS, "tool_choice": named}, False)
    assert chosen["tool_choice"] == {"type": "tool", "name": "f"}
    assert chosen["max_tokens"] == 4096


def test_anthropic_bad_input_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="role"):
        anthropic.messages_of([{"role": "robot", "content": "x"}])
    bad = {**CALL, "function": {"name": "f", "arguments": "{oops"}}
    with pytest.raises(ConfigurationError, match="not JSON"):
        anthropic.messages_of([{"role": "assistant", "content": "", "tool_calls": [bad]}])
    with pytest.raises(ConfigurationError, match="mapping"):
        anthropic.messages_of([{"role": "user", "content": ["just a string"]}])


def _events(*events: dict[str, object]) -> list[bytes]:
    return [b"event: x", *(b"data: " + json.dumps(e).encode() for e in events)]


def test_anthropic_stream_reader_usage_tools_and_errors() -> None:
    reader = anthropic.StreamReader()
    usage = {"input_tokens": 3, "cache_read_input_tokens": 10, "cache_creation_input_tokens": 5}
    lines = _events(
        {"type": "message_start", "message": {"model": "claude-x", "usage": usage}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "a"}},
        {"type": "content_block_start", "index": 1,
         "content_block": {"type": "tool_use", "id": "t1", "name": "f"}},
        {"type": "content_block_delta", "index": 1,
         "delta": {"type": "input_json_delta", "partial_json": '{"x"'}},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"},
         "usage": {"output_tokens": 4}},
    )  # fmt: skip
    chunks = [c for line in lines for c in reader.feed(line)]
    assert chunks[0].content == "a"
    assert chunks[1].tool_call_chunks[0].name == "f"
    assert chunks[2].tool_call_chunks[0].arguments == '{"x"'
    last = chunks[-1]
    assert (last.input_tokens, last.output_tokens) == (18, 4)
    assert (last.cached_input_tokens, last.cache_creation_tokens) == (10, 5)
    assert last.finish_reason == "tool_calls"
    with pytest.raises(anthropic.StreamError) as info:
        list(reader.feed(_events({"type": "error", "error": {"type": "overloaded_error"}})[1]))
    assert info.value.status_code == 529


def test_anthropic_completion_reads_every_block() -> None:
    done = anthropic.completion(
        {"content": [{"type": "text", "text": "x"}, {"type": "thinking", "thinking": "..."},
                     {"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}}],
         "stop_reason": "max_tokens", "model": "m"}
    )  # fmt: skip
    assert done.content == "x"
    assert json.loads(done.tool_calls[0].arguments) == {"a": 1}
    assert done.finish_reason == "length"
    assert done.usage_estimated


def test_ollama_request_options_images_format_and_tools() -> None:
    dep = Deployment("ollama/llama3", params={"keep_alive": "5m"})
    url, headers, body = ollama.request(
        dep,
        [
            {"role": "user", "content": [{"type": "text", "text": "see"},
                                         {"type": "image_url", "image_url": {"url": PNG}}]},
            {"role": "assistant", "content": None, "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": "c1", "name": "f", "content": "42"},
        ],
        {"max_tokens": 7, "temperature": 0, "stop": ["x"], "tools": TOOLS,
         "response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "object"}}}},
        stream=False,
    )  # fmt: skip
    assert url == "http://localhost:11434/api/chat"
    assert "Authorization" not in headers
    assert body["options"] == {"num_predict": 7, "temperature": 0, "stop": ["x"]}
    assert body["format"] == {"type": "object"}
    assert body["keep_alive"] == "5m"
    assert body["stream"] is False
    user, assistant, tool = body["messages"]
    assert user == {"role": "user", "content": "see", "images": ["iVBORw0KGgo="]}
    assert assistant["tool_calls"] == [{"function": {"name": "f", "arguments": {"x": 1}}}]
    assert assistant["content"] == ""
    assert tool["tool_name"] == "f"
    _, _, json_mode = ollama.request(
        dep.replace(api_key="k"), [], {"response_format": {"type": "json_object"}}, True
    )
    assert json_mode["format"] == "json"
    assert ollama.request(dep.replace(api_base="http://h:1/api/chat"), [], {}, True)[0] == (
        "http://h:1/api/chat"
    )
    assert ollama.accepts("tool_choice", "auto")
    assert not ollama.accepts("tool_choice", "sometimes")
    two = [*TOOLS, {"type": "function", "function": {"name": "g", "parameters": {}}}]
    named = {"type": "function", "function": {"name": "g"}}
    for choice, names in (("required", ["f", "g"]), (named, ["g"]), ("none", None)):
        _, _, chosen = ollama.request(dep, [], {"tools": two, "tool_choice": choice}, False)
        sent = chosen.get("tools")
        assert ([t["function"]["name"] for t in sent] if sent else None) == names


def test_ollama_bad_input_is_a_configuration_error() -> None:
    dep = Deployment("ollama/llama3")
    remote = [{"role": "user", "content": [{"type": "image_url", "image_url": "https://x/y"}]}]
    with pytest.raises(ConfigurationError, match="base64"):
        ollama.request(dep, remote, {}, False)
    with pytest.raises(ConfigurationError, match="mapping"):
        ollama.request(dep, [{"role": "user", "content": [1]}], {}, False)
    bad = [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{"}}]}]
    with pytest.raises(ConfigurationError, match="not JSON"):
        ollama.request(dep, bad, {}, False)


def test_ollama_stream_reader_and_completion() -> None:
    reader = ollama.StreamReader()
    lines = [
        b'{"model": "m", "message": {"content": "he"}, "done": false}',
        b"",
        b'{"model": "m", "message": {"content": "", "tool_calls": [{"function": {"name": "f",'
        b' "arguments": {"x": 1}}}]}, "done": false}',
        b'{"model": "m", "message": {"content": ""}, "done": true, "done_reason": "stop",'
        b' "prompt_eval_count": 5, "eval_count": 2}',
    ]
    chunks = [c for line in lines for c in reader.feed(line)]
    assert chunks[0].content == "he"
    assert chunks[1].tool_call_chunks[0].id == "call_0"
    assert (chunks[-1].input_tokens, chunks[-1].output_tokens) == (5, 2)
    assert chunks[-1].finish_reason == "tool_calls"
    with pytest.raises(ollama.StreamError):
        list(reader.feed(b'{"error": "model crashed"}'))
    done = ollama.completion({"message": {"content": "x"}, "done_reason": "length"})
    assert done.finish_reason == "length"
    assert done.usage_estimated
    assert ollama.completion({"message": {}, "done_reason": ""}).finish_reason is None

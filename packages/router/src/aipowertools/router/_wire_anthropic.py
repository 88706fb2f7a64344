"""Anthropic's Messages API on the wire: OpenAI-style messages in, a Completion or Chunks out.

The router speaks OpenAI's message format everywhere; this module translates a call to
``POST /v1/messages`` and reads the answer back, streamed (server-sent events) or not:

* system messages become the ``system`` field (as blocks when a part carries
  ``cache_control``, so prompt-caching breakpoints survive);
* an assistant's ``tool_calls`` become ``tool_use`` blocks and ``tool`` messages become
  ``tool_result`` blocks of a user turn; consecutive turns of one role are merged, as the API
  requires alternating roles;
* ``max_tokens`` is required by the API: the call's, else the deployment's, else 4,096;
* usage is reported the way litellm and core's cost function read it: input tokens include
  the cache reads and writes, with both counted apart as well.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from aipowertools.core.errors import ConfigurationError
from aipowertools.router._types import Chunk, Completion, ToolCall, ToolCallChunk

if TYPE_CHECKING:
    from aipowertools.router._deployment import Deployment

_BASE = "https://api.anthropic.com"
_VERSION = "2023-06-01"
_DEFAULT_MAX_TOKENS = 4096

#: Call parameters this wire translates itself; any other goes to the fallback transport.
PARAMS = frozenset(
    {
        "max_tokens", "max_completion_tokens", "metadata", "parallel_tool_calls", "stop",
        "temperature", "tool_choice", "tools", "top_k", "top_p", "user",
    }
)  # fmt: skip

_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


class StreamError(Exception):
    """An ``error`` event in the middle of a stream (the status the API gives such errors)."""

    def __init__(self, status_code: int, body: str) -> None:
        super().__init__(f"HTTP {status_code}: {body[:500]}")
        self.status_code = status_code
        self.headers: dict[str, str] = {}
        self.body = body


def _url(api_base: str | None) -> str:
    base = (api_base or _BASE).rstrip("/")
    if base.endswith("/v1/messages"):
        return base
    if base.endswith("/v1"):
        return base + "/messages"
    return base + "/v1/messages"


def _image(url: str) -> dict[str, Any]:
    if url.startswith("data:") and ";base64," in url:
        media, data = url[5:].split(";base64,", 1)
        return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _blocks(content: Any) -> list[dict[str, Any]]:
    """OpenAI content (a string or parts) as Anthropic content blocks."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for part in content:
        if not isinstance(part, Mapping):
            raise ConfigurationError(f"a message content part must be a mapping, got {part!r:.60}")
        kind = part.get("type")
        if kind == "text":
            block: dict[str, Any] = {"type": "text", "text": str(part.get("text", ""))}
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url", "") if isinstance(image, Mapping) else str(image or "")
            block = _image(str(url))
        else:  # already an Anthropic block (image, document, ...): sent as it is
            block = dict(part)
        if "cache_control" in part and kind in ("text", "image_url"):
            block["cache_control"] = part["cache_control"]
        blocks.append(block)
    return blocks


def _tool_use(call: Mapping[str, Any]) -> dict[str, Any]:
    function = call.get("function") or {}
    arguments = function.get("arguments") or "{}"
    try:
        parsed = json.loads(arguments) if isinstance(arguments, str) else dict(arguments)
    except ValueError as exc:
        raise ConfigurationError(
            f"the arguments of tool call {call.get('id')!r} are not JSON ({exc}); Anthropic "
            "needs them as an object"
        ) from exc
    return {"type": "tool_use", "id": call.get("id", ""), "name": function.get("name", ""),
            "input": parsed}  # fmt: skip


def messages_of(
    messages: Sequence[Mapping[str, Any]],
) -> tuple[list[dict[str, Any]] | None, list[dict[str, Any]]]:
    """``(system blocks or None, alternating user/assistant turns)`` from OpenAI messages."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_blocks(message.get("content")))
            continue
        if role == "tool":
            result: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": message.get("tool_call_id", ""),
                "content": _blocks(message.get("content")) or "",
            }
            blocks, role = [result], "user"
        elif role == "assistant":
            blocks = _blocks(message.get("content"))
            blocks += [_tool_use(c) for c in message.get("tool_calls") or ()]
        elif role == "user":
            blocks = _blocks(message.get("content"))
        else:
            raise ConfigurationError(
                f"unknown message role {role!r}; use system, user, assistant or tool"
            )
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return (system or None), turns


def _tools(tools: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for tool in tools:
        function = tool.get("function", tool)
        entry: dict[str, Any] = {
            "name": function.get("name", ""),
            "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
        }
        if function.get("description"):
            entry["description"] = function["description"]
        if "cache_control" in tool:
            entry["cache_control"] = tool["cache_control"]
        out.append(entry)
    return out


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any]:
    if isinstance(choice, Mapping):
        name = (choice.get("function") or {}).get("name") or choice.get("name")
        out: dict[str, Any] = {"type": "tool", "name": name}
    else:
        out = {"type": {"required": "any", "any": "any", "none": "none"}.get(str(choice), "auto")}
    if parallel is False and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    return out


def request(
    deployment: Deployment,
    messages: Sequence[Mapping[str, Any]],
    params: Mapping[str, Any],
    stream: bool,
) -> tuple[str, dict[str, str], dict[str, Any]]:
    """``(url, headers, body)`` of one Messages API call."""
    merged = {**(deployment.params or {}), **params}
    system, turns = messages_of(messages)
    max_tokens = merged.get("max_tokens", merged.get("max_completion_tokens"))
    body: dict[str, Any] = {
        "model": deployment.model.split("/", 1)[1],
        "messages": turns,
        "max_tokens": int(max_tokens or deployment.max_output_tokens or _DEFAULT_MAX_TOKENS),
    }
    if system is not None:
        body["system"] = (
            system[0]["text"] if len(system) == 1 and set(system[0]) == {"type", "text"} else system
        )
    for name in ("temperature", "top_p", "top_k"):
        if merged.get(name) is not None:
            body[name] = merged[name]
    stop = merged.get("stop")
    if stop:
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if merged.get("tools"):
        body["tools"] = _tools(merged["tools"])
        if merged.get("tool_choice") is not None or merged.get("parallel_tool_calls") is False:
            body["tool_choice"] = _tool_choice(
                merged.get("tool_choice", "auto"), merged.get("parallel_tool_calls")
            )
    user = merged.get("user") or (merged.get("metadata") or {}).get("user_id")
    if user:
        body["metadata"] = {"user_id": str(user)}
    if stream:
        body["stream"] = True
    key = deployment.api_key or os.environ.get("ANTHROPIC_API_KEY", "")
    headers = {"Content-Type": "application/json", "anthropic-version": _VERSION}
    if key:
        headers["x-api-key"] = key
    return _url(deployment.api_base), headers, body


def _usage(usage: Mapping[str, Any] | None) -> tuple[int, int, int, int]:
    """``(input incl. cache, output, cache reads, cache writes)`` from Anthropic usage."""
    if not usage:
        return 0, 0, 0, 0
    read = int(usage.get("cache_read_input_tokens") or 0)
    write = int(usage.get("cache_creation_input_tokens") or 0)
    fresh = int(usage.get("input_tokens") or 0)
    return fresh + read + write, int(usage.get("output_tokens") or 0), read, write


def completion(response: Mapping[str, Any]) -> Completion:
    """A :class:`Completion` from a Messages API response body."""
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in response.get("content") or ():
        if block.get("type") == "text":
            texts.append(str(block.get("text", "")))
        elif block.get("type") == "tool_use":
            calls.append(
                ToolCall(
                    id=str(block.get("id", "")),
                    name=str(block.get("name", "")),
                    arguments=json.dumps(block.get("input") or {}),
                )
            )
    usage = response.get("usage")
    prompt, output, read, write = _usage(usage)
    reason = response.get("stop_reason")
    return Completion(
        content="".join(texts),
        tool_calls=calls,
        input_tokens=prompt,
        output_tokens=output,
        cached_input_tokens=read,
        cache_creation_tokens=write,
        finish_reason=_FINISH.get(str(reason), reason) if reason else None,
        model=response.get("model"),
        usage_estimated=usage is None,
        raw=response,
    )


class StreamReader:
    """Turns the events of one streamed answer into :class:`Chunk` objects."""

    def __init__(self) -> None:
        self.model: str | None = None
        self.input = self.read = self.write = 0
        self.tools: dict[int, int] = {}  # content block index -> tool call index

    def feed(self, line: bytes) -> Iterator[Chunk]:
        """Chunks for one line of the event stream (``data:`` lines carry the events)."""
        if not line.startswith(b"data:"):
            return
        event = json.loads(line[5:])
        kind = event.get("type")
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta":
                yield Chunk(content=str(delta.get("text", "")), model=self.model)
            elif delta.get("type") == "input_json_delta":
                index = self.tools.get(int(event.get("index", 0)), 0)
                piece = ToolCallChunk(index=index, arguments=str(delta.get("partial_json", "")))
                yield Chunk(tool_call_chunks=[piece], model=self.model)
        elif kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = self.tools.setdefault(int(event.get("index", 0)), len(self.tools))
                start = ToolCallChunk(
                    index=index, id=block.get("id"), name=block.get("name"), arguments=""
                )
                yield Chunk(tool_call_chunks=[start], model=self.model)
        elif kind == "message_start":
            message = event.get("message") or {}
            self.model = message.get("model")
            self.input, _, self.read, self.write = _usage(message.get("usage"))
        elif kind == "message_delta":
            reason = (event.get("delta") or {}).get("stop_reason")
            usage = event.get("usage") or {}
            if usage.get("input_tokens") is not None:  # newer API versions report it here too
                self.input, _, self.read, self.write = _usage(usage)
            yield Chunk(
                finish_reason=_FINISH.get(str(reason), reason) if reason else None,
                input_tokens=self.input,
                output_tokens=int(usage.get("output_tokens") or 0),
                cached_input_tokens=self.read,
                cache_creation_tokens=self.write,
                model=self.model,
            )
        elif kind == "error":
            error = event.get("error") or {}
            status = 529 if error.get("type") == "overloaded_error" else 500
            raise StreamError(status, json.dumps(event))

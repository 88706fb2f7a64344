"""Ollama's chat API on the wire (``POST /api/chat``, newline-delimited JSON when streamed).

Ollama takes OpenAI-style roles, but message content is a string (images go in ``images`` as
base64), tool call arguments are JSON objects rather than JSON text, sampling parameters live
under ``options`` (``max_tokens`` is ``num_predict``), and a JSON answer is asked for with
``format`` (``"json"`` or a JSON schema). Usage is ``prompt_eval_count`` / ``eval_count``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from aipowertools.core.errors import ConfigurationError
from aipowertools.router._types import Chunk, Completion, ToolCall, ToolCallChunk

if TYPE_CHECKING:
    from aipowertools.router._deployment import Deployment

_BASE = "http://localhost:11434"

# OpenAI parameter -> Ollama option.
_OPTIONS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "seed": "seed",
    "stop": "stop",
    "max_tokens": "num_predict",
    "max_completion_tokens": "num_predict",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
}

#: Call parameters this wire translates itself; any other goes to the fallback transport.
PARAMS = frozenset({*_OPTIONS, "tools", "tool_choice", "response_format", "keep_alive", "think"})


def accepts(key: str, value: Any) -> bool:
    """Whether a known parameter's value can be said on this wire (see :func:`_tools`)."""
    return (
        key != "tool_choice"
        or value in (None, "auto", "none", "required", "any")
        or (isinstance(value, Mapping))
    )


def _tools(tools: Sequence[Mapping[str, Any]], choice: Any) -> list[Mapping[str, Any]]:
    """The tools to send for ``tool_choice``: Ollama has no such field.

    ``"none"`` sends no tools; a named tool sends that tool alone, so it is the only one the
    model can call; ``"auto"`` and ``"required"`` send them all (Ollama cannot be made to call
    one: with ``"required"`` the model may still answer in text).
    """
    if choice == "none":
        return []
    if isinstance(choice, Mapping):
        name = (choice.get("function") or {}).get("name") or choice.get("name")
        return [t for t in tools if (t.get("function") or t).get("name") == name]
    return list(tools)


class StreamError(Exception):
    """An ``{"error": ...}`` line in the middle of a stream."""

    def __init__(self, body: str) -> None:
        super().__init__(f"HTTP 500: {body[:500]}")
        self.status_code = 500
        self.headers: dict[str, str] = {}
        self.body = body


def _url(api_base: str | None) -> str:
    base = (api_base or _BASE).rstrip("/")
    return base if base.endswith("/api/chat") else base + "/api/chat"


def _message(message: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.get("role", "user")}
    content = message.get("content")
    if isinstance(content, list):
        texts: list[str] = []
        images: list[str] = []
        for part in content:
            if not isinstance(part, Mapping):
                raise ConfigurationError(
                    f"a message content part must be a mapping, got {part!r:.60}"
                )
            if part.get("type") == "image_url":
                image = part.get("image_url")
                url = str(image.get("url", "") if isinstance(image, Mapping) else image or "")
                if not url.startswith("data:") or ";base64," not in url:
                    raise ConfigurationError(
                        "Ollama takes images as base64 data: URLs only; download the image "
                        "and pass it as data:image/...;base64,..."
                    )
                images.append(url.split(";base64,", 1)[1])
            else:
                texts.append(str(part.get("text", "")))
        out["content"] = "".join(texts)
        if images:
            out["images"] = images
    else:
        out["content"] = "" if content is None else str(content)
    calls = message.get("tool_calls")
    if calls:
        out["tool_calls"] = []
        for call in calls:
            function = call.get("function") or {}
            arguments = function.get("arguments") or "{}"
            try:
                parsed = json.loads(arguments) if isinstance(arguments, str) else arguments
            except ValueError as exc:
                raise ConfigurationError(
                    f"the arguments of tool call {call.get('id')!r} are not JSON ({exc})"
                ) from exc
            out["tool_calls"].append({"function": {"name": function.get("name", ""),
                                                   "arguments": parsed}})  # fmt: skip
    if message.get("role") == "tool" and message.get("name"):
        out["tool_name"] = message["name"]
    return out


def _format(response_format: Any) -> Any:
    if not isinstance(response_format, Mapping):
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        schema = response_format.get("json_schema") or {}
        return schema.get("schema", schema)
    return None


def request(
    deployment: Deployment,
    messages: Sequence[Mapping[str, Any]],
    params: Mapping[str, Any],
    stream: bool,
) -> tuple[str, dict[str, str], dict[str, Any]]:
    """``(url, headers, body)`` of one chat call."""
    merged = {**(deployment.params or {}), **params}
    body: dict[str, Any] = {
        "model": deployment.model.split("/", 1)[1],
        "messages": [_message(m) for m in messages],
        "stream": stream,
    }
    options = {_OPTIONS[k]: v for k, v in merged.items() if k in _OPTIONS and v is not None}
    if options:
        body["options"] = options
    tools = _tools(merged.get("tools") or (), merged.get("tool_choice"))
    if tools:
        body["tools"] = tools
    fmt = _format(merged.get("response_format"))
    if fmt is not None:
        body["format"] = fmt
    for name in ("keep_alive", "think"):
        if name in merged:
            body[name] = merged[name]
    headers = {"Content-Type": "application/json"}
    if deployment.api_key:
        headers["Authorization"] = f"Bearer {deployment.api_key}"
    return _url(deployment.api_base), headers, body


def _calls(message: Mapping[str, Any]) -> list[ToolCall]:
    return [
        ToolCall(
            id=str(call.get("id") or f"call_{i}"),
            name=str((call.get("function") or {}).get("name", "")),
            arguments=json.dumps((call.get("function") or {}).get("arguments") or {}),
        )
        for i, call in enumerate(message.get("tool_calls") or ())
    ]


def _finish(reason: Any, has_calls: bool) -> str | None:
    if has_calls:
        return "tool_calls"
    if reason in (None, ""):
        return None
    return "length" if reason == "length" else "stop"


def completion(response: Mapping[str, Any]) -> Completion:
    """A :class:`Completion` from an ``/api/chat`` response body."""
    message = response.get("message") or {}
    calls = _calls(message)
    has_usage = "prompt_eval_count" in response or "eval_count" in response
    return Completion(
        content=str(message.get("content") or ""),
        tool_calls=calls,
        input_tokens=int(response.get("prompt_eval_count") or 0),
        output_tokens=int(response.get("eval_count") or 0),
        finish_reason=_finish(response.get("done_reason"), bool(calls)),
        model=response.get("model"),
        usage_estimated=not has_usage,
        raw=response,
    )


class StreamReader:
    """Turns the JSON lines of one streamed answer into :class:`Chunk` objects."""

    def __init__(self) -> None:
        self.calls = 0

    def feed(self, line: bytes) -> Iterator[Chunk]:
        """Chunks for one line of the stream."""
        line = line.strip()
        if not line:
            return
        event = json.loads(line)
        if "error" in event:
            raise StreamError(json.dumps(event))
        message = event.get("message") or {}
        model = event.get("model")
        pieces = []
        for call in _calls(message):
            pieces.append(
                ToolCallChunk(
                    index=self.calls, id=f"call_{self.calls}", name=call.name,
                    arguments=call.arguments,
                )
            )  # fmt: skip
            self.calls += 1
        if message.get("content") or pieces:
            yield Chunk(content=str(message.get("content") or ""), tool_call_chunks=pieces,
                        model=model)  # fmt: skip
        if event.get("done"):
            yield Chunk(
                finish_reason=_finish(event.get("done_reason"), self.calls > 0),
                input_tokens=int(event.get("prompt_eval_count") or 0),
                output_tokens=int(event.get("eval_count") or 0),
                model=model,
            )

"""The canonical form of a request: everything that changes the answer, nothing that does not.

Two requests a provider treats as identical get one key; two it treats differently never
share one. The canonical form is JSON with sorted keys, where:

* equivalent parameter spellings are folded (``max_completion_tokens`` -> ``max_tokens``,
  ``stop_sequences`` -> ``stop``, a lone ``stop`` string -> a one-item list);
* ``None`` values are dropped (``temperature=None`` is the same as no temperature), and whole
  floats are integers (``temperature=1`` is ``temperature=1.0``);
* parameters that do not reach the model (``stream``, ``timeout``, keys, URLs, metadata) are
  left out;
* message roles are spelled the OpenAI way (``human`` -> ``user``, ``ai`` -> ``assistant``), a
  content made of one text part is that text, and tool-call arguments are compared as JSON;
* whitespace inside text is collapsed only when the user opts in (``normalize="whitespace"``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Scope = Literal["content", "model", "user", "global"]
SCOPES: tuple[Scope, ...] = ("content", "model", "user", "global")

# Parameters that never change what the model answers.
IGNORED = frozenset(
    {
        "stream",
        "stream_options",
        "timeout",
        "request_timeout",
        "api_key",
        "api_base",
        "base_url",
        "api_version",
        "organization",
        "extra_headers",
        "headers",
        "metadata",
        "user",
        "callbacks",
        "run_name",
        "run_id",
        "request_id",
        "max_retries",
        "num_retries",
    }
)
# Spelling -> canonical name, folded when the canonical name is not given too.
ALIASES = {
    "max_completion_tokens": "max_tokens",
    "max_output_tokens": "max_tokens",
    "stop_sequences": "stop",
}
# What changes the answer but not the content: the "global" scope leaves these out.
SAMPLING = frozenset(
    {
        "temperature",
        "top_p",
        "top_k",
        "seed",
        "max_tokens",
        "stop",
        "n",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "reasoning_effort",
    }
)
ROLES = {"human": "user", "ai": "assistant", "function": "tool"}
_WS = re.compile(r"\s+")
# Message fields that never reach the provider (ids, what an earlier answer reported).
_NOT_SENT = frozenset({"pinned", "id", "response_metadata", "usage_metadata", "example"})


class Uncacheable(Exception):
    """A request holds a value with no canonical form (an arbitrary object): never cached."""


@dataclass(frozen=True)
class RequestKey:
    """The cache key of a request, its semantic partition and its text to embed."""

    key: str
    partition: str
    text: str


def _number(value: float) -> int | float:
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def canonical_value(value: Any) -> Any:
    """A JSON-ready canonical copy of ``value`` (None values dropped, whole floats as ints)."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, Mapping):
        return {str(k): canonical_value(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [canonical_value(v) for v in value]
    schema = getattr(value, "model_json_schema", None)
    if callable(schema):  # a pydantic model class used as a response format
        return {"json_schema": canonical_value(schema())}
    raise Uncacheable(f"no canonical form for {type(value).__name__}")


def _text(text: str, normalize: bool) -> str:
    return _WS.sub(" ", text).strip() if normalize else text


def _content(content: Any, normalize: bool) -> Any:
    if isinstance(content, str):
        return _text(content, normalize)
    if isinstance(content, (list, tuple)):
        parts = []
        for part in content:
            if isinstance(part, str):
                part = {"type": "text", "text": part}
            part = canonical_value(part)
            if isinstance(part, dict) and part.get("type") == "text":
                part["text"] = _text(str(part.get("text", "")), normalize)
            parts.append(part)
        if len(parts) == 1 and set(parts[0]) == {"type", "text"} and parts[0]["type"] == "text":
            return parts[0]["text"]
        return parts
    return canonical_value(content)


def _arguments(arguments: Any) -> Any:
    if isinstance(arguments, str):
        try:
            return canonical_value(json.loads(arguments))
        except ValueError:
            return arguments
    return canonical_value(arguments)


def _tool_call(call: Any) -> Any:
    call = canonical_value(call)
    if not isinstance(call, dict):
        return call
    if "function" not in call and "name" in call:  # LangChain form: name, args, id
        call = {
            "id": call.get("id"),
            "type": "function",
            "function": {"name": call["name"], "arguments": call.get("args", {})},
        }
    function = call.get("function")
    if isinstance(function, dict) and "arguments" in function:
        function["arguments"] = _arguments(function["arguments"])
    call.setdefault("type", "function")
    return {k: v for k, v in call.items() if v is not None}


def _message(message: Any, normalize: bool) -> dict[str, Any]:
    if isinstance(message, str):
        return {"role": "user", "content": _text(message, normalize)}
    if not isinstance(message, Mapping):
        raise Uncacheable(f"a message is a mapping, not {type(message).__name__}")
    out: dict[str, Any] = {}
    for name, value in message.items():
        if value is None or name in _NOT_SENT:
            continue
        if name in ("additional_kwargs", "invalid_tool_calls") and not value:
            continue  # empty is the same as absent
        if name == "role" or name == "type":
            out["role"] = ROLES.get(str(value), str(value))
        elif name == "content":
            out["content"] = _content(value, normalize)
        elif name == "tool_calls":
            if value:
                out["tool_calls"] = [_tool_call(c) for c in value]
        else:
            out[str(name)] = canonical_value(value)
    if "content" not in out:
        out["content"] = ""
    return out


def canonical_messages(messages: str | Sequence[Any], normalize: bool) -> list[dict[str, Any]]:
    """Messages in canonical form (a string is one user message)."""
    if isinstance(messages, str):
        return [_message(messages, normalize)]
    return [_message(m, normalize) for m in messages]


def canonical_params(params: Mapping[str, Any], scope: Scope) -> dict[str, Any]:
    """Parameters that change the answer, in canonical spelling."""
    out: dict[str, Any] = {}
    for name, value in params.items():
        if value is None or name in IGNORED:
            continue
        canonical = ALIASES.get(name, name)
        if canonical != name and params.get(canonical) is not None:
            canonical = name  # both spellings given: keep them apart
        if scope == "global" and canonical in SAMPLING:
            continue
        if canonical == "stop" and isinstance(value, str):
            value = [value]
        if canonical == "tools" and not value:
            continue
        out[canonical] = canonical_value(value)
    return out


def dumps(value: Any) -> str:
    """Compact JSON with sorted keys: the canonical text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _digest(value: Any) -> str:
    return hashlib.blake2b(dumps(value).encode("utf-8"), digest_size=20).hexdigest()


def message_text(message: Mapping[str, Any]) -> str:
    """The text of a canonical message (text parts joined by newlines)."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(p.get("text", "")) for p in content if isinstance(p, dict) and "text" in p
        )
    return ""


def request_key(
    *,
    model: str | None,
    messages: str | Sequence[Any],
    params: Mapping[str, Any],
    scope: Scope,
    user: str | None,
    normalize: bool,
) -> RequestKey:
    """The key of a request under ``scope``.

    The semantic partition is the key of the same request without the last user message's
    text; only entries of one partition may answer each other semantically.

    Raises:
        Uncacheable: the request holds a value with no canonical form.
    """
    canon: dict[str, Any] = {
        "scope": scope,
        "messages": canonical_messages(messages, normalize),
        "params": canonical_params(params, scope),
    }
    if scope in ("model", "user"):
        canon["model"] = model
    if scope == "user":
        canon["user"] = user
    key = _digest(canon)
    msgs = canon["messages"]
    text = ""
    if msgs and msgs[-1].get("role") == "user":
        text = message_text(msgs[-1])
        canon["messages"] = [*msgs[:-1], {**msgs[-1], "content": None}]
    canon["semantic"] = True
    return RequestKey(key, _digest(canon), text)

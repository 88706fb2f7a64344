"""Turning a model's reply script into the concrete reply for one request."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from aipowertools.testing._compat import ConfigurationError
from aipowertools.testing._config import ECHO, Reply, SimModel, ToolCall, arguments_json
from aipowertools.testing._request import SimRequest, count_text_tokens, truncate_text

__all__ = [
    "ResolvedReply",
    "ResolvedToolCall",
    "cap_reply",
    "chunk_text",
    "example_for_schema",
    "resolve_reply",
]


@dataclass(frozen=True)
class ResolvedToolCall:
    """A tool call ready for the wire: name, JSON arguments and id."""

    id: str
    name: str
    arguments: str

    @property
    def arguments_obj(self) -> Any:
        """Arguments parsed back from JSON ({} when they are not valid JSON)."""
        try:
            return json.loads(self.arguments)
        except ValueError:
            return {}


@dataclass(frozen=True)
class ResolvedReply:
    """The reply for one request, with the usage extras that apply to it."""

    text: str
    tool_calls: tuple[ResolvedToolCall, ...]
    reasoning_tokens: int
    cached_tokens: int


def _item_to_reply(item: Any, request: SimRequest) -> Reply:
    if isinstance(item, Reply):
        return item
    if isinstance(item, str):
        return Reply(text=request.last_user_text if item == ECHO else item)
    if isinstance(item, ToolCall):
        return Reply(tool_calls=(item,))
    if isinstance(item, (list, tuple)) and all(isinstance(i, ToolCall) for i in item):
        return Reply(tool_calls=tuple(item))
    raise ConfigurationError(
        f"reply script gave {item!r}; expected a str, ToolCall, list of ToolCall or Reply"
    )


def script_item(model: SimModel, request: SimRequest, index: int) -> Reply:
    """Pick the scripted reply for the ``index``-th request to ``model``."""
    script = model.reply
    if callable(script) and not isinstance(script, (ToolCall, Reply)):
        fn: Callable[[SimRequest], Any] = script
        return _item_to_reply(fn(request), request)
    if isinstance(script, list):
        return _item_to_reply(script[index % len(script)], request)
    return _item_to_reply(script, request)


def _forced_tool(request: SimRequest) -> str | None:
    """Name of the tool the request forces (``tool_choice``), if any."""
    choice = request.body.get("tool_choice")
    if (
        not request.tools
        or choice in (None, "auto", "none")
        or (isinstance(choice, dict) and choice.get("type") in ("auto", "none"))
    ):
        return None
    if isinstance(choice, dict):
        name = choice.get("name") or choice.get("function", {}).get("name")
        if name:
            return str(name)
    # "required" (OpenAI) / {"type": "any"} (Anthropic): the first offered tool.
    return request.tool_names[0]


def _tool_schema(request: SimRequest, name: str) -> dict[str, Any]:
    for tool in request.tools:
        function = tool.get("function", {})
        if function.get("name") == name:
            params = function.get("parameters")
            return params if isinstance(params, dict) else {"type": "object"}
    return {"type": "object"}


def resolve_reply(
    model: SimModel, request: SimRequest, index: int, id_prefix: str, serial: int
) -> ResolvedReply:
    """Compute the concrete reply: script, tool choice, response format and usage extras."""
    reply = script_item(model, request, index)
    text = reply.text
    wanted: Sequence[ToolCall] = reply.tool_calls
    forced = _forced_tool(request)
    if forced and not wanted:
        wanted = (ToolCall(name=forced),)
    calls: list[ResolvedToolCall] = []
    if request.tools and request.body.get("tool_choice") != "none":
        for i, call in enumerate(wanted):
            name = call.name or request.tool_names[0]
            if call.arguments is None:
                arguments = json.dumps(
                    example_for_schema(_tool_schema(request, name), text or "example"),
                    separators=(",", ":"),
                )
            else:
                arguments = arguments_json(call.arguments)
            call_id = call.id or f"{id_prefix}{serial:08x}{i:04x}"
            calls.append(ResolvedToolCall(id=call_id, name=name, arguments=arguments))
    elif wanted and not text:
        names = ", ".join(c.name or "a tool" for c in wanted)
        text = f"I would call {names}, but no tools were offered."
    if not calls and request.response_format:
        text = _json_text(text, request.response_format)
    reasoning = model.reasoning_tokens if reply.reasoning_tokens is None else reply.reasoning_tokens
    cached = model.cached_tokens if reply.cached_tokens is None else reply.cached_tokens
    return ResolvedReply(
        text=text, tool_calls=tuple(calls), reasoning_tokens=reasoning, cached_tokens=cached
    )


def cap_reply(tokenizer: str, reply: ResolvedReply, cap: int) -> tuple[ResolvedReply, int]:
    """What a provider returns when generation stops at ``cap`` (``max_tokens``) tokens.

    Call it only when the reply's completion tokens exceed ``cap``. Reasoning tokens are
    generated first and spend the cap first; then the text is cut to the longest prefix
    that fits what is left. Tool calls come after the text: those that fit whole are
    kept, and the first one that does not fit is dropped with all that follow (a provider
    would return it cut off mid-JSON, which no client can use), but its tokens were
    generated, so the output is then reported as the whole remaining cap.

    Returns:
        The capped reply and its output tokens (without reasoning tokens).
    """
    reasoning = min(reply.reasoning_tokens, max(0, cap))
    budget = max(0, cap - reasoning)
    text, used = truncate_text(tokenizer, reply.text, budget)
    calls: list[ResolvedToolCall] = []
    for call in reply.tool_calls:
        size = count_text_tokens(tokenizer, call.name + call.arguments)
        if used + size > budget:
            used = budget
            break
        calls.append(call)
        used += size
    capped = replace(reply, text=text, tool_calls=tuple(calls), reasoning_tokens=reasoning)
    return capped, used


def _json_text(text: str, response_format: Mapping[str, Any]) -> str:
    """Make the reply valid JSON (and schema-shaped) when the client asked for JSON output."""
    kind = response_format.get("type")
    if kind not in ("json_object", "json_schema"):
        return text
    try:
        json.loads(text)
        return text
    except ValueError:
        pass
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if isinstance(schema, dict):
            return json.dumps(example_for_schema(schema, text))
    return json.dumps({"reply": text})


def example_for_schema(
    schema: Mapping[str, Any], text: str, *, _root: Any = None, _depth: int = 0
) -> Any:
    """A small value that validates against a JSON schema; strings are filled with ``text``."""
    root = schema if _root is None else _root
    if _depth > 12:
        return None
    if "$ref" in schema:
        target: Any = root
        for part in str(schema["$ref"]).lstrip("#/").split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        return example_for_schema(target, text, _root=root, _depth=_depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf", "allOf"):
        options = [o for o in schema.get(key, []) if o.get("type") != "null"]
        if options:
            return example_for_schema(options[0], text, _root=root, _depth=_depth + 1)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties", {})
        return {
            k: example_for_schema(v, text, _root=root, _depth=_depth + 1) for k, v in props.items()
        }
    if kind == "array":
        count = int(schema.get("minItems", 0))
        item = schema.get("items", {"type": "string"})
        return [example_for_schema(item, text, _root=root, _depth=_depth + 1) for _ in range(count)]
    if kind == "integer":
        return int(schema.get("minimum", 0))
    if kind == "number":
        return float(schema.get("minimum", 0.0))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return text


_PIECE = re.compile(r"\s*\S+\s*|\s+")


def chunk_text(text: str) -> list[str]:
    """Split a reply into stream chunks of about one word each (concatenating to ``text``)."""
    pieces = _PIECE.findall(text)
    return pieces if pieces else [text]

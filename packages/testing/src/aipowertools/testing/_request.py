"""The request as the simulator sees it, normalised to OpenAI shape, and token counting."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aipowertools.testing._compat import litellm

__all__ = ["SimRequest", "count_prompt_tokens", "count_text_tokens"]


@dataclass
class SimRequest:
    """One chat request received by the simulator, normalised to the OpenAI message shape.

    A reply-script callable receives this object.

    Attributes:
        flavor: Wire format it arrived in: ``"openai"``, ``"anthropic"`` or ``"ollama"``.
        model: Model name the client asked for.
        messages: Messages in OpenAI chat shape (Anthropic ``system`` becomes a system message).
        tools: Offered tools in OpenAI shape (``{"type": "function", "function": {...}}``).
        stream: Whether the client asked for a stream.
        max_tokens: Requested completion limit, if any.
        response_format: ``{"type": "json_object"}`` or ``{"type": "json_schema",
            "json_schema": {"schema": ...}}`` when structured output was asked for.
        body: The raw JSON body.
        headers: Request headers.
    """

    flavor: str
    model: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = field(default_factory=list)
    stream: bool = False
    max_tokens: int | None = None
    response_format: dict[str, Any] | None = None
    body: dict[str, Any] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def last_user_text(self) -> str:
        """Text of the last user message ("" when there is none)."""
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return content_text(message.get("content"))
        return ""

    @property
    def tool_names(self) -> list[str]:
        """Names of the offered tools, in order."""
        return [str(t.get("function", {}).get("name", "")) for t in self.tools]


def content_text(content: Any) -> str:
    """Flatten message content (a string or a list of parts) to its text."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return "".join(parts)
    return str(content)


class _LRU:
    """A small thread-safe LRU cache of token counts (identical requests recur in benchmarks)."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._data: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> int | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: tuple[str, str], value: int) -> None:
        with self._lock:
            self._data[key] = value
            if len(self._data) > self._size:
                self._data.popitem(last=False)


_prompt_cache = _LRU()
_text_cache = _LRU()


def count_prompt_tokens(
    model: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
) -> int:
    """Prompt tokens as litellm's offline ``token_counter`` counts them for these messages."""
    key = (model, json.dumps([messages, tools], sort_keys=True, default=str))
    cached = _prompt_cache.get(key)
    if cached is not None:
        return cached
    kwargs: dict[str, Any] = {"model": model, "messages": messages}
    if tools:
        kwargs["tools"] = tools
    try:
        value = int(litellm().token_counter(**kwargs))
    except Exception:  # content litellm cannot count (odd parts): count the text alone
        text = "\n".join(content_text(m.get("content")) for m in messages)
        value = int(litellm().token_counter(model=model, text=text))
    _prompt_cache.put(key, value)
    return value


def count_text_tokens(model: str, text: str) -> int:
    """Completion tokens as litellm's offline ``token_counter`` counts them for this text."""
    if not text:
        return 0
    key = (model, text)
    cached = _text_cache.get(key)
    if cached is not None:
        return cached
    value = int(litellm().token_counter(model=model, text=text, count_response_tokens=True))
    _text_cache.put(key, value)
    return value

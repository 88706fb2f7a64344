"""The request as the simulator sees it, normalised to OpenAI shape, and token counting."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from aipowertools.testing._compat import litellm

__all__ = ["SimRequest", "count_prompt_tokens", "count_text_tokens", "truncate_text"]

_K = TypeVar("_K")
_V = TypeVar("_V")


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


class _LRU(Generic[_K, _V]):
    """A small thread-safe LRU cache of token counts (identical requests recur in benchmarks)."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._data: OrderedDict[_K, _V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: _K) -> _V | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: _K, value: _V) -> None:
        with self._lock:
            self._data[key] = value
            if len(self._data) > self._size:
                self._data.popitem(last=False)


_prompt_cache: _LRU[tuple[str, str], int] = _LRU()
_text_cache: _LRU[tuple[str, str], int] = _LRU()
_cut_cache: _LRU[tuple[str, str, int], tuple[int, int]] = _LRU(512)


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
    value = _count(model, text)
    _text_cache.put(key, value)
    return value


def _count(model: str, text: str) -> int:
    return int(litellm().token_counter(model=model, text=text, count_response_tokens=True))


def truncate_text(model: str, text: str, budget: int) -> tuple[str, int]:
    """The longest prefix of ``text`` that ``count_text_tokens`` counts as ``<= budget`` tokens.

    Returns the prefix and its token count. This is what a provider sends when generation
    stops at ``max_tokens``: the reply cut at a token boundary. The cut is found by a binary
    search over character positions with the same counter the usage numbers come from, so
    it works for any tokenizer litellm picks and the reported count is exactly the count of
    the returned text (``count(text[:lo]) <= budget < count(text[:hi])`` is kept throughout).
    Only called when a reply is over its cap; results are cached.
    """
    total = count_text_tokens(model, text)
    if total <= budget:
        return text, total
    if budget <= 0:
        return "", 0
    key = (model, text, budget)
    cached = _cut_cache.get(key)
    if cached is None:
        lo, hi = 0, len(text)
        # A first guess from the average characters per token saves most probes.
        guess = min(len(text) - 1, int(len(text) * budget / total * 1.25) + 8)
        if _count(model, text[:guess]) <= budget:
            lo = guess
        else:
            hi = guess
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if _count(model, text[:mid]) <= budget:
                lo = mid
            else:
                hi = mid
        cached = (lo, _count(model, text[:lo]))
        _cut_cache.put(key, cached)
    end, used = cached
    return text[:end], used

"""Provider-neutral shapes a transport returns: a completion and stream chunks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ToolCall:
    """A tool call the model asked for (``arguments`` is the JSON text the model produced)."""

    id: str
    name: str
    arguments: str


@dataclass
class Completion:
    """One finished answer from a deployment.

    Attributes:
        content: the text of the answer ("" when the model only called tools).
        tool_calls: tool calls, in order.
        input_tokens: prompt tokens billed.
        output_tokens: completion tokens billed.
        cached_input_tokens: prompt tokens served from the provider's cache.
        cache_creation_tokens: prompt tokens written to the provider's cache.
        reasoning_tokens: hidden reasoning tokens (part of ``output_tokens``).
        finish_reason: why the model stopped (``stop``, ``length``, ``tool_calls``...).
        model: the model name the provider reported.
        usage_estimated: True when the provider gave no usage and the tokens were estimated.
        raw: the provider's response object, untouched.
    """

    content: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_tokens: int = 0
    finish_reason: str | None = None
    model: str | None = None
    usage_estimated: bool = False
    raw: Any = field(default=None, repr=False)


@dataclass
class ToolCallChunk:
    """A piece of a streamed tool call (pieces with the same ``index`` concatenate)."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str | None = None


@dataclass
class Chunk:
    """A piece of a streamed answer; the last chunk usually carries the usage.

    The token counts are ``None`` on chunks without usage; on the usage chunk they follow
    :class:`Completion` (cached, cache-creation and reasoning tokens are part of the input
    and output counts).
    """

    content: str = ""
    tool_call_chunks: list[ToolCallChunk] = field(default_factory=list)
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int | None = None
    cache_creation_tokens: int | None = None
    reasoning_tokens: int | None = None
    finish_reason: str | None = None
    model: str | None = None

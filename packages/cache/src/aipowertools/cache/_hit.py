"""What the cache hands back (a hit, an answer to store) and the checks of its arguments."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from aipowertools.cache._key import SCOPES, Scope
from aipowertools.core.errors import ConfigurationError

# finish reasons of a complete answer, in every provider's spelling
NORMAL_FINISH = frozenset(
    {
        "stop",
        "length",
        "tool_calls",
        "function_call",
        "end_turn",
        "stop_sequence",
        "max_tokens",
        "tool_use",
        "complete",
        "eos",
        "finish_reason_unspecified",
    }
)
UNSET: Any = object()


@dataclass(frozen=True)
class Answer:
    """What a provider call returned, for :meth:`LLMCache.call` and stream summaries.

    Attributes:
        value: the answer to cache (any JSON value).
        input_tokens: prompt tokens it cost.
        output_tokens: completion tokens it cost.
        finish_reason: why the model stopped; answers that were cut off, filtered or failed
            (anything but a normal stop, length or tool call) are not cached.
        model: the model that answered, when it is not the one asked for.
    """

    value: Any
    input_tokens: int = 0
    output_tokens: int = 0
    finish_reason: str | None = "stop"
    model: str | None = None


@dataclass(frozen=True)
class CacheHit:
    """An answer served from the cache.

    Attributes:
        value: the cached answer.
        chunks: the chunks of a cached stream (replay them with :meth:`replay`), else None.
        semantic: found by similarity, not by exact key.
        similarity: cosine similarity of a semantic hit (1.0 for an exact one).
        model: the model that answered originally.
        input_tokens: prompt tokens the original call cost.
        output_tokens: completion tokens it cost.
        saved_usd: what this hit saved at catalog prices.
        key: the key of the entry.
    """

    value: Any
    chunks: list[Any] | None
    semantic: bool
    similarity: float
    model: str
    input_tokens: int
    output_tokens: int
    saved_usd: float
    key: str

    @property
    def kind(self) -> str:
        """``"semantic"`` or ``"hit"`` (what ``response_metadata["cache"]`` says)."""
        return "semantic" if self.semantic else "hit"

    def replay(self) -> Iterator[Any]:
        """The cached stream's chunks in order (the value alone when it was not streamed)."""
        yield from self.chunks if self.chunks is not None else [self.value]

    async def areplay(self) -> AsyncIterator[Any]:
        """Async :meth:`replay`."""
        for chunk in self.replay():
            yield chunk


def positive_or_none(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigurationError(
            f"{name} must be a positive number of seconds or None, got {value!r}"
        )
    return float(value)


def count(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{name} must be a positive integer or None, got {value!r}")
    return value


def check_scope(value: Any, name: str = "scope") -> Scope:
    if value not in SCOPES:
        raise ConfigurationError(f"{name} must be one of {', '.join(SCOPES)}; got {value!r}")
    return value  # type: ignore[no-any-return]

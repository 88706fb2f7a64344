"""Token usage of one call, read from any provider's or framework's response shape."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aipowertools.core._errors import ConfigurationError


def _get(obj: Any, key: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(key)
    try:
        return getattr(obj, key, None)
    except Exception:  # odd objects whose properties raise
        return None


def _int(value: Any) -> int:
    if isinstance(value, bool) or value is None:
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return 0


@dataclass(frozen=True)
class Usage:
    """Tokens used by one call, by type.

    ``input_tokens`` counts the whole prompt, *including* the cached-read and cache-creation
    tokens; ``output_tokens`` counts the whole reply, *including* reasoning tokens (the
    OpenAI and LangChain conventions; Anthropic payloads are converted).

    Example:
        >>> Usage.from_any({"prompt_tokens": 12, "completion_tokens": 5})
        Usage(input_tokens=12, output_tokens=5, cached_input_tokens=0, cache_creation_tokens=0, reasoning_tokens=0)
    """  # noqa: E501

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_tokens: int = 0

    def __post_init__(self) -> None:
        for name in (
            "input_tokens",
            "output_tokens",
            "cached_input_tokens",
            "cache_creation_tokens",
            "reasoning_tokens",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigurationError(f"Usage.{name} must be a whole number >= 0, got {value!r}")
        if self.cached_input_tokens + self.cache_creation_tokens > self.input_tokens:
            raise ConfigurationError(
                "Usage: cached_input_tokens + cache_creation_tokens exceed input_tokens; "
                "input_tokens must include them"
            )
        if self.reasoning_tokens > self.output_tokens:
            raise ConfigurationError(
                "Usage: reasoning_tokens exceed output_tokens; output_tokens must include them"
            )

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cached_input_tokens + other.cached_input_tokens,
            self.cache_creation_tokens + other.cache_creation_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
        )

    @classmethod
    def from_any(cls, obj: Any) -> Usage:
        """Read usage from whatever a call returned.

        Understands: a :class:`Usage`; a litellm ``ModelResponse`` (or its ``usage``); an
        OpenAI chat-completions or Responses payload (object or dict); an Anthropic
        ``Message`` or its usage; an Ollama reply (``prompt_eval_count`` / ``eval_count``);
        a LangChain ``AIMessage`` or its ``usage_metadata`` dict; a LlamaIndex
        ``ChatResponse`` (through ``.raw`` or ``.additional_kwargs``). No framework is
        imported: objects are read by their attributes.

        Args:
            obj: The response, message or usage payload.

        Returns:
            The usage.

        Raises:
            ConfigurationError: No token usage could be found in ``obj``.
        """
        found = _find(obj, depth=0)
        if found is None:
            raise ConfigurationError(
                f"cannot find token usage in {type(obj).__name__}; pass a litellm/OpenAI/"
                "Anthropic/Ollama response, a LangChain AIMessage, a LlamaIndex ChatResponse, "
                "or build Usage(input_tokens=..., output_tokens=...)"
            )
        return found


def _find(obj: Any, depth: int) -> Usage | None:
    if isinstance(obj, Usage):
        return obj
    if obj is None or depth > 4 or isinstance(obj, (str, bytes, int, float)):
        return None
    usage = _get(obj, "usage")  # most responses: litellm, OpenAI, Anthropic
    if usage is not None and usage is not obj:
        found = _find(usage, depth + 1)
        if found is not None:
            return found
    direct = _parse(obj)
    if direct is not None:
        return direct
    for key in ("usage_metadata", "raw", "additional_kwargs", "response_metadata"):
        inner = _get(obj, key)
        if inner is not None and inner is not obj:
            found = _find(inner, depth + 1)
            if found is not None:
                return found
    if _get(obj, "eval_count") is not None or _get(obj, "prompt_eval_count") is not None:
        return _clamped(_int(_get(obj, "prompt_eval_count")), _int(_get(obj, "eval_count")))
    token_usage = _get(obj, "token_usage")  # LangChain llm_output / response_metadata
    return _find(token_usage, depth + 1) if token_usage is not None else None


def _clamped(
    input_tokens: int, output_tokens: int, cached: int = 0, creation: int = 0, reasoning: int = 0
) -> Usage:
    # Providers occasionally report details that do not add up; never let that raise.
    cached = min(cached, input_tokens)
    creation = min(creation, input_tokens - cached)
    return Usage(input_tokens, output_tokens, cached, creation, min(reasoning, output_tokens))


def _parse(u: Any) -> Usage | None:
    """Parse a usage payload itself (not a response that contains one)."""
    prompt = _get(u, "prompt_tokens")
    if prompt is not None:  # OpenAI chat completions, litellm, LlamaIndex additional_kwargs
        details = _get(u, "prompt_tokens_details")
        cached = _int(_get(details, "cached_tokens")) or _int(_get(u, "cache_read_input_tokens"))
        creation = (
            _int(_get(u, "cache_creation_input_tokens"))
            or _int(_get(details, "cache_creation_tokens"))
            or _int(_get(details, "cache_write_tokens"))
        )
        reasoning = _int(_get(_get(u, "completion_tokens_details"), "reasoning_tokens"))
        return _clamped(
            _int(prompt), _int(_get(u, "completion_tokens")), cached, creation, reasoning
        )
    input_tokens = _get(u, "input_tokens")
    output_tokens = _get(u, "output_tokens")
    if input_tokens is None and output_tokens is None:
        return None
    read = _get(u, "cache_read_input_tokens")
    write = _get(u, "cache_creation_input_tokens")
    if read is not None or write is not None:  # Anthropic: input_tokens excludes the cache
        read_n, write_n = _int(read), _int(write)
        return _clamped(_int(input_tokens) + read_n + write_n, _int(output_tokens), read_n, write_n)
    lc_in = _get(u, "input_token_details")  # LangChain usage_metadata
    oa_in = _get(u, "input_tokens_details")  # OpenAI Responses API
    cached = _int(_get(lc_in, "cache_read")) or _int(_get(oa_in, "cached_tokens"))
    creation = _int(_get(lc_in, "cache_creation")) or _int(_get(oa_in, "cache_write_tokens"))
    reasoning = _int(_get(_get(u, "output_token_details"), "reasoning")) or _int(
        _get(_get(u, "output_tokens_details"), "reasoning_tokens")
    )
    return _clamped(_int(input_tokens), _int(output_tokens), cached, creation, reasoning)

"""Offline token counting through litellm's tokenizers, with a documented fallback."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from aipowertools.core._errors import ConfigurationError, UnknownModelError

if TYPE_CHECKING:
    from aipowertools.core._catalog import ModelCatalog

# Providers whose own tokenizer is the one litellm counts with offline (tiktoken).
_EXACT_PROVIDERS = frozenset({"openai", "azure", "text-completion-openai"})
CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4
REPLY_PRIMING_TOKENS = 3
_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}


class TokenCount(NamedTuple):
    """A token count and whether it is an estimate rather than the model's own tokenizer."""

    tokens: int
    estimated: bool


def _text_of(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, Mapping) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return "\n".join(parts)
    return str(content)


def normalize_messages(messages: Any) -> list[dict[str, Any]]:
    """Turn chat messages into OpenAI-style dicts.

    Accepts dicts, LangChain messages (``.type`` / ``.content``) and LlamaIndex
    ``ChatMessage`` objects (``.role`` / ``.content``) without importing either framework.
    """
    if isinstance(messages, Mapping) or not isinstance(messages, Sequence):
        messages = [messages]
    out: list[dict[str, Any]] = []
    for message in messages:
        if isinstance(message, Mapping):
            out.append(dict(message))
            continue
        role = getattr(message, "role", None)
        role = getattr(role, "value", role)  # LlamaIndex MessageRole enum
        if role is None:
            kind = getattr(message, "type", None)
            role = _ROLES.get(str(kind), str(kind)) if kind is not None else None
        content = getattr(message, "content", None)
        if role is None and content is None:
            raise ConfigurationError(
                f"cannot read a chat message from {type(message).__name__}; pass dicts with "
                "'role' and 'content', or LangChain / LlamaIndex message objects"
            )
        content = (getattr(message, "blocks", None) and _text_of(content)) or content
        out.append({"role": str(role or "user"), "content": _text_of(content)})
    return out


def estimate_tokens(messages_or_text: str | Sequence[Any]) -> int:
    """The fallback estimate: ``ceil(chars / 4)`` per message, plus 4 per message and 3.

    This is the usual rule of thumb for English text with BPE tokenizers; it is used only
    for models the catalog does not know, and the result is flagged ``estimated=True``.
    """
    if isinstance(messages_or_text, str):
        return math.ceil(len(messages_or_text) / CHARS_PER_TOKEN)
    total = REPLY_PRIMING_TOKENS
    for message in normalize_messages(messages_or_text):
        text = _text_of(message.get("content"))
        total += MESSAGE_OVERHEAD_TOKENS + math.ceil(len(text) / CHARS_PER_TOKEN)
    return total


def count_tokens(
    messages_or_text: str | Sequence[Any],
    model: str,
    *,
    catalog: ModelCatalog | None = None,
) -> TokenCount:
    """Count the tokens of a text or a list of chat messages for ``model``, offline.

    Counts with litellm's offline tokenizers. For OpenAI models that is the model's own
    tokenizer (``estimated=False``); for other providers litellm counts with OpenAI's
    tokenizer, a close approximation, so the result is flagged ``estimated=True``. Models
    the catalog does not know get the character estimate of :func:`estimate_tokens`, also
    flagged ``estimated=True``.

    Args:
        messages_or_text: A string, or chat messages (dicts, LangChain or LlamaIndex
            message objects).
        model: A catalog id or litellm model name.
        catalog: The catalog to resolve ``model`` in; defaults to :func:`default_catalog`.

    Returns:
        The count and whether it is an estimate.

    Example:
        >>> count_tokens("Hello, world", "gpt-4o-mini")
        TokenCount(tokens=3, estimated=False)
    """
    from aipowertools.core._catalog import default_catalog

    try:
        info = (catalog or default_catalog()).get(model)
    except UnknownModelError:
        return TokenCount(estimate_tokens(messages_or_text), True)
    from aipowertools.core._litellm import litellm

    counter = litellm().token_counter
    if isinstance(messages_or_text, str):
        tokens = counter(model=info.litellm_model, text=messages_or_text)
    else:
        tokens = counter(model=info.litellm_model, messages=normalize_messages(messages_or_text))
    return TokenCount(int(tokens), info.provider not in _EXACT_PROVIDERS)

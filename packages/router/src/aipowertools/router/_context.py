"""Messages in, facts out: token estimate, capabilities used, and history trimming.

Token counts here are *estimates* for routing (characters / 4 plus 4 per message, 85 per
image), cheap enough for the hot path. A provider that still finds the prompt too long raises
a context-window error, and the router fails over to a deployment with a larger window.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aipowertools.core.errors import ConfigurationError
from aipowertools.prompts import ContextManager

Message = dict[str, Any]
_IMAGE_TOKENS = 85


@dataclass
class Prompt:
    """Normalised messages and what routing needs to know about them."""

    messages: list[Message]
    tokens: int
    has_images: bool
    pinned: frozenset[int]


def message_tokens(message: Mapping[str, Any]) -> int:
    """Estimated tokens of one OpenAI-style message."""
    content = message.get("content")
    chars = 0
    images = 0
    if isinstance(content, str):
        chars = len(content)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, Mapping):
                if part.get("type") in ("image_url", "image", "input_image"):
                    images += 1
                else:
                    chars += len(str(part.get("text", "")))
    for call in message.get("tool_calls") or ():
        function = call.get("function", {}) if isinstance(call, Mapping) else {}
        chars += len(str(function.get("name", ""))) + len(str(function.get("arguments", "")))
    return chars // 4 + 4 + images * _IMAGE_TOKENS


def prepare(task: str | None, messages: Sequence[Mapping[str, Any]] | None) -> Prompt:
    """Build the message list from ``task`` or ``messages`` and summarise it.

    A message with ``"pinned": True`` is kept by :func:`trim`; the key is removed before the
    messages are sent.
    """
    if (task is None) == (messages is None):
        raise ConfigurationError("route() needs exactly one of task= (a string) or messages=")
    if task is not None:
        if not isinstance(task, str):
            raise ConfigurationError(f"task must be a string, got {type(task).__name__}")
        return Prompt([{"role": "user", "content": task}], len(task) // 4 + 4, False, frozenset())
    assert messages is not None
    if not messages:
        raise ConfigurationError("messages= is empty; pass at least one message")
    out: list[Message] = []
    tokens = 0
    images = False
    pinned: list[int] = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or "role" not in message:
            raise ConfigurationError(
                f"message {i} must be a mapping with a 'role' (OpenAI format), got {message!r:.80}"
            )
        m = dict(message)
        if m.pop("pinned", False):
            pinned.append(i)
        content = m.get("content")
        if isinstance(content, list) and any(
            isinstance(p, Mapping) and p.get("type") in ("image_url", "image", "input_image")
            for p in content
        ):
            images = True
        tokens += message_tokens(m)
        out.append(m)
    return Prompt(out, tokens, images, frozenset(pinned))


def trim(prompt: Prompt, max_tokens: int) -> Prompt:
    """Prune the history to ``max_tokens`` with :class:`aipowertools.prompts.ContextManager`.

    Keeps the system and pinned messages, the newest user turn and an agent step in flight,
    never separates a tool call from its results, and drops the oldest of the rest first,
    counting with this module's routing estimate so trimming and routing agree.

    Raises:
        ContextOverflowError: (a ``ContextWindowExceededError``) the messages that are
            always kept need more than ``max_tokens``; nothing is sent.
    """
    result = _TRIMMER.prune(prompt.messages, budget=max(max_tokens, 0), pinned=prompt.pinned)
    kept = [i for i in range(len(prompt.messages)) if i not in set(result.dropped)]
    new_pinned = frozenset(j for j, i in enumerate(kept) if i in prompt.pinned)
    return Prompt(result.messages, result.tokens, prompt.has_images, new_pinned)


_TRIMMER = ContextManager(message_tokens=message_tokens, policy="oldest")

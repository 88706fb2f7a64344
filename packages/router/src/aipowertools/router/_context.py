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
    """Keep system messages, pinned messages and the most recent ones that fit ``max_tokens``.

    The kept history never starts with a tool result whose call was dropped. Raises
    :class:`ConfigurationError` when the system and pinned messages alone do not fit.
    """
    messages = prompt.messages
    sizes = [message_tokens(m) for m in messages]
    keep = {i for i, m in enumerate(messages) if m.get("role") == "system"} | set(prompt.pinned)
    budget = max_tokens - sum(sizes[i] for i in keep)
    if budget < 0:
        raise ConfigurationError(
            f"the system and pinned messages alone need {max_tokens - budget} tokens, more than "
            f"the {max_tokens} available; shorten them or unpin some"
        )
    recent: list[int] = []
    for i in range(len(messages) - 1, -1, -1):
        if i in keep:
            continue
        if sizes[i] > budget:
            break
        budget -= sizes[i]
        recent.append(i)
    recent.reverse()
    # A tool result without its assistant tool call is rejected by providers: drop it.
    while recent and messages[recent[0]].get("role") == "tool":
        recent.pop(0)
    kept = sorted(keep | set(recent))
    new_pinned = frozenset(j for j, i in enumerate(kept) if i in prompt.pinned)
    return Prompt(
        [messages[i] for i in kept],
        sum(sizes[i] for i in kept),
        prompt.has_images,
        new_pinned,
    )

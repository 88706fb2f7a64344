"""The framework-free message representation, and the units pruning keeps or drops whole.

Messages are OpenAI-format dicts, as the router sends them: ``{"role": ..., "content": ...}``
where ``content`` is a string, ``None`` or a list of parts (``{"type": "text", "text": ...}``,
``{"type": "image_url", ...}``, ...); an assistant message may carry ``tool_calls`` and a
``{"role": "tool", "tool_call_id": ...}`` message answers one. Anthropic-style ``tool_use`` and
``tool_result`` content parts are understood too. A message with ``"pinned": True`` is never
pruned; the key is removed from what :class:`~aipowertools.prompts.ContextManager` returns.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aipowertools.core._tokens import normalize_messages
from aipowertools.core.errors import ConfigurationError

Message = dict[str, Any]

#: Content part types that carry text (counted by the model's tokenizer).
TEXT_PARTS = frozenset({"text", "input_text", "output_text"})
IMAGE_PARTS = frozenset({"image_url", "image", "input_image"})
AUDIO_PARTS = frozenset({"input_audio", "audio"})

# Reasons a message is always kept.
SYSTEM = "system message"
PINNED = "pinned"
LAST_USER = "last user turn"
OPEN_TOOL_CALL = "unanswered tool exchange"


def as_messages(messages: Any) -> list[Message]:
    """Copy ``messages`` (dicts, LangChain or LlamaIndex messages) into OpenAI-style dicts.

    Raises:
        ConfigurationError: A message without a role, or an empty list.
    """
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    if isinstance(messages, Mapping) or not isinstance(messages, Sequence):
        messages = [messages]
    out: list[Message] = []
    for i, message in enumerate(messages):
        if isinstance(message, Mapping):
            if "role" not in message:
                raise ConfigurationError(
                    f"message {i} needs a 'role' (OpenAI format), got {dict(message)!r:.80}"
                )
            out.append(dict(message))
        else:
            out.extend(normalize_messages([message]))
    return out


def is_pinned(message: Mapping[str, Any]) -> bool:
    """Whether the message is marked ``"pinned": True``."""
    return bool(message.get("pinned", False))


def unpinned(message: Mapping[str, Any]) -> Message:
    """A copy of ``message`` without the ``pinned`` marker."""
    return {k: v for k, v in message.items() if k != "pinned"}


def text_of(message: Mapping[str, Any]) -> str:
    """The text a message carries (string content, text parts and tool-call arguments)."""
    content = message.get("content")
    texts: list[str] = []
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, Sequence):
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, Mapping):
                if isinstance(part.get("text"), str):
                    texts.append(part["text"])
                elif part.get("type") == "tool_result" and isinstance(part.get("content"), str):
                    texts.append(part["content"])
    for call in message.get("tool_calls") or ():
        if isinstance(call, Mapping):
            function = call.get("function")
            if isinstance(function, Mapping):
                texts.append(str(function.get("name", "")))
                texts.append(str(function.get("arguments", "")))
    return "\n".join(texts)


def _call_ids(message: Mapping[str, Any]) -> list[str]:
    ids = [
        str(call["id"])
        for call in message.get("tool_calls") or ()
        if isinstance(call, Mapping) and call.get("id")
    ]
    content = message.get("content")
    if isinstance(content, list):
        ids += [
            str(p["id"])
            for p in content
            if isinstance(p, Mapping) and p.get("type") == "tool_use" and p.get("id")
        ]
    return ids


def _makes_calls(message: Mapping[str, Any]) -> bool:
    if message.get("tool_calls") or message.get("function_call"):
        return True
    content = message.get("content")
    return isinstance(content, list) and any(
        isinstance(p, Mapping) and p.get("type") == "tool_use" for p in content
    )


def _result_ids(message: Mapping[str, Any]) -> list[str] | None:
    """Ids of the calls this message answers; ``None`` when it answers no call."""
    if message.get("role") in ("tool", "function"):
        call_id = message.get("tool_call_id")
        return [str(call_id)] if call_id else []
    content = message.get("content")
    if isinstance(content, list):
        ids = [
            str(p.get("tool_use_id", ""))
            for p in content
            if isinstance(p, Mapping) and p.get("type") == "tool_result"
        ]
        if ids:
            return ids
    return None


def is_user_turn(message: Mapping[str, Any]) -> bool:
    """A user message that is not only tool results (Anthropic-style)."""
    return message.get("role") == "user" and _result_ids(message) is None


@dataclass
class Unit:
    """Messages that are kept or dropped together: one message, or a tool call and results."""

    indices: list[int]
    tokens: int = 0
    reasons: list[str] = field(default_factory=list)

    @property
    def first(self) -> int:
        """Index of the unit's first message."""
        return self.indices[0]

    @property
    def mandatory(self) -> bool:
        """Whether the unit holds a message that is always kept."""
        return bool(self.reasons)


def group_units(messages: Sequence[Mapping[str, Any]], pinned: Iterable[int] = ()) -> list[Unit]:
    """Split messages into units and mark the ones that are always kept.

    A message that makes tool calls and every later message answering one of its calls form
    one unit (a tool result matching no call id joins the call just before it), so a call is never
    separated from its result. Always kept: system messages, pinned messages, the last user
    turn, and a tool exchange after it that the model has yet to answer.
    """
    units: list[Unit] = []
    owner: dict[str, Unit] = {}
    last_call_unit: Unit | None = None
    for i, message in enumerate(messages):
        answers = _result_ids(message)
        if answers is not None:
            target = next((owner[a] for a in answers if a in owner), last_call_unit)
            # a result whose id matches no call answers the call just before it (legacy
            # calls without ids); one with no call before it at all stays on its own
            if target is not None:
                target.indices.append(i)
                continue
        unit = Unit([i])
        units.append(unit)
        if _makes_calls(message):
            last_call_unit = unit
            for call_id in _call_ids(message):
                owner[call_id] = unit
        elif answers is None:
            last_call_unit = None
    pins = set(pinned)
    last_user = max((i for i, m in enumerate(messages) if is_user_turn(m)), default=None)
    for unit in units:
        for i in unit.indices:
            message = messages[i]
            if message.get("role") == "system" and SYSTEM not in unit.reasons:
                unit.reasons.append(SYSTEM)
            if (i in pins or is_pinned(message)) and PINNED not in unit.reasons:
                unit.reasons.append(PINNED)
            if i == last_user:
                unit.reasons.append(LAST_USER)
    if units:
        tail = units[-1]
        if last_user is None and not tail.reasons:
            tail.reasons.append(LAST_USER)  # no user message: the newest turn stands in
        elif (
            last_user is not None and tail.first > last_user and _makes_calls(messages[tail.first])
        ) and not tail.reasons:
            tail.reasons.append(OPEN_TOOL_CALL)
    return units


def stable_json(value: Any) -> str:
    """A byte-stable serialisation: sorted keys, no spaces, UTF-8 kept as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)

"""Token counts per message through core's counters, cached, with provider rules for media.

A chat request costs ``REPLY_PRIMING`` tokens plus the sum of its messages, and each message is
counted on its own with core's :func:`~aipowertools.core.count_tokens` (litellm's offline
tokenizers). For the models litellm counts that way this sum equals the count of the whole list
(tested), which is what lets pruning add and remove messages without recounting everything.

Non-text content parts are never sent to a tokenizer: they are counted by the provider's
published rules (see :func:`part_tokens`) and the count is flagged as an estimate.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from typing import Any

from aipowertools.core import ModelCatalog, ModelInfo, count_tokens, default_catalog
from aipowertools.core.errors import ConfigurationError
from aipowertools.prompts._messages import (
    AUDIO_PARTS,
    IMAGE_PARTS,
    TEXT_PARTS,
    Message,
    stable_json,
)

#: Tokens every chat request adds to prime the reply (OpenAI's rule, which litellm applies).
REPLY_PRIMING = 3
_CACHE_LIMIT = 200_000

# OpenAI: 85 tokens per low-detail image; high detail is 170 per 512 px tile plus 85.
_OPENAI_LOW = 85
_OPENAI_TILE = 170
# Anthropic: about width x height / 750, at most ~1,600 for an image at the size limit.
_ANTHROPIC_PIXELS_PER_TOKEN = 750
_ANTHROPIC_MAX_IMAGE = 1_600
# Gemini: 258 tokens per image up to 384 px a side (tiles beyond: estimate as one).
_GEMINI_IMAGE = 258
# Audio: OpenAI ~10 tokens per second, Gemini 32 per second; 16 kHz 16-bit mono is 32 kB/s.
_AUDIO_TOKENS_PER_SECOND = {"gemini": 32, "vertex_ai": 32}
_DEFAULT_AUDIO_TOKENS_PER_SECOND = 10
_WAV_BYTES_PER_SECOND = 32_000


def _openai_image(part: Mapping[str, Any]) -> int:
    detail = part.get("detail")
    image = part.get("image_url")
    if isinstance(image, Mapping):
        detail = image.get("detail", detail)
    if detail == "low":
        return _OPENAI_LOW
    given_w, given_h = _dimensions(part)
    # a typical photo after OpenAI's resize when the size is not given: 4 tiles
    width, height = float(given_w or 1024), float(given_h or 1024)
    # fit into 2048 x 2048, then the short side to 768
    scale = min(1.0, 2048 / max(width, height))
    width, height = width * scale, height * scale
    scale = min(1.0, 768 / min(width, height))
    width, height = width * scale, height * scale
    tiles = math.ceil(width / 512) * math.ceil(height / 512)
    return _OPENAI_TILE * tiles + _OPENAI_LOW


def _dimensions(part: Mapping[str, Any]) -> tuple[int | None, int | None]:
    width, height = part.get("width"), part.get("height")
    if isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0:
        return width, height
    return None, None


def _anthropic_image(part: Mapping[str, Any]) -> int:
    width, height = _dimensions(part)
    if width is None or height is None:
        return _ANTHROPIC_MAX_IMAGE
    return min(_ANTHROPIC_MAX_IMAGE, math.ceil(width * height / _ANTHROPIC_PIXELS_PER_TOKEN))


_IMAGE_RULES: dict[str, Callable[[Mapping[str, Any]], int]] = {
    "anthropic": _anthropic_image,
    "bedrock": _anthropic_image,
    "gemini": lambda part: _GEMINI_IMAGE,
    "vertex_ai": lambda part: _GEMINI_IMAGE,
}


def _audio_seconds(part: Mapping[str, Any]) -> float:
    seconds = part.get("duration_s")
    if isinstance(seconds, int | float) and seconds >= 0:
        return float(seconds)
    audio = part.get("input_audio") or part.get("audio") or {}
    data = audio.get("data", "") if isinstance(audio, Mapping) else ""
    return len(str(data)) * 3 / 4 / _WAV_BYTES_PER_SECOND


def part_tokens(part: Mapping[str, Any], provider: str) -> int:
    """Tokens of one non-text content part, by the provider's rules.

    Images: OpenAI's tile rule (85 for ``detail="low"``, else 170 per 512 px tile + 85, a
    1024 x 1024 image when the size is not given), Anthropic's ``width * height / 750``
    (1,600 when unknown), Gemini's 258. Audio: seconds (``duration_s``, else the size of a
    16 kHz 16-bit WAV) x 10 tokens (OpenAI) or x 32 (Gemini). Anything else: its JSON
    length / 4.
    """
    kind = part.get("type")
    if kind in IMAGE_PARTS:
        return _IMAGE_RULES.get(provider, _openai_image)(part)
    if kind in AUDIO_PARTS:
        rate = _AUDIO_TOKENS_PER_SECOND.get(provider, _DEFAULT_AUDIO_TOKENS_PER_SECOND)
        return math.ceil(_audio_seconds(part) * rate)
    return math.ceil(len(stable_json(part)) / 4)


def split_parts(message: Mapping[str, Any]) -> tuple[Message, list[Mapping[str, Any]]]:
    """The message with only its text parts (what a tokenizer sees), and the other parts."""
    text_message = {k: v for k, v in message.items() if k != "pinned"}
    content = message.get("content")
    if not isinstance(content, list):
        return text_message, []
    texts: list[Any] = []
    others: list[Mapping[str, Any]] = []
    for part in content:
        if isinstance(part, Mapping) and part.get("type") not in TEXT_PARTS:
            if part.get("type") in ("tool_use", "tool_result"):
                texts.append({"type": "text", "text": stable_json(part)})
            else:
                others.append(part)
        else:
            texts.append(part)
    text_message["content"] = texts
    return text_message, others


class MessageCounter:
    """Counts messages for one model through core's counter, caching each message's count."""

    def __init__(self, info: ModelInfo, catalog: ModelCatalog) -> None:
        self.info = info
        self._catalog = catalog
        self._cache: dict[Any, tuple[int, bool]] = {}
        self._lock = threading.Lock()

    def _key(self, message: Mapping[str, Any]) -> Any:
        content = message.get("content")
        if len(message) == 2 and isinstance(content, str) and "role" in message:
            return (message["role"], content)
        return stable_json(message)

    def message(self, message: Mapping[str, Any]) -> tuple[int, bool]:
        """Tokens of one message without the reply priming, and whether that is an estimate."""
        key = self._key(message)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._count(message)
            with self._lock:
                if len(self._cache) >= _CACHE_LIMIT:
                    self._cache.clear()
                self._cache[key] = hit
        return hit

    def _count(self, message: Mapping[str, Any]) -> tuple[int, bool]:
        text_message, others = split_parts(message)
        counted = count_tokens([text_message], self.info.id, catalog=self._catalog)
        tokens = counted.tokens - REPLY_PRIMING
        tokens += sum(part_tokens(p, self.info.provider) for p in others)
        return tokens, counted.estimated or bool(others)

    def text(self, text: str) -> tuple[int, bool]:
        """Tokens of a bare string, and whether that is an estimate."""
        hit = self._cache.get(("", text))
        if hit is None:
            counted = count_tokens(text, self.info.id, catalog=self._catalog)
            hit = (counted.tokens, counted.estimated)
            with self._lock:
                self._cache[("", text)] = hit
        return hit


class CounterPool:
    """One :class:`MessageCounter` per model, resolved through the catalog."""

    def __init__(self, catalog: ModelCatalog | None) -> None:
        self._catalog = catalog
        self._counters: dict[str, MessageCounter] = {}

    @property
    def catalog(self) -> ModelCatalog:
        """The catalog models are resolved in (the default one unless given)."""
        return self._catalog or default_catalog()

    def get(self, model: str) -> MessageCounter:
        """The counter for ``model``; raises the catalog's ``UnknownModelError``."""
        counter = self._counters.get(model)
        if counter is None:
            info = self.catalog.get(model)
            counter = MessageCounter(info, self.catalog)
            self._counters[model] = counter
        return counter


def window_of(info: ModelInfo) -> int:
    """The model's context window; a :class:`ConfigurationError` when the catalog has none."""
    if info.context_window is None:
        raise ConfigurationError(
            f"the catalog has no context window for model {info.id!r}; set one with "
            f"catalog.update({info.id!r}, context_window=...)"
        )
    return info.context_window

"""Providers' prompt caching, modelled so that savings are measured, not assumed.

A request is a sequence of blocks in the order the provider builds its prompt: tool
definitions, then system text, then each message (Anthropic: each content block). Each block
prefix is identified by a hash chain over the blocks' canonical JSON, and knows how many
prompt tokens it covers (the blocks' own counts, scaled so that the whole request adds up to
its prompt tokens). Prefixes are matched whole blocks at a time: a prompt that differs from a
cached one in the middle of a block is credited up to the end of the previous block (a
little less than a provider, never more).

* **OpenAI** (automatic): every request's prefixes of 1,024 tokens or more are cached; a
  later request whose prompt starts with a cached prefix reports
  ``cached_tokens = 1024 + 128 * floor((prefix - 1024) / 128)``.
* **Anthropic** (explicit): only prefixes ending at a ``cache_control`` breakpoint (on a
  tool, a system block or a message content block) are written, and only when they hold at
  least the model's minimum (1,024 tokens; 2,048 for Haiku models). A request reads the
  longest prefix written before that ends at one of its breakpoints or up to 20 blocks
  before one; ``cache_read_input_tokens`` is that prefix, ``cache_creation_input_tokens``
  what lies between it and the last breakpoint written now, ``input_tokens`` the rest.
* **TTL**: an entry lives ``ttl_s`` seconds after its last use (5 minutes; Anthropic's
  ``"ttl": "1h"`` breakpoints, an hour); each hit refreshes it.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aipowertools.testing._request import SimRequest, count_text_tokens

__all__ = ["PromptCache", "openai_cached"]

OPENAI_MINIMUM = 1_024
OPENAI_INCREMENT = 128
ANTHROPIC_MINIMUM = 1_024
ANTHROPIC_HAIKU_MINIMUM = 2_048
ANTHROPIC_LOOKBACK = 20
DEFAULT_TTL_S = 300.0
_LONG_TTL = {"1h": 3_600.0, "5m": 300.0}
_MAX_ENTRIES = 50_000


def openai_cached(prefix_tokens: int) -> int:
    """Tokens OpenAI bills as cached for a matched prefix of ``prefix_tokens``."""
    if prefix_tokens < OPENAI_MINIMUM:
        return 0
    return OPENAI_MINIMUM + OPENAI_INCREMENT * (
        (prefix_tokens - OPENAI_MINIMUM) // OPENAI_INCREMENT
    )


@dataclass
class _Block:
    data: Any
    text: str
    breakpoint_ttl: float | None = None


def _canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


def _text(data: Any) -> str:
    if isinstance(data, str):
        return data
    if isinstance(data, Mapping):
        if isinstance(data.get("text"), str):
            return str(data["text"])
        content = data.get("content")
        if content is not None and data.get("type") != "tool_use":
            return _text(content)
    if isinstance(data, list):
        return "\n".join(_text(d) for d in data)
    return _canonical(data)


def _ttl(block: Any) -> float | None:
    if not isinstance(block, Mapping):
        return None
    control = block.get("cache_control")
    if not isinstance(control, Mapping):
        return None
    return _LONG_TTL.get(str(control.get("ttl", "5m")), DEFAULT_TTL_S)


def _openai_blocks(request: SimRequest) -> list[_Block]:
    blocks = [_Block(request.tools, _canonical(request.tools))] if request.tools else []
    for message in request.messages:
        blocks.append(
            _Block(
                message, _text(message.get("content")) + _canonical(message.get("tool_calls") or "")
            )
        )
    return blocks


def _plain(block: Any) -> Any:
    """A block as it renders in the prompt: a string is a text block; no cache_control."""
    if isinstance(block, str):
        return {"type": "text", "text": block}
    if isinstance(block, Mapping):
        return {k: v for k, v in block.items() if k != "cache_control"}
    return block


def _anthropic_blocks(body: Mapping[str, Any]) -> list[_Block]:
    blocks: list[_Block] = []
    for tool in body.get("tools") or ():
        blocks.append(_Block(_plain(tool), _canonical(_plain(tool)), _ttl(tool)))
    system = body.get("system")
    if isinstance(system, str) and system:
        blocks.append(_Block(_plain(system), system))
    elif isinstance(system, list):
        blocks.extend(_Block(_plain(b), _text(b), _ttl(b)) for b in system)
    for message in body.get("messages") or ():
        if not isinstance(message, Mapping):
            continue
        role = message.get("role")
        content = message.get("content")
        parts = [content] if isinstance(content, str) else content
        if isinstance(parts, list):
            for part in parts:
                data = {"role": role, "part": _plain(part)}
                blocks.append(_Block(data, _text(part), _ttl(part)))
    return blocks


class PromptCache:
    """Prefix caches per model, with a clock that tests can replace."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: dict[tuple[str, str], tuple[int, float, float]] = {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        """Forget every cached prefix."""
        with self._lock:
            self._entries.clear()

    def _prefixes(
        self, blocks: list[_Block], prompt_tokens: int, tokenizer: str
    ) -> tuple[list[str], list[int]]:
        sizes = [max(1, count_text_tokens(tokenizer, b.text)) for b in blocks]
        total = sum(sizes) or 1
        scale = prompt_tokens / total
        hashes: list[str] = []
        cumulative: list[int] = []
        digest = hashlib.sha256()
        running = 0
        for block, size in zip(blocks, sizes, strict=False):
            digest.update(_canonical(block.data).encode())
            digest.update(b"\x00")
            hashes.append(digest.copy().hexdigest())
            running += size
            cumulative.append(min(prompt_tokens, round(running * scale)))
        return hashes, cumulative

    def _live(self, key: tuple[str, str], now: float) -> int | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        tokens, expires, ttl = entry
        if expires < now:
            del self._entries[key]
            return None
        self._entries[key] = (tokens, now + ttl, ttl)
        return tokens

    def _store(self, key: tuple[str, str], tokens: int, now: float, ttl: float) -> None:
        if len(self._entries) >= _MAX_ENTRIES:
            for old in [k for k, (_, exp, _) in self._entries.items() if exp < now]:
                del self._entries[old]
        previous = self._entries.get(key)
        ttl = max(ttl, previous[2]) if previous else ttl
        self._entries[key] = (tokens, now + ttl, ttl)

    def account(
        self,
        flavor: str,
        model: str,
        request: SimRequest,
        prompt_tokens: int,
        tokenizer: str,
        ttl_s: float = DEFAULT_TTL_S,
    ) -> tuple[int, int]:
        """Cached (read) and cache-creation prompt tokens for this request, and remember it.

        Returns ``(0, 0)`` for wire formats without prompt caching (Ollama).
        """
        if flavor == "openai":
            return self._openai(model, request, prompt_tokens, tokenizer, ttl_s), 0
        if flavor == "anthropic":
            return self._anthropic(model, request, prompt_tokens, tokenizer)
        return 0, 0

    def _openai(
        self, model: str, request: SimRequest, prompt_tokens: int, tokenizer: str, ttl_s: float
    ) -> int:
        if prompt_tokens < OPENAI_MINIMUM:
            return 0  # nothing this short is cached, or can hit
        blocks = _openai_blocks(request)
        if not blocks:
            return 0
        hashes, cumulative = self._prefixes(blocks, prompt_tokens, tokenizer)
        now = self._clock()
        with self._lock:
            matched = 0
            for digest, tokens in zip(hashes, cumulative, strict=False):
                if tokens >= OPENAI_MINIMUM and self._live((model, digest), now) is not None:
                    matched = tokens
            for digest, tokens in zip(hashes, cumulative, strict=False):
                if tokens >= OPENAI_MINIMUM:
                    self._store((model, digest), tokens, now, ttl_s)
        return min(openai_cached(matched), prompt_tokens)

    def _anthropic(
        self, model: str, request: SimRequest, prompt_tokens: int, tokenizer: str
    ) -> tuple[int, int]:
        blocks = _anthropic_blocks(request.body)
        breakpoints = [i for i, b in enumerate(blocks) if b.breakpoint_ttl is not None]
        if not breakpoints or prompt_tokens < ANTHROPIC_MINIMUM:
            return 0, 0
        hashes, cumulative = self._prefixes(blocks, prompt_tokens, tokenizer)
        minimum = ANTHROPIC_HAIKU_MINIMUM if "haiku" in model.lower() else ANTHROPIC_MINIMUM
        now = self._clock()
        read_at = -1
        with self._lock:
            for point in breakpoints:
                for i in range(point, max(-1, point - ANTHROPIC_LOOKBACK - 1), -1):
                    if i > read_at and self._live((model, hashes[i]), now) is not None:
                        read_at = i
                        break
            read = cumulative[read_at] if read_at >= 0 else 0
            written = read
            for point in breakpoints:
                if point > read_at and cumulative[point] >= minimum:
                    ttl = blocks[point].breakpoint_ttl or DEFAULT_TTL_S
                    self._store((model, hashes[point]), cumulative[point], now, ttl)
                    written = cumulative[point]
        return read, max(0, written - read)

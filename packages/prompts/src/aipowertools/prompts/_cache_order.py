"""Cache-friendly layout: stable parts first and byte-stable, volatile parts last.

Providers bill a repeated prompt prefix at a fraction of the price (OpenAI caches prefixes of
1,024+ tokens by itself; Anthropic caches up to ``cache_control`` breakpoints). A prefix only
repeats if nothing in it changes between calls, so:

* tool definitions are sorted by name and serialised with sorted keys;
* lines of the leading system messages that change from call to call (dates, times, ids,
  and patterns you register) move to the end of the request, after the newest user text;
* for Anthropic models, ``cache_control`` breakpoints mark the end of the system prompt and
  the newest user text, so the next turn reads the whole conversation so far from the cache.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aipowertools.prompts._messages import Message, is_user_turn

VOLATILE = (
    re.compile(r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?"),
    re.compile(r"\b\d{1,2}:\d{2}(?::\d{2})?\s*(?:[ap]\.?m\.?|UTC|GMT)?\b", re.I),
    re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I),
    re.compile(r"\b(?:today is|current (?:date|time)|request id|session id|timestamp)\b", re.I),
)
BREAKPOINT = {"type": "ephemeral"}
_BREAKPOINT_PROVIDERS = frozenset({"anthropic", "bedrock", "vertex_ai-anthropic_models"})


def stable_tools(tools: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Tools sorted by name, every mapping's keys sorted (a byte-stable serialisation)."""

    def name(tool: Mapping[str, Any]) -> str:
        function = tool.get("function")
        if isinstance(function, Mapping):
            return str(function.get("name", ""))
        return str(tool.get("name", ""))

    ordered = sorted(tools, key=name)
    return [json.loads(json.dumps(t, sort_keys=True, default=str)) for t in ordered]


def _split_volatile(text: str, patterns: Sequence[re.Pattern[str]]) -> tuple[str, list[str]]:
    stable: list[str] = []
    volatile: list[str] = []
    for line in text.split("\n"):
        if line.strip() and any(p.search(line) for p in patterns):
            volatile.append(line.strip())
        else:
            stable.append(line)
    return "\n".join(stable).strip("\n"), volatile


def _with_breakpoint(content: Any) -> list[Any]:
    if isinstance(content, str):
        return [{"type": "text", "text": content, "cache_control": dict(BREAKPOINT)}]
    parts = [dict(p) if isinstance(p, Mapping) else p for p in content]
    for part in reversed(parts):
        if isinstance(part, dict) and part.get("type") == "text":
            part["cache_control"] = dict(BREAKPOINT)
            break
    return parts


def uses_breakpoints(provider: str) -> bool:
    """Whether the provider caches only at explicit ``cache_control`` breakpoints."""
    return provider in _BREAKPOINT_PROVIDERS


def cache_friendly(
    messages: Sequence[Mapping[str, Any]],
    *,
    provider: str,
    volatile: Iterable[re.Pattern[str]] = (),
    skip: Iterable[int] = (),
) -> tuple[list[Message], list[str]]:
    """Lay ``messages`` out for prompt caching; returns them and what was done."""
    patterns = (*VOLATILE, *volatile)
    out = [dict(m) for m in messages]
    skipped = set(skip)
    notes: list[str] = []
    moved: list[str] = []
    leading = 0
    while leading < len(out) and out[leading].get("role") == "system":
        content = out[leading].get("content")
        if leading not in skipped and isinstance(content, str):
            stable, found = _split_volatile(content, patterns)
            if found:
                out[leading]["content"] = stable
                moved += found
        leading += 1
    last_user = max((i for i, m in enumerate(out) if is_user_turn(m)), default=None)
    if moved:
        note = "\n".join(moved)
        notes.append(f"moved {len(moved)} changing line(s) out of the system prompt to the end")
        if last_user is not None and isinstance(out[last_user].get("content"), str):
            out[last_user]["content"] = f"{out[last_user]['content']}\n\n{note}"
        elif last_user is not None and isinstance(out[last_user].get("content"), list):
            out[last_user]["content"] = [
                *out[last_user]["content"],
                {"type": "text", "text": note},
            ]
        else:
            out.append({"role": "system", "content": note})
    if uses_breakpoints(provider):
        marks = 0
        if leading:
            out[leading - 1]["content"] = _with_breakpoint(out[leading - 1].get("content") or "")
            marks += 1
        if last_user is not None and last_user >= leading:
            content = out[last_user].get("content") or ""
            if moved and isinstance(content, str):
                text, _, note = content.rpartition("\n\n")
                out[last_user]["content"] = [
                    *_with_breakpoint(text),
                    {"type": "text", "text": note},
                ]
            elif moved:
                parts = list(content)
                out[last_user]["content"] = [*_with_breakpoint(parts[:-1]), parts[-1]]
            else:
                out[last_user]["content"] = _with_breakpoint(content)
            marks += 1
        notes.append(f"added {marks} cache_control breakpoint(s)")
    return out, notes

"""Task complexity: a documented heuristic from the messages, or a pluggable classifier.

The heuristic scores 0..1 as the sum of, clamped to [0, 1]:

* ``0.15`` base;
* length: ``0.35 x min(1, characters of the last user turn / 4000)``;
* code: ``+0.2`` when the text holds a code fence, a ``def``/``class``/``function`` or SQL;
* reasoning cues (``prove``, ``step by step``, ``analy[sz]e``, ``trade-off``, ``derive``,
  ``design``, ``optimi[sz]e``, ``why``, ``compare``, ``debug``): ``+0.1`` each, at most ``+0.3``;
* a long conversation (more than 6 messages): ``+0.1``;
* simple-task cues (``translate``, ``summari[sz]e``, ``classify``, ``extract``, ``yes or no``,
  ``one word``, ``spell``): ``-0.1`` each, at most ``-0.2``.

The cues are looked for in the first and the last 2,000 characters of the turn (the whole turn
when it is shorter than 4,000), so a decision costs the same for any prompt size: the length
score saturates at 4,000 characters anyway, and the instruction of a long prompt sits at its
start or its end (a document pasted in the middle says nothing about the task's difficulty).

The quality floor used by ``cost_optimal`` is ``0.35 + 0.55 x complexity`` (0.35 for trivial
tasks, 0.9 for the hardest), unless the caller gives ``required_quality``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

# Each cue is a pattern plus the literal text every match of it starts with. Matches are found
# by looking for those literals with ``str.find`` (C speed) and confirming each one with the
# pattern anchored there, which costs a fraction of scanning the text with the pattern engine.
_CODE = re.compile(r"```|def \w+\(|class \w+|function\b|SELECT\b.+\bFROM\b|=>|#include")
_CODE_STARTS = ("```", "def ", "class ", "function", "SELECT", "=>", "#include")
_REASONING = re.compile(  # read on lowercased text
    r"(?:prove|step[- ]by[- ]step|analy[sz]e|trade-?offs?|derive|design|optimi[sz]e|why|"
    r"compare|debug)\b"
)
_REASONING_STARTS = ("prove", "step", "analy", "trade", "derive", "design", "optimi", "why",
                     "compare", "debug")  # fmt: skip
_SIMPLE = re.compile(r"(?:translate|summari[sz]e|classify|extract|yes or no|one word|spell)\b")
_SIMPLE_STARTS = ("translate", "summari", "classify", "extract", "yes or no", "one word", "spell")


@runtime_checkable
class ComplexityClassifier(Protocol):
    """Anything that scores a conversation's difficulty from 0 (trivial) to 1 (hardest)."""

    def __call__(self, messages: Sequence[Mapping[str, Any]]) -> float:
        """Score ``messages`` (OpenAI-style dicts) from 0 to 1."""
        ...


def text_of(message: Mapping[str, Any]) -> str:
    """The plain text of an OpenAI-style message (text parts of multimodal content)."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    return ""


#: Characters read at each end of the last user turn when looking for cues.
CUE_WINDOW = 2000


def _cue_text(text: str) -> str:
    """The part of ``text`` the cue patterns read: all of it, or its two ends."""
    if len(text) <= 2 * CUE_WINDOW:
        return text
    # A newline between the ends keeps a word cut at either edge from joining the other end.
    return text[:CUE_WINDOW] + "\n" + text[-CUE_WINDOW:]


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"


def _count(pattern: re.Pattern[str], starts: tuple[str, ...], text: str, cap: int) -> int:
    """Non-overlapping matches of ``pattern`` (each beginning at a word boundary when it begins
    with a word character) in ``text``, counting no further than ``cap``."""
    spans: list[tuple[int, int]] = []
    for literal in starts:
        i = text.find(literal)
        while i != -1:
            if not (i and _is_word(text[i]) and _is_word(text[i - 1])):
                found = pattern.match(text, i)
                if found is not None:
                    spans.append((i, found.end()))
            i = text.find(literal, i + 1)
    n, end = 0, -1
    for begin, stop in sorted(spans):
        if begin >= end:
            n, end = n + 1, stop
            if n >= cap:
                break
    return n


def heuristic_complexity(messages: Sequence[Mapping[str, Any]]) -> float:
    """Score the difficulty of the last user turn with the documented heuristic (0..1).

    The work is bounded: cues are looked for in at most ``2 x CUE_WINDOW`` characters.
    """
    last = ""
    for message in reversed(messages):
        if message.get("role") == "user":
            last = text_of(message)
            break
    score = 0.15 + 0.35 * min(1.0, len(last) / 4000)
    cues = _cue_text(last)
    lowered = cues.lower()
    if _count(_CODE, _CODE_STARTS, cues, 1):
        score += 0.2
    score += min(0.3, 0.1 * _count(_REASONING, _REASONING_STARTS, lowered, 3))
    if len(messages) > 6:
        score += 0.1
    score -= min(0.2, 0.1 * _count(_SIMPLE, _SIMPLE_STARTS, lowered, 2))
    return min(1.0, max(0.0, score))


def quality_floor(complexity: float) -> float:
    """Quality a deployment needs for a task of this complexity: ``0.35 + 0.55 x c``."""
    return 0.35 + 0.55 * complexity


def downgrade_factor(fraction_spent: float) -> float:
    """How much the quality floor is kept as the monthly budget depletes (the default curve).

    ``1.0`` until half the budget is spent, then falling linearly to ``0.6`` when all of it
    is spent: ``1 - 0.8 x (spent - 0.5)``, clamped to ``[0.6, 1]``.
    """
    if fraction_spent <= 0.5:
        return 1.0
    return max(0.6, 1.0 - 0.8 * (fraction_spent - 0.5))

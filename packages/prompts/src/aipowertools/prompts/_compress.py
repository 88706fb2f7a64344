"""Extractive compression: drop the lowest-value sentences until a token target is met.

Each droppable sentence gets a score (documented in :func:`score_sentences`); sentences are
dropped from the lowest score up, and the number dropped is found by a search that counts the
whole prompt with the model's own counter, so the result is at or under the target by that
counter, not by an estimate. Protected spans (code blocks, inline code, quoted strings) are
never cut: a sentence holding inline code or a quoted string is dropped whole or kept whole,
and code blocks are never dropped; nor is anything in a pinned message, a tool result or the
question (the last paragraph of the last user turn).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aipowertools.prompts._lossless import _PLACEHOLDER, PassLog, Protected, squeeze_whitespace
from aipowertools.prompts._scoring import overlap, terms

_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|$)[ \t]*|\n", re.M)
_FACT = re.compile(r"\d|\b[A-Z][a-z]")

RELEVANCE = 0.45
DENSITY = 0.25
POSITION = 0.2
FACTS = 0.1
_TOP_TERMS = 20


@dataclass
class Sentence:
    """A droppable sentence: where it is (text ``owner``, span) and its score."""

    owner: int
    start: int
    end: int
    score: float


class Document:
    """One text whose sentences may be dropped, with its protected spans held aside."""

    def __init__(self, text: str) -> None:
        self.protected = Protected(text)
        self.protected.protect_quotes()
        self.work = self.protected.text

    def sentences(self) -> list[tuple[int, int, bool]]:
        """``(start, end, first_in_paragraph)`` of each sentence without protected spans."""
        out: list[tuple[int, int, bool]] = []
        first = True
        for match in _SENTENCE.finditer(self.work):
            piece = match.group(0)
            if piece == "\n":
                first = first or self.work[max(0, match.start() - 1)] == "\n"
                continue
            if piece.strip() and not any(
                self.protected.spans[int(n)].lstrip().startswith(("```", "~~~"))
                for n in _PLACEHOLDER.findall(piece)
            ):
                out.append((match.start(), match.end(), first))
            first = False
        return out

    def without(self, spans: Sequence[tuple[int, int]]) -> str:
        """The text with ``spans`` removed, protected spans restored."""
        if not spans:
            return self.protected.restore(self.work)
        parts: list[str] = []
        position = 0
        for start, end in sorted(spans):
            parts.append(self.work[position:start])
            position = end
        parts.append(self.work[position:])
        return self.protected.restore(squeeze_whitespace("".join(parts), PassLog()))


def score_sentences(documents: Sequence[Document], query: str | None) -> list[Sentence]:
    """Score every droppable sentence of ``documents``.

    ``score = 0.45 x relevance + 0.25 x density + 0.2 x position + 0.1 x facts`` where
    relevance is the share of the query's terms the sentence holds (the query is the last
    user turn; for a bare text, its 20 most frequent terms), density its distinct terms per
    word, position 1 for a paragraph's first sentence and 0.5 otherwise, and facts 1 when it
    holds a number or a capitalised name. Lower scores are dropped first.
    """
    spans = [(d, s) for d in documents for s in d.sentences()]
    if query is None:
        counts: Counter[str] = Counter()
        for document, (start, end, _) in spans:
            counts.update(terms(document.work[start:end]))
        query_terms = frozenset(t for t, _ in counts.most_common(_TOP_TERMS))
    else:
        query_terms = terms(query)
    out: list[Sentence] = []
    for owner, document in enumerate(documents):
        for start, end, first in document.sentences():
            text = document.work[start:end]
            found = terms(text)
            words = max(1, len(text.split()))
            score = (
                RELEVANCE * overlap(found, query_terms)
                + DENSITY * min(1.0, len(found) / words)
                + POSITION * (1.0 if first else 0.5)
                + FACTS * (1.0 if _FACT.search(text) else 0.0)
            )
            out.append(Sentence(owner, start, end, score))
    return out


def drop_to_target(
    documents: Sequence[Document],
    sentences: Sequence[Sentence],
    count: Callable[[list[str]], int],
    target: int,
) -> tuple[list[str], int, int]:
    """Drop the fewest lowest-scored sentences so that ``count(texts) <= target``.

    Returns the texts, their count and how many sentences were dropped; when even dropping
    every candidate is not enough, the texts with all of them dropped (count above target).
    """
    order = sorted(range(len(sentences)), key=lambda i: (sentences[i].score, -i))

    def build(k: int) -> list[str]:
        gone: dict[int, list[tuple[int, int]]] = {}
        for i in order[:k]:
            s = sentences[i]
            gone.setdefault(s.owner, []).append((s.start, s.end))
        return [d.without(gone.get(n, [])) for n, d in enumerate(documents)]

    texts = build(0)
    tokens = count(texts)
    if tokens <= target:
        return texts, tokens, 0
    every = len(order)
    fitted = (build(every), 0, every)
    fitted = (fitted[0], count(fitted[0]), every)
    if fitted[1] > target:
        return fitted  # not even dropping everything droppable is enough
    low, high = 0, every  # low does not fit, high does
    while high - low > 1:
        middle = (low + high) // 2
        texts = build(middle)
        tokens = count(texts)
        if tokens <= target:
            high, fitted = middle, (texts, tokens, middle)
        else:
            low = middle
    return fitted

"""Term overlap: the relevance score shared by pruning, prioritising and compression."""

from __future__ import annotations

import re
from collections.abc import Iterable

_WORD = re.compile(r"[^\W_]{3,}", re.UNICODE)
STOPWORDS = frozenset(
    [
        "the",
        "and",
        "for",
        "are",
        "but",
        "not",
        "you",
        "all",
        "any",
        "can",
        "had",
        "her",
        "was",
        "one",
        "our",
        "out",
        "has",
        "have",
        "him",
        "his",
        "how",
        "its",
        "may",
        "new",
        "now",
        "old",
        "see",
        "two",
        "way",
        "who",
        "did",
        "get",
        "let",
        "put",
        "say",
        "she",
        "too",
        "use",
        "that",
        "with",
        "this",
        "from",
        "they",
        "will",
        "would",
        "there",
        "their",
        "what",
        "about",
        "which",
        "when",
        "make",
        "like",
        "time",
        "just",
        "know",
        "take",
        "into",
        "your",
        "some",
        "could",
        "them",
        "than",
        "then",
        "these",
        "been",
        "were",
        "said",
        "each",
        "also",
        "very",
        "more",
        "most",
        "other",
        "only",
        "over",
        "such",
        "here",
        "should",
        "does",
        "doing",
        "being",
        "because",
        "while",
        "where",
        "after",
        "before",
        "again",
        "further",
        "once",
    ]
)


def terms(text: str) -> frozenset[str]:
    """Lower-cased words of three letters or more, without common English stop words."""
    return frozenset(w for w in _WORD.findall(text.lower()) if w not in STOPWORDS)


def overlap(candidate: Iterable[str], query: frozenset[str]) -> float:
    """The share of the query's terms that the candidate contains (0 when the query is empty)."""
    if not query:
        return 0.0
    return len(query.intersection(candidate)) / len(query)

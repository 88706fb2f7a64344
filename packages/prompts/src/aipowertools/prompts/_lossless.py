"""Lossless passes over prompt text: protected spans, JSON, boilerplate, whitespace, duplicates.

"Lossless" means the text of code blocks, inline code, quoted strings, numbers and names is
unchanged: code blocks (fenced with ``` or ~~~), inline code and double-quoted strings are
replaced by placeholders before any pass runs and put back verbatim afterwards; a sentence is
removed as a near-duplicate only when every number, capitalised word and protected span it
holds also appears in the sentence it duplicates. Property-tested with hypothesis.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

_FENCE = re.compile(r"^[ \t]*(```|~~~)[^\n]*\n.*?(?:^[ \t]*\1[ \t]*$|\Z)", re.M | re.S)
_INLINE_CODE = re.compile(r"`[^`\n]+`")
_QUOTED = re.compile(r"\"[^\"\n]*\"|\u201c[^\u201d\n]*\u201d")
_OPEN, _CLOSE = "\ue000", "\ue001"
_PLACEHOLDER = re.compile(f"{_OPEN}(\\d+){_CLOSE}")
_SPACES = re.compile(r"(?<=\S)[ \t]{2,}")
_TRAILING = re.compile(r"[ \t]+$", re.M)
_BLANKS = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")
_PARAGRAPH_BREAK = re.compile(r"(\n[ \t]*\n)")
_SENTENCE_BREAK = re.compile(r"((?<=[.!?])[ \t]+|\n)")
_NUMBER = re.compile(r"\d+(?:[.,:/-]\d+)*")
_NAME = re.compile(r"\b[A-Z][\w'-]*")
_WORD = re.compile(r"\w+")
MIN_DUPLICATE_WORDS = 8
NEAR_DUPLICATE = 0.8
_JSON_START = re.compile(r"[\[{]")
_MIN_JSON = 20


@dataclass
class PassLog:
    """What the passes changed in one text, by pass name."""

    counts: Counter[str] = field(default_factory=Counter)

    def add(self, name: str, n: int = 1) -> None:
        """Record ``n`` changes by pass ``name``."""
        if n:
            self.counts[name] += n


class Protected:
    """A text with its protected spans swapped for placeholders (same span, same id)."""

    def __init__(self, text: str, quotes: bool = True) -> None:
        self.spans: list[str] = []
        self._ids: dict[str, int] = {}
        text = _FENCE.sub(self._swap, text)
        text = _INLINE_CODE.sub(self._swap, text)
        self.text = text
        self._quotes = quotes

    def _swap(self, match: re.Match[str]) -> str:
        span = match.group(0)
        index = self._ids.get(span)
        if index is None:
            index = self._ids[span] = len(self.spans)
            self.spans.append(span)
        return f"{_OPEN}{index}{_CLOSE}"

    def protect_quotes(self) -> None:
        """Swap double-quoted strings for placeholders too (after JSON has been handled)."""
        self.text = _QUOTED.sub(self._swap, self.text)

    def restore(self, text: str) -> str:
        """Put the protected spans back."""
        return _PLACEHOLDER.sub(lambda m: self.spans[int(m.group(1))], text)


def minify_json_span(raw: str) -> str:
    """``raw`` (valid JSON) without whitespace outside strings; strings and numbers as written."""
    out: list[str] = []
    in_string = False
    escaped = False
    for char in raw:
        if in_string:
            out.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
            out.append(char)
        elif char not in " \t\r\n":
            out.append(char)
    return "".join(out)


def minify_embedded_json(text: str, log: PassLog) -> str:
    """Minify every JSON object or array of 20+ characters found in ``text``."""
    decoder = json.JSONDecoder()
    out: list[str] = []
    position = 0
    while True:
        match = _JSON_START.search(text, position)
        if match is None:
            break
        start = match.start()
        try:
            value, end = decoder.raw_decode(text, start)
        except ValueError:
            out.append(text[position : start + 1])
            position = start + 1
            continue
        raw = text[start:end]
        out.append(text[position:start])
        if isinstance(value, dict | list) and value and len(raw) >= _MIN_JSON:
            small = minify_json_span(raw)
            if small != raw:
                log.add("json")
            out.append(small)
        else:
            out.append(raw)
        position = end
    out.append(text[position:])
    return "".join(out)


def squeeze_whitespace(text: str, log: PassLog) -> str:
    """Trailing spaces, runs of spaces inside lines, and runs of blank lines, collapsed."""
    new = _TRAILING.sub("", text)
    new = _SPACES.sub(" ", new)
    new = _BLANKS.sub("\n\n", new)
    if new.endswith("\n\n"):
        new = new.rstrip("\n") + "\n"
    if new != text:
        log.add("whitespace")
    return new


def strip_boilerplate(text: str, patterns: Iterable[re.Pattern[str]], log: PassLog) -> str:
    """Remove the registered boilerplate patterns."""
    for pattern in patterns:
        text, n = pattern.subn("", text)
        log.add("boilerplate", n)
    return text


def _facts(sentence: str) -> frozenset[str]:
    plain = _PLACEHOLDER.sub(" ", sentence)
    return frozenset(_NUMBER.findall(plain) + _NAME.findall(plain) + _PLACEHOLDER.findall(sentence))


def _normal(sentence: str) -> str:
    return " ".join(sentence.split())


def _shingles(words: list[str]) -> frozenset[tuple[str, ...]]:
    return frozenset(zip(words, words[1:], words[2:], strict=False))


class _Seen:
    """Sentences kept so far, for exact and near-duplicate lookups."""

    def __init__(self, near: float) -> None:
        self.near = near
        self.exact: set[str] = set()
        self.index: dict[tuple[str, ...], list[int]] = {}
        self.kept: list[tuple[frozenset[tuple[str, ...]], frozenset[str]]] = []

    def duplicate(self, sentence: str) -> str | None:
        """``"exact"`` / ``"near"`` when ``sentence`` repeats a kept one; else keep it."""
        words = _WORD.findall(sentence.lower())
        if len(words) < MIN_DUPLICATE_WORDS:
            return None
        normal = _normal(sentence)
        if normal in self.exact:
            return "exact"
        shingles = _shingles(words)
        facts = _facts(sentence)
        if self.near < 1.0 and shingles:
            hits: Counter[int] = Counter()
            for shingle in shingles:
                for i in self.index.get(shingle, ()):
                    hits[i] += 1
            for i, shared in hits.most_common(3):
                other, other_facts = self.kept[i]
                similarity = shared / len(shingles | other)
                if similarity >= self.near and facts <= other_facts:
                    return "near"
        self.exact.add(normal)
        position = len(self.kept)
        self.kept.append((shingles, facts))
        for shingle in shingles:
            self.index.setdefault(shingle, []).append(position)
        return None


def dedupe(text: str, log: PassLog, near: float = NEAR_DUPLICATE) -> str:
    """Remove repeated paragraphs and sentences (exact, then near-duplicates), first kept."""
    seen = _Seen(near)
    paragraphs = _PARAGRAPH_BREAK.split(text)
    out: list[str] = []
    seen_paragraphs: set[str] = set()
    for i in range(0, len(paragraphs), 2):
        paragraph = paragraphs[i]
        normal = _normal(paragraph)
        if normal in seen_paragraphs and len(_WORD.findall(normal)) >= MIN_DUPLICATE_WORDS:
            log.add("duplicate paragraph")
            continue
        seen_paragraphs.add(normal)
        kept = _dedupe_sentences(paragraph, seen, log)
        if not kept.strip() and paragraph.strip():
            continue
        if out:
            out.append(paragraphs[i - 1])
        out.append(kept)
    # whatever went, the text ends the way it did
    return "".join(out).rstrip() + text[len(text.rstrip()) :]


def _dedupe_sentences(paragraph: str, seen: _Seen, log: PassLog) -> str:
    pieces = _SENTENCE_BREAK.split(paragraph)  # sentence, separator, sentence, ...
    out: list[str] = []
    for i in range(0, len(pieces), 2):
        sentence = pieces[i]
        after = pieces[i + 1] if i + 1 < len(pieces) else ""
        kind = seen.duplicate(sentence) if sentence.strip() else None
        if kind is None:
            out.append(sentence)
            if after:
                out.append(after)
            continue
        log.add(f"{kind} duplicate sentence")
        if out and not after:
            out.pop()  # the last sentence went: so does the separator before it
        elif out and "\n" in after:
            out[-1] = after  # keep the line break
    return "".join(out)


def lossless(
    text: str,
    *,
    boilerplate: Iterable[re.Pattern[str]] = (),
    duplicates: bool = True,
    near: float = NEAR_DUPLICATE,
    json_pass: bool = True,
    log: PassLog | None = None,
) -> str:
    """Run the lossless passes over one text and return it (see the module docstring)."""
    log = log if log is not None else PassLog()
    if _OPEN in text or _CLOSE in text:
        return text  # our placeholder characters are in the text: leave it alone
    protected = Protected(text)
    work = protected.text
    if json_pass:
        work = minify_embedded_json(work, log)
    protected.text = work
    protected.protect_quotes()
    work = strip_boilerplate(protected.text, boilerplate, log)
    work = squeeze_whitespace(work, log)
    if duplicates:
        work = dedupe(work, log, near)
        work = squeeze_whitespace(work, PassLog())
    return protected.restore(work)


TextPass = Callable[[str], str]

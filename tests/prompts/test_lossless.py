"""The lossless passes: code blocks, numbers, names and quoted strings are never changed."""

from __future__ import annotations

import json
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from aipowertools.prompts._lossless import PassLog, lossless, minify_json_span

FENCE = re.compile(r"^[ \t]*(```|~~~)[^\n]*\n.*?^[ \t]*\1[ \t]*$", re.M | re.S)
INLINE = re.compile(r"`[^`\n]+`")
QUOTED = re.compile(r"\"[^\"\n]*\"")
DIGITS = re.compile(r"\d+")
NAME = re.compile(r"\b[A-Z][a-z]+")

words = st.sampled_from(
    [
        "the",
        "refund",
        "policy",
        "covers",
        "items",
        "returned",
        "within",
        "days",
        "of",
        "purchase",
        "and",
        "the",
        "invoice",
        "lists",
        "every",
        "charge",
        "by",
        "date",
    ]
)
names = st.sampled_from(["Paris", "Alice", "Acme", "Berlin", "Zurich", "Bob"])
numbers = st.integers(0, 100_000).map(str) | st.floats(0, 1_000, allow_nan=False).map(
    lambda f: f"{f:.2f}"
)
token = words | names | numbers
sentence = st.lists(token, min_size=3, max_size=14).map(lambda ws: " ".join(ws) + ".")
spaces = st.sampled_from([" ", "  ", "   ", "\t", " \t "])
quoted = st.text(
    st.characters(blacklist_characters='"\n`\ue000\ue001', blacklist_categories=["Cs"]),
    max_size=20,
).map(lambda t: f'"{t}"')
code = st.text(
    st.characters(blacklist_characters="`~\ue000\ue001", blacklist_categories=["Cs"]),
    max_size=80,
).map(lambda body: f"```python\n{body}\n```")
inline = st.text(st.sampled_from("ab  c1 2."), min_size=1, max_size=10).map(lambda t: f"`{t}`")
json_value = st.recursive(
    st.integers(-1000, 1000) | st.text("ab c", max_size=5) | st.booleans() | st.none(),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text("xyz", min_size=1, max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)
embedded_json = st.tuples(
    st.dictionaries(st.text("keys", min_size=1, max_size=4), json_value, min_size=1, max_size=4),
    st.sampled_from([None, 2, 4]),
).map(lambda pair: json.dumps(pair[0], indent=pair[1]))


@st.composite
def documents(draw: st.DrawFn) -> str:
    pieces: list[str] = []
    said: list[str] = []
    for _ in range(draw(st.integers(1, 14))):
        kind = draw(
            st.sampled_from(["sentence", "repeat", "quoted", "code", "inline", "json", "break"])
        )
        if kind == "repeat" and said:
            piece = draw(st.sampled_from(said))
        elif kind == "quoted":
            piece = f"He said {draw(quoted)} there."
        elif kind == "code":
            piece = f"\n{draw(code)}\n"
        elif kind == "inline":
            piece = f"Run {draw(inline)} now."
        elif kind == "json":
            piece = f"Data: {draw(embedded_json)}"
        elif kind == "break":
            piece = "\n" * draw(st.integers(1, 4))
        else:
            piece = draw(sentence)
            said.append(piece)
        pieces.append(piece + draw(spaces))
    return "".join(pieces)


def facts(text: str) -> tuple[set[str], set[str], set[str], set[str], set[str]]:
    fences = set(FENCE.findall(text) and [m.group(0) for m in FENCE.finditer(text)])
    rest = FENCE.sub(" ", text)
    inlines = set(INLINE.findall(rest))
    rest = INLINE.sub(" ", rest)
    return (
        fences,
        inlines,
        set(QUOTED.findall(rest)),
        set(DIGITS.findall(rest)),
        set(NAME.findall(rest)),
    )


@settings(max_examples=300, deadline=None)
@given(documents())
def test_lossless_keeps_code_numbers_names_and_quotes(text: str) -> None:
    out = lossless(text)
    before, after = facts(text), facts(out)
    assert after[0] == before[0]  # code blocks, verbatim
    for block in before[0]:
        assert block in out
    assert after[1:] == before[1:]  # inline code, quoted strings, numbers, names
    assert len(out) <= len(text)
    assert lossless(out) == out  # idempotent: a second run finds nothing more


def test_each_pass_does_what_it_says() -> None:
    log = PassLog()
    text = (
        "Intro   text  here.   \n\n\n\n"
        "The refund policy allows returns within 30 days of purchase for all items. "
        "The refund policy allows returns within 30 days of purchase for all items.\n"
        "```python\nx  =  1    # spaces stay\n```\n"
        'He said "hello    world" twice. Data: {"a": 1,   "b": [1, 2,  3], "c": "x  y"}\n\n'
        "The refund policy allows returns within 30 days of purchase, for all items.\n"
        "Confidential - do not distribute.\n"
    )
    out = lossless(text, boilerplate=[re.compile(r"Confidential - do not distribute\.")], log=log)
    assert out == (
        "Intro text here.\n\n"
        "The refund policy allows returns within 30 days of purchase for all items.\n"
        "```python\nx  =  1    # spaces stay\n```\n"
        'He said "hello    world" twice. Data: {"a":1,"b":[1,2,3],"c":"x  y"}\n'
    )
    assert log.counts == {
        "whitespace": 1,
        "json": 1,
        "exact duplicate sentence": 1,
        "near duplicate sentence": 1,
        "boilerplate": 1,
    }


def test_near_duplicates_with_other_facts_are_kept() -> None:
    text = (
        "The refund policy allows returns within 30 days of purchase for all items. "
        "The refund policy allows returns within 45 days of purchase for all items."
    )
    assert lossless(text) == text  # 45 is not in the first sentence: both stay
    short = "Yes it is. Yes it is."
    assert lossless(short) == short  # too short to call a repeat
    assert lossless(text, duplicates=False) == text


def test_json_minification_keeps_strings_and_numbers_as_written() -> None:
    raw = '{ "a" : 1.50 , "b\\" c" : [ 1e3 , "x \\\\ y" ] }'
    assert minify_json_span(raw) == '{"a":1.50,"b\\" c":[1e3,"x \\\\ y"]}'
    text = 'list [1] and {"not": json and [ ] and {"k": [1,  2]}'
    assert lossless(text) == 'list [1] and {"not": json and [ ] and {"k": [1, 2]}'
    placeholder = "odd \ue000 text   here"
    assert lossless(placeholder) == placeholder  # our placeholder characters: left alone

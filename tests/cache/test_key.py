"""Canonical keys: never two keys for one request, never one key for two different requests."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from aipowertools.cache import LLMCache

cache = LLMCache("memory://")
texts = st.text(min_size=1, max_size=40)
messages_st = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["system", "user", "assistant"]), "content": texts}
    ),
    min_size=1,
    max_size=4,
)
params_st = st.fixed_dictionaries(
    {},
    optional={
        "temperature": st.floats(0, 2, allow_nan=False),
        "seed": st.integers(0, 1000),
        "max_tokens": st.integers(1, 4096),
        "stop": st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=3),
        "top_p": st.floats(0, 1, allow_nan=False),
    },
)


def key(messages: Any, model: str = "gpt-4o-mini", **params: Any) -> str | None:
    return cache.key(messages, model=model, **params)


def shuffled(d: dict[str, Any]) -> dict[str, Any]:
    return dict(reversed(list(d.items())))


@settings(max_examples=150, deadline=None)
@given(messages_st, params_st)
def test_equivalent_spellings_share_one_key(messages: list[Any], params: dict[str, Any]) -> None:
    base = key(messages, **params)
    assert base is not None
    # key order of messages and parameters
    assert key([shuffled(m) for m in messages], **shuffled(params)) == base
    # equivalent spellings: max_completion_tokens, None values, whole floats, one text part,
    # LangChain role names, a one-item stop list spelled as a string
    variant = dict(params)
    if "max_tokens" in variant:
        variant["max_completion_tokens"] = variant.pop("max_tokens")
    if "temperature" in variant and float(variant["temperature"]).is_integer():
        variant["temperature"] = int(variant["temperature"])
    if "stop" in variant and len(variant["stop"]) == 1:
        variant["stop"] = variant["stop"][0]
    variant["presence_penalty"] = None
    parted = [
        {
            "role": {"user": "human", "assistant": "ai"}.get(m["role"], m["role"]),
            "content": [{"type": "text", "text": m["content"]}],
            "name": None,
        }
        for m in messages
    ]
    assert key(parted, **variant) == base
    # provider model prefix, parameters that never reach the model
    assert key(messages, model="openai/gpt-4o-mini", stream=True, timeout=3, **params) == base


@settings(max_examples=150, deadline=None)
@given(messages_st, params_st, messages_st, params_st)
def test_different_requests_never_share_a_key(
    m1: list[Any], p1: dict[str, Any], m2: list[Any], p2: dict[str, Any]
) -> None:
    def canon(messages: list[Any], params: dict[str, Any]) -> str:
        p = {
            k: (int(v) if isinstance(v, float) and v.is_integer() else v) for k, v in params.items()
        }
        return json.dumps([messages, p], sort_keys=True)

    if canon(m1, p1) != canon(m2, p2):
        assert key(m1, **p1) != key(m2, **p2)
    else:
        assert key(m1, **p1) == key(m2, **p2)


def test_what_changes_the_answer_changes_the_key() -> None:
    m = [{"role": "user", "content": "Hi"}]
    base = key(m)
    assert key(m, model="gpt-4o") != base
    assert key(m, temperature=0.0) != key(m, temperature=0.7)
    assert key(m, seed=1) != key(m, seed=2)
    assert key(m, max_tokens=10) != key(m, max_tokens=11)
    assert key(m, stop=["a"]) != key(m, stop=["b"])
    tool = {"type": "function", "function": {"name": "f", "parameters": {}}}
    assert key(m, tools=[tool]) != base
    assert key(m, response_format={"type": "json_object"}) != base
    assert key([{"role": "system", "content": "Hi"}]) != base
    assert key([{"role": "user", "content": "Hi "}]) != base  # whitespace kept by default
    assert key([{"role": "user", "content": "hi"}]) != base
    # both spellings given: kept apart rather than guessed
    assert key(m, max_tokens=5, max_completion_tokens=6) != key(m, max_tokens=5)


def test_whitespace_normalisation_is_opt_in() -> None:
    loose = LLMCache("memory://", normalize="whitespace")
    a = [{"role": "user", "content": "What is  the\ncapital of France?  "}]
    b = [{"role": "user", "content": "What is the capital of France?"}]
    assert loose.key(a, model="gpt-4o-mini") == loose.key(b, model="gpt-4o-mini")
    assert cache.key(a, model="gpt-4o-mini") != cache.key(b, model="gpt-4o-mini")
    # only text is folded: the same words in another role stay apart
    c = [{"role": "system", "content": "What is the capital of France?"}]
    assert loose.key(c, model="gpt-4o-mini") != loose.key(b, model="gpt-4o-mini")


def test_tool_calls_compare_as_json_in_either_spelling() -> None:
    openai_form = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "w", "arguments": '{"a":1,"b":2}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    langchain_form = [
        {"type": "human", "content": "weather?"},
        {
            "type": "ai",
            "content": "",
            "tool_calls": [{"id": "c1", "name": "w", "args": {"b": 2, "a": 1}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    assert key(openai_form) == key(langchain_form)
    other = json.loads(json.dumps(openai_form))
    other[1]["tool_calls"][0]["function"]["arguments"] = '{"a":1,"b":3}'
    assert key(other) != key(openai_form)
    broken = json.loads(json.dumps(openai_form))
    broken[1]["tool_calls"][0]["function"]["arguments"] = "{not json"
    assert key(broken) not in (None, key(openai_form))


def test_scopes_decide_what_is_in_the_key() -> None:
    m = [{"role": "user", "content": "Hi"}]
    content = LLMCache("memory://", scope="content")
    assert content.key(m, model="gpt-4o") == content.key(m, model="claude-sonnet")
    assert content.key(m, model="gpt-4o", temperature=0) != content.key(
        m, model="gpt-4o", temperature=1
    )
    glob = LLMCache("memory://", scope="global")
    assert glob.key(m, model="gpt-4o", temperature=0) == glob.key(m, model="o3", temperature=1)
    user = LLMCache("memory://", scope="user")
    assert user.key(m, model="gpt-4o", user="ann") != user.key(m, model="gpt-4o", user="bob")
    assert key(m, user="ann") == key(m, user="bob")  # model scope: users share


def test_values_without_a_canonical_form_are_not_cached() -> None:
    assert key([{"role": "user", "content": "Hi"}], logit_bias=object()) is None
    assert key(["Hi", 3]) is None  # type: ignore[list-item]

    class Schema:
        @staticmethod
        def model_json_schema() -> dict[str, Any]:
            return {"type": "object"}

    assert key("Hi", response_format=Schema) == key(
        "Hi", response_format={"json_schema": {"type": "object"}}
    )
    assert key("Hi") == key([{"role": "user", "content": "Hi"}])


def test_content_parts_and_odd_shapes() -> None:
    parts = [
        {"role": "user", "content": ["look at", {"type": "image_url", "image_url": {"url": "u"}}]}
    ]
    assert key(parts) != key([{"role": "user", "content": "look at"}])
    assert key([{"role": "user", "content": {"weird": 1}}]) is not None
    assert key([{"role": "user", "content": "x", "tool_calls": ["odd"]}]) is not None
    assert key([{"role": "assistant"}]) == key([{"role": "assistant", "content": ""}])
    assert key("Hi", tools=[]) == key("Hi")
    semantic = LLMCache("memory://", semantic=lambda text: [1.0, float(len(text))])
    semantic.store("x", messages=[{"role": "user", "content": ["a", "b"]}], model="m")
    assert semantic.lookup([{"role": "user", "content": ["a", "b"]}], model="m") is not None
    assert semantic.lookup([{"role": "user", "content": {"k": 1}}], model="m") is None

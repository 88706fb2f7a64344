"""The simulator's prompt caches follow each provider's rules, so savings are measured."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest

from aipowertools.testing import SimModel, SimRequest, Simulator
from aipowertools.testing._prompt_cache import PromptCache, openai_cached

WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"]
SYSTEM = " ".join(WORDS[i % len(WORDS)] + str(i) for i in range(1_500))  # ~3,000 tokens


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def openai_request(*messages: dict[str, Any], tools: list[Any] | None = None) -> SimRequest:
    return SimRequest("openai", "m", list(messages), tools=tools or [])


def anthropic_request(body: dict[str, Any]) -> SimRequest:
    return SimRequest("anthropic", "claude-sonnet", [], body=body)


def test_openai_rule_is_1024_tokens_then_128_token_steps() -> None:
    assert openai_cached(1_023) == 0
    assert openai_cached(1_024) == 1_024
    assert openai_cached(1_151) == 1_024
    assert openai_cached(1_152) == 1_152
    assert openai_cached(3_000) == 1_024 + 128 * 15


def test_openai_repeated_prefix_is_cached_until_the_ttl_runs_out() -> None:
    clock = Clock()
    cache = PromptCache(clock)
    system = {"role": "system", "content": SYSTEM}
    first = openai_request(system, {"role": "user", "content": "question one"})
    second = openai_request(system, {"role": "user", "content": "question two"})
    assert cache.account("openai", "m", first, 3_020, "gpt-4o") == (0, 0)
    cached, created = cache.account("openai", "m", second, 3_020, "gpt-4o")
    assert created == 0
    assert 1_024 <= cached < 3_020
    assert (cached - 1_024) % 128 == 0
    # another model has its own cache
    assert cache.account("openai", "other", second, 3_020, "gpt-4o") == (0, 0)
    clock.now += 299  # a hit refreshes the entry...
    assert cache.account("openai", "m", second, 3_020, "gpt-4o")[0] == cached
    clock.now += 301  # ...and it expires 300 s after its last use
    assert cache.account("openai", "m", second, 3_020, "gpt-4o") == (0, 0)


def test_openai_short_prefixes_and_a_changed_start_are_not_cached() -> None:
    cache = PromptCache(Clock())
    short = openai_request({"role": "user", "content": "hi"})
    assert cache.account("openai", "m", short, 8, "gpt-4o") == (0, 0)
    assert cache.account("openai", "m", short, 8, "gpt-4o") == (0, 0)
    a = openai_request({"role": "system", "content": "today is monday. " + SYSTEM})
    b = openai_request({"role": "system", "content": "today is tuesday. " + SYSTEM})
    cache.account("openai", "m", a, 3_010, "gpt-4o")
    assert cache.account("openai", "m", b, 3_010, "gpt-4o") == (0, 0)  # the prefix differs
    tools = [{"type": "function", "function": {"name": "f", "description": SYSTEM}}]
    with_tools = openai_request({"role": "user", "content": "x"}, tools=tools)
    cache.account("openai", "m", with_tools, 3_010, "gpt-4o")
    assert cache.account("openai", "m", with_tools, 3_010, "gpt-4o")[0] >= 1_024
    assert cache.account("ollama", "m", with_tools, 3_010, "gpt-4o") == (0, 0)
    assert cache.account("openai", "m", openai_request(), 3_000, "gpt-4o") == (0, 0)


def _body(question: str, *, ttl: str | None = None, history: int = 0) -> dict[str, Any]:
    control: dict[str, Any] = {"type": "ephemeral"}
    if ttl:
        control["ttl"] = ttl
    messages: list[dict[str, Any]] = []
    for i in range(history):
        messages += [
            {"role": "user", "content": f"old question {i}"},
            {"role": "assistant", "content": f"old answer {i}"},
        ]
    messages.append(
        {"role": "user", "content": [{"type": "text", "text": question, "cache_control": control}]}
    )
    return {
        "system": [{"type": "text", "text": SYSTEM, "cache_control": control}],
        "messages": messages,
    }


def test_anthropic_breakpoints_write_then_read() -> None:
    clock = Clock()
    cache = PromptCache(clock)
    first = anthropic_request(_body("question one"))
    read, created = cache.account("anthropic", "claude-sonnet", first, 3_010, "gpt-4o")
    assert read == 0
    assert created == 3_010  # everything up to the last breakpoint was written
    second = anthropic_request(_body("question two"))
    read, created = cache.account("anthropic", "claude-sonnet", second, 3_010, "gpt-4o")
    assert 2_900 < read < 3_010  # the system prompt, read
    assert read + created == 3_010  # the new question, written at its breakpoint
    clock.now += 301
    assert cache.account("anthropic", "claude-sonnet", second, 3_010, "gpt-4o")[0] == 0


def test_anthropic_one_hour_ttl_minimums_and_no_breakpoint() -> None:
    clock = Clock()
    cache = PromptCache(clock)
    body = _body("q", ttl="1h")
    cache.account("anthropic", "claude-sonnet", anthropic_request(body), 3_010, "gpt-4o")
    clock.now += 3_000
    assert cache.account("anthropic", "claude-sonnet", anthropic_request(body), 3_010, "gpt-4o")[0]
    no_marks = {"system": SYSTEM, "messages": [{"role": "user", "content": "q"}]}
    assert cache.account("anthropic", "claude-sonnet", anthropic_request(no_marks), 3_010, "g") == (
        0,
        0,
    )
    # below the model's minimum nothing is written: Haiku needs 2,048 tokens
    small = {
        "system": [{"type": "text", "text": "short", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "q"}],
    }
    assert cache.account("anthropic", "claude-haiku", anthropic_request(small), 1_500, "g") == (
        0,
        0,
    )
    assert cache.account("anthropic", "claude-haiku", anthropic_request(small), 1_500, "g") == (
        0,
        0,
    )


def test_anthropic_reads_an_earlier_breakpoint_within_the_lookback() -> None:
    cache = PromptCache(Clock())
    turn1 = _body("q1", history=1)
    cache.account("anthropic", "claude-sonnet", anthropic_request(turn1), 3_050, "gpt-4o")
    # the next turn: the old question's breakpoint moved to a new last message
    turn2 = _body("q2", history=2)
    turn2["messages"][2] = turn1["messages"][2]  # the same content block as before
    turn2["messages"][2]["content"][0].pop("cache_control")
    read, _ = cache.account("anthropic", "claude-sonnet", anthropic_request(turn2), 3_080, "gpt-4o")
    assert read > 2_900
    tools_body = {
        "tools": [{"name": "f", "input_schema": {}, "cache_control": {"type": "ephemeral"}}],
        "system": SYSTEM,
        "messages": [{"role": "user", "content": "q"}, "not a message"],
    }
    request = anthropic_request(tools_body)
    assert cache.account("anthropic", "claude-sonnet", request, 3_000, "gpt-4o") == (0, 0)


def test_openai_wire_reports_cached_tokens_for_a_repeated_prefix(llm_simulator: Simulator) -> None:
    llm_simulator.add_model(SimModel("cache-me", reply="ok"))
    messages: list[Any] = [{"role": "system", "content": SYSTEM}]
    with openai.OpenAI(base_url=llm_simulator.base_url(), api_key="k", max_retries=0) as client:
        first = client.chat.completions.create(
            model="cache-me", messages=[*messages, {"role": "user", "content": "one"}]
        )
        second = client.chat.completions.create(
            model="cache-me", messages=[*messages, {"role": "user", "content": "two"}]
        )
    assert first.usage is not None
    assert second.usage is not None
    assert first.usage.prompt_tokens_details is not None
    assert second.usage.prompt_tokens_details is not None
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    cached = second.usage.prompt_tokens_details.cached_tokens
    assert cached is not None
    assert 1_024 <= cached <= second.usage.prompt_tokens
    assert llm_simulator.requests[-1].cached_tokens == cached
    llm_simulator.clear_prompt_cache()
    with openai.OpenAI(base_url=llm_simulator.base_url(), api_key="k", max_retries=0) as client:
        third = client.chat.completions.create(
            model="cache-me", messages=[*messages, {"role": "user", "content": "two"}]
        )
    assert third.usage is not None
    assert third.usage.prompt_tokens_details is not None
    assert third.usage.prompt_tokens_details.cached_tokens == 0


def test_anthropic_wire_reports_cache_writes_and_reads(llm_simulator: Simulator) -> None:
    llm_simulator.add_model(SimModel("claude-sim", reply="ok"))
    client = anthropic.Anthropic(
        base_url=llm_simulator.base_url("anthropic"), api_key="k", max_retries=0
    )
    usages = []
    for question in ("one", "two"):
        body = _body(question)
        reply = client.messages.create(
            model="claude-sim", max_tokens=10, system=body["system"], messages=body["messages"]
        )
        usages.append(reply.usage)
    client.close()
    assert usages[0].cache_read_input_tokens == 0
    assert usages[0].cache_creation_input_tokens
    assert usages[1].cache_read_input_tokens
    assert usages[1].cache_read_input_tokens > 2_000
    total = (
        usages[1].input_tokens
        + usages[1].cache_read_input_tokens
        + (usages[1].cache_creation_input_tokens or 0)
    )
    assert total == llm_simulator.requests[-1].prompt_tokens


def test_prompt_caching_can_be_turned_off_and_ttl_is_checked(llm_simulator: Simulator) -> None:
    from aipowertools.core.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="prompt_cache_ttl_s"):
        SimModel("x", prompt_cache_ttl_s=0)
    llm_simulator.add_model(SimModel("no-cache", reply="ok", prompt_caching=False))
    with openai.OpenAI(base_url=llm_simulator.base_url(), api_key="k", max_retries=0) as client:
        for _ in range(2):
            reply = client.chat.completions.create(
                model="no-cache", messages=[{"role": "system", "content": SYSTEM}]
            )
    assert reply.usage is not None
    assert reply.usage.prompt_tokens_details is not None
    assert reply.usage.prompt_tokens_details.cached_tokens == 0

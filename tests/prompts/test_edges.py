"""Edge cases: mixed content, rare policies' paths, odd tools, the cache pool, the layout."""

from __future__ import annotations

from typing import Any

import pytest

from aipowertools.core.errors import ConfigurationError
from aipowertools.prompts import ContextManager, PromptOptimizer, Summarize
from aipowertools.prompts._cache_order import cache_friendly, stable_tools
from aipowertools.prompts._counting import MessageCounter, split_parts
from aipowertools.prompts._messages import text_of
from aipowertools.prompts._scoring import overlap, terms


def test_text_of_reads_parts_tool_results_and_calls() -> None:
    message = {
        "role": "assistant",
        "content": [
            "plain",
            {"type": "text", "text": "part"},
            {"type": "tool_result", "tool_use_id": "t", "content": "result"},
            {"type": "image_url", "image_url": {"url": "u"}},
            7,
        ],
        "tool_calls": [{"function": {"name": "lookup", "arguments": "{}"}}, "odd"],
    }
    assert text_of(message) == "plain\npart\nresult\nlookup\n{}"
    assert overlap({"a"}, frozenset()) == 0.0
    assert terms("The Quick brown fox") == frozenset({"quick", "brown", "fox"})


def test_split_parts_serialises_tool_blocks_and_keeps_media_apart() -> None:
    message = {
        "role": "user",
        "pinned": True,
        "content": [
            {"type": "tool_result", "tool_use_id": "x", "content": "ok"},
            {"type": "image"},
        ],
    }
    text_message, others = split_parts(message)
    assert "pinned" not in text_message
    assert text_message["content"][0]["type"] == "text"
    assert others == [{"type": "image"}]
    assert split_parts({"role": "user", "content": "s"}) == ({"role": "user", "content": "s"}, [])


def test_counter_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    import aipowertools.prompts._counting as counting

    monkeypatch.setattr(counting, "_CACHE_LIMIT", 2)
    manager = ContextManager()
    counter: MessageCounter = manager._counters.get("gpt-4o-mini")
    for i in range(5):
        counter.message({"role": "user", "content": f"m{i}"})
    assert len(counter._cache) <= 2


def test_a_summary_that_never_fits_is_left_out_after_three_rounds() -> None:
    calls: list[int] = []

    def grow(dropped: list[dict[str, Any]]) -> str:
        calls.append(len(dropped))
        return "s" * 100 * len(dropped)  # grows faster than the room it makes

    manager = ContextManager(message_tokens=lambda m: len(str(m["content"])) // 4 + 4)
    history = [{"role": "user", "content": "x" * 100} for _ in range(30)]
    result = manager.prune(history, budget=800, policy=Summarize(grow))
    assert len(calls) == 3
    assert result.summary is None
    assert result.notes == ("the summary did not fit in the room left, so it was left out",)
    assert result.tokens <= 800


async def test_async_summary_rounds_and_a_sync_prune_refusing_a_coroutine() -> None:
    async def grow(dropped: list[dict[str, Any]]) -> str:
        return "s" * 100 * len(dropped)

    manager = ContextManager(message_tokens=lambda m: len(str(m["content"])) // 4 + 4)
    history = [{"role": "user", "content": "x" * 100} for _ in range(30)]
    result = await manager.aprune(history, budget=800, policy=Summarize(grow))
    assert result.summary is None
    assert result.notes


def test_check_counts_max_completion_tokens_and_rejects_bad_policies() -> None:
    manager = ContextManager()
    request = {"messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 4_000}
    warnings = manager.check(request, "ollama/codellama")
    assert [type(w).__name__ for w in warnings] == ["NearWindowWarning"]
    with pytest.raises(ConfigurationError, match="policy"):
        manager.prune([{"role": "user", "content": "x"}], "gpt-4o", policy="lifo")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="policy"):
        ContextManager(policy=Summarize(str, then="lifo"))  # type: ignore[arg-type]


def test_stable_tools_accepts_anthropic_shapes_and_layout_edge_cases() -> None:
    tools = [{"name": "b", "input_schema": {}}, {"name": "a", "input_schema": {}}]
    assert [t["name"] for t in stable_tools(tools)] == ["a", "b"]
    # a pinned system message is left as it is; a message with no content gets a breakpoint
    messages = [
        {"role": "system", "content": "Today is Monday", "pinned": True},
        {"role": "system", "content": None},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "u"}}]},
    ]
    out, notes = cache_friendly(messages, provider="anthropic", skip=[0])
    assert out[0]["content"] == "Today is Monday"
    assert out[1]["content"][0]["cache_control"] == {"type": "ephemeral"}
    assert "cache_control" not in out[2]["content"][0]  # no text part to mark
    assert notes == ["added 2 cache_control breakpoint(s)"]
    only_user = cache_friendly([{"role": "user", "content": "q"}], provider="anthropic")[0]
    assert only_user[0]["content"][0]["cache_control"] == {"type": "ephemeral"}


def test_optimizer_messages_without_content_and_prune_keeping_pins() -> None:
    optimizer = PromptOptimizer(model="ollama/codellama")
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "Rules.", "pinned": True},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "1", "content": "done"},
    ]
    messages += [{"role": "user", "content": f"turn {i} " + "word " * 300} for i in range(20)]
    result = optimizer.optimize_for_model(messages, max_output=100)
    assert result.prompt[0] == {"role": "system", "content": "Rules."}
    assert result.report.tokens_after <= 4_096 - 100
    compressed = optimizer.compress([*messages[:3], {"role": "user", "content": "q"}], 10_000)
    assert not compressed.report.lossy


def test_a_pass_that_would_add_tokens_is_undone(monkeypatch: pytest.MonkeyPatch) -> None:
    optimizer = PromptOptimizer(model="gpt-4o-mini")
    counter = optimizer.manager._counters.get("gpt-4o-mini")
    # a tokenizer for which shorter text costs more (BPE can do this to a run of spaces)
    monkeypatch.setattr(counter, "text", lambda text: (10_000 - len(text), False))
    result = optimizer.optimize_for_cost([{"role": "user", "content": "a   b"}])
    assert result.prompt == [{"role": "user", "content": "a   b"}]
    assert [c.kind for c in result.report.changes] == ["kept as is (the passes would add tokens)"]

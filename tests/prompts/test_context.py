"""ContextManager: counting, room, pruning policies, priorities, warnings, bad input."""

from __future__ import annotations

import math
import pickle
from typing import Any

import pytest

from aipowertools.core import ModelCatalog, count_tokens
from aipowertools.core.errors import (
    ConfigurationError,
    ContextWindowExceededError,
    UnknownModelError,
)
from aipowertools.prompts import (
    ContextManager,
    ContextOverflowError,
    MessageTooLargeWarning,
    NearWindowWarning,
    OutputSqueezedWarning,
    OverWindowWarning,
    Summarize,
    part_tokens,
)


def turns(n: int, words: int = 50) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(n):
        role = "user" if i % 2 == 0 else "assistant"
        out.append({"role": role, "content": f"turn {i} " + "alpha beta " * words})
    return out


@pytest.fixture(scope="module")
def manager() -> ContextManager:
    return ContextManager()


def test_estimate_tokens_matches_core_and_says_whether_exact(manager: ContextManager) -> None:
    history = [{"role": "system", "content": "Be brief."}, *turns(6)]
    counted = manager.estimate_tokens(history, "gpt-4o")
    assert counted == count_tokens(history, "gpt-4o")
    assert counted.estimated is False
    assert manager.estimate_tokens(history, "claude-sonnet").estimated is True
    assert manager.estimate_tokens("hello world", "gpt-4o-mini") == (2, False)


def test_unknown_model_is_the_catalogs_typed_error_with_close_names(
    manager: ContextManager,
) -> None:
    with pytest.raises(UnknownModelError) as caught:
        manager.prune(turns(2), "gpt-4o-mimi")
    assert "gpt-4o-mini" in caught.value.suggestions
    with pytest.raises(UnknownModelError):
        manager.estimate_tokens("x", "no-such-model")


def test_available_window_nets_output_and_messages(manager: ContextManager) -> None:
    # gpt-4o: 128,000 window, 16,384 max output -> the default reservation is 4,096
    assert manager.available_window("gpt-4o") == 128_000 - 4_096
    assert manager.available_window("gpt-4o", max_output=1_000) == 127_000
    used = manager.estimate_tokens(turns(3), "gpt-4o").tokens
    assert manager.available_window("gpt-4o", turns(3), max_output=1_000) == 127_000 - used
    # a small window: the reservation is capped at a quarter of it
    assert manager.available_window("ollama/codellama") == 4_096 - 1_024
    assert ContextManager(max_output=10).available_window("ollama/codellama") == 4_086


def test_prune_oldest_keeps_system_pinned_last_turn_and_fits(manager: ContextManager) -> None:
    history = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "remember: the code word is heron", "pinned": True},
        *turns(40, words=60),
        {"role": "user", "content": "what is the code word?"},
    ]
    result = manager.prune(history, "ollama/codellama", max_output=1_000)
    assert result.pruned
    assert result.tokens <= 4_096 - 1_000 == result.available
    assert result.messages[0]["content"] == "You are terse."
    assert result.messages[1] == {"role": "user", "content": "remember: the code word is heron"}
    assert result.messages[-1]["content"] == "what is the code word?"
    # oldest first: what is left of the history is its most recent, contiguous part
    assert list(result.dropped) == list(range(2, 2 + len(result.dropped)))
    assert dict(result.kept) == {0: "system message", 1: "pinned", 42: "last user turn"}
    assert count_tokens(result.messages, "ollama/codellama").tokens == result.tokens
    assert result.estimated  # not an OpenAI model


def test_prune_returns_everything_when_it_fits(manager: ContextManager) -> None:
    history = [{"role": "user", "content": "hi", "pinned": True}]
    result = manager.prune(history, "gpt-4o")
    assert not result.pruned
    assert result.messages == [{"role": "user", "content": "hi"}]
    assert history[0]["pinned"] is True  # the input is not changed


def test_prune_never_splits_a_tool_call_from_its_results() -> None:
    big = "lorem ipsum " * 200
    history = [
        {"role": "user", "content": "weather in paris and rome?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "w", "arguments": "{}"}},
                {"id": "b", "type": "function", "function": {"name": "w", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "a", "content": "sunny"},
        {"role": "tool", "tool_call_id": "b", "content": big},
        {"role": "assistant", "content": "Paris is sunny, Rome " + big},
        {"role": "user", "content": "and tomorrow?"},
    ]
    manager = ContextManager(message_tokens=lambda m: len(str(m.get("content"))) // 4 + 4)
    result = manager.prune(history, budget=1_000)
    # the call and both results go together, never the call without a result
    assert result.dropped in ((1, 2, 3), (0, 1, 2, 3))
    assert all(m["role"] != "tool" for m in result.messages)
    assert result.estimated


def test_an_agent_step_after_the_last_user_turn_is_kept() -> None:
    history = [
        *turns(10, words=100),
        {"role": "user", "content": "look it up"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "x", "type": "function", "function": {"name": "f"}}],
        },
        {"role": "tool", "tool_call_id": "x", "content": "found"},
    ]
    manager = ContextManager(message_tokens=lambda m: len(str(m.get("content"))) // 4 + 4)
    result = manager.prune(history, budget=60)
    assert [m["role"] for m in result.messages] == ["user", "assistant", "tool"]
    assert dict(result.kept) == {10: "last user turn", 11: "unanswered tool exchange"}


def test_anthropic_tool_use_blocks_and_legacy_results_stay_with_their_calls() -> None:
    history = [
        {"role": "user", "content": "q1 " * 50},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "tu1", "name": "f", "input": {}}],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "tu1", "content": "r " * 50}],
        },
        {"role": "assistant", "content": None, "tool_calls": [{"function": {"name": "g"}}]},
        {"role": "tool", "content": "legacy result without an id"},
        {"role": "tool", "content": "orphan"},
        {"role": "assistant", "content": "done"},
        {"role": "user", "content": "thanks"},
    ]
    manager = ContextManager(message_tokens=lambda m: 10)
    result = manager.prune(history, budget=25)
    assert result.dropped == (0, 1, 2, 3, 4, 5)
    # the tool_result user message is not the "last user turn"
    assert dict(result.kept) == {7: "last user turn"}


def test_no_user_message_keeps_the_newest_turn() -> None:
    history = [{"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}]
    result = ContextManager(message_tokens=lambda m: 10).prune(history, budget=10)
    assert result.messages == [{"role": "assistant", "content": "b"}]


def test_relevance_policy_drops_what_the_last_turn_does_not_need() -> None:
    history = [
        {"role": "user", "content": "tell me about the invoice for order 42"},
        {"role": "assistant", "content": "the invoice for order 42 was paid"},
        {"role": "user", "content": "what about shipping rates to canada?"},
        {"role": "assistant", "content": "shipping rates to canada start at ten dollars"},
        {"role": "user", "content": "unrelated chatter about the weather"},
        {"role": "assistant", "content": "it is sunny"},
        {"role": "user", "content": "so was the invoice for order 42 refunded?"},
    ]
    manager = ContextManager(message_tokens=lambda m: 10, policy="relevance")
    result = manager.prune(history, budget=30)
    kept = [m["content"] for m in result.messages]
    assert kept == [history[0]["content"], history[1]["content"], history[6]["content"]]
    oldest = manager.prune(history, budget=30, policy="oldest")
    assert [m["content"] for m in oldest.messages] == [h["content"] for h in history[4:]]


def test_prioritize_documents_its_score(manager: ContextManager) -> None:
    history = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "invoice refund please"},
        {"role": "assistant", "content": "weather is nice"},
        {"role": "user", "content": "invoice refund status?"},
    ]
    rows = manager.prioritize(history, "gpt-4o")
    assert [r.index for r in rows] == [3, 0, 1, 2]
    assert math.isinf(rows[0].score)
    assert rows[0].reason == "last user turn"
    # message 1: relevance 2/3 (invoice, refund of invoice/refund/status), recency 1/3
    assert rows[2].score == pytest.approx(0.6 * 2 / 3 + 0.4 * 1 / 3)
    assert rows[2].reason == "relevance 0.67, recency 0.33"
    assert rows[3].score == pytest.approx(0.4 * 2 / 3)
    assert rows[2].tokens == manager.estimate_tokens([history[1]], "gpt-4o").tokens - 3


def test_summarize_policy_puts_a_summary_where_the_history_was() -> None:
    seen: list[list[dict[str, Any]]] = []

    def summarize(dropped: list[dict[str, Any]]) -> str:
        seen.append(dropped)
        return f"{len(dropped)} earlier turns"

    manager = ContextManager(message_tokens=lambda m: len(str(m["content"])) // 4 + 4)
    history = [{"role": "system", "content": "sys"}, *turns(10, words=20), turns(1)[0]]
    result = manager.prune(history, budget=200, policy=Summarize(summarize))
    assert result.summary == {
        "role": "system",
        "content": f"Summary of the earlier conversation: {len(seen[0])} earlier turns",
    }
    assert result.messages[1] == result.summary
    assert result.tokens <= 200
    assert len(seen[0]) == len(result.dropped)
    tiny = manager.prune(history, budget=160, policy=Summarize(lambda d: "x" * 4_000))
    assert tiny.summary is None
    assert "did not fit" in tiny.notes[0]
    assert tiny.tokens <= 160
    untouched = manager.prune(turns(2), budget=10_000, policy=Summarize(summarize))
    assert untouched.summary is None
    assert len(seen) == 1


async def test_aprune_awaits_an_async_summarizer() -> None:
    async def summarize(dropped: list[dict[str, Any]]) -> str:
        return "async summary"

    manager = ContextManager(message_tokens=lambda m: 10)
    policy = Summarize(summarize, then="relevance", role="user", prefix="")
    result = await manager.aprune(turns(9), budget=40, policy=policy)
    assert result.summary == {"role": "user", "content": "async summary"}
    with pytest.raises(ConfigurationError, match="aprune"):
        manager.prune(turns(9), budget=40, policy=policy)
    plain = await manager.aprune(turns(9), budget=40)
    assert plain.summary is None
    assert plain.pruned
    sync = await manager.aprune(turns(9), budget=40, policy=Summarize(lambda d: "s"))
    assert sync.summary is not None


def test_no_fit_says_how_many_tokens_the_kept_messages_need(manager: ContextManager) -> None:
    history = [{"role": "system", "content": "rules " * 3_500}, {"role": "user", "content": "hi"}]
    with pytest.raises(ContextOverflowError) as caught:
        manager.prune(history, "ollama/codellama")
    error = caught.value
    assert isinstance(error, ContextWindowExceededError)
    needed = manager.estimate_tokens(history, "ollama/codellama").tokens
    assert error.needed_tokens == needed
    assert error.available_tokens == 4_096 - 1_024
    assert f"need {needed} tokens" in str(error)
    assert "system message (message 0" in str(error)
    assert error.kept == ((0, "system message"), (1, "last user turn"))
    again = pickle.loads(pickle.dumps(error))
    assert (again.needed_tokens, again.kept, str(again)) == (needed, error.kept, str(error))
    small = ContextManager(message_tokens=lambda m: 50)
    with pytest.raises(ContextOverflowError, match="the 10-token budget"):
        small.prune(turns(3), budget=10)


def test_non_string_parts_are_kept_untouched_and_counted(manager: ContextManager) -> None:
    image = {"type": "image_url", "image_url": {"url": "https://example.invalid/cat.png"}}
    audio = {"type": "input_audio", "input_audio": {"data": "A" * 64_000, "format": "wav"}}
    message = {"role": "user", "content": [{"type": "text", "text": "what is this?"}, image, audio]}
    text_only = {"role": "user", "content": [{"type": "text", "text": "what is this?"}]}
    base = manager.estimate_tokens([text_only], "gpt-4o").tokens
    counted = manager.estimate_tokens([message], "gpt-4o")
    assert counted.tokens == base + 765 + 15  # 4 tiles + 85; 1.5 s of 16 kHz audio at 10/s
    assert counted.estimated
    claude = manager.estimate_tokens([message], "claude-sonnet").tokens
    assert claude - manager.estimate_tokens([text_only], "claude-sonnet").tokens == 1_600 + 15
    result = manager.prune([*turns(4), message], "gpt-4o")
    assert result.messages[-1]["content"][1] is image  # kept untouched
    assert result.messages[-1]["content"][2] is audio


def test_part_tokens_follow_each_providers_rule() -> None:
    low = {"type": "image_url", "image_url": {"url": "u", "detail": "low"}}
    assert part_tokens(low, "openai") == 85
    sized = {"type": "image_url", "image_url": {"url": "u"}, "width": 2048, "height": 4096}
    assert part_tokens(sized, "openai") == 170 * 6 + 85  # 768 x 1536 after resizing
    assert part_tokens({**sized, "width": 300, "height": 300}, "anthropic") == 120
    assert part_tokens(sized, "anthropic") == 1_600
    assert part_tokens(sized, "gemini") == 258
    assert part_tokens({"type": "input_audio", "duration_s": 2}, "gemini") == 64
    assert part_tokens({"type": "file", "file": {"id": "f"}}, "openai") == 9  # JSON length / 4


def test_check_returns_typed_warnings(manager: ContextManager) -> None:
    model = "ollama/codellama"  # 4,096 window, 1,024 reserved by default
    assert manager.check([{"role": "user", "content": "hi"}], model) == []
    near = manager.check({"messages": turns(40, words=40), "max_tokens": 300}, model)
    kinds = [type(w) for w in near]
    assert kinds == [NearWindowWarning], near
    squeezed = manager.check(turns(30, words=50), model)
    assert [type(w) for w in squeezed] == [OutputSqueezedWarning]
    assert squeezed[0].limit == 4_096 - 1_024
    over = manager.check([{"role": "user", "content": "word " * 5_000}], model)
    assert [type(w) for w in over] == [OverWindowWarning, MessageTooLargeWarning]
    assert over[1].index == 0
    assert over[1].tokens > 4_096
    assert "message 0" in str(over[1])
    tools = [{"type": "function", "function": {"name": "f", "description": "d " * 3_500}}]
    with_tools = manager.check(
        {"messages": [{"role": "user", "content": "hi"}], "tools": tools}, model
    )
    assert [type(w) for w in with_tools] == [OutputSqueezedWarning]


def test_bad_arguments_are_configuration_errors(manager: ContextManager) -> None:
    with pytest.raises(ConfigurationError, match="policy"):
        ContextManager(policy="newest")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="callable"):
        ContextManager(policy=Summarize("nope"))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="max_output"):
        ContextManager(max_output=-1)
    with pytest.raises(ConfigurationError, match="max_output"):
        manager.prune(turns(2), "gpt-4o", max_output=True)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="budget"):
        manager.prune(turns(2), "gpt-4o", budget=-5)
    with pytest.raises(ConfigurationError, match="needs a model"):
        manager.prune(turns(2))
    with pytest.raises(ConfigurationError, match="model is required"):
        manager.prune(turns(2), budget=100)
    with pytest.raises(ConfigurationError, match="'role'"):
        manager.prune([{"content": "x"}], "gpt-4o")
    catalog = ModelCatalog()
    catalog.add(id="windowless", provider="openai", litellm_model="gpt-4o")
    with pytest.raises(ConfigurationError, match="no context window"):
        ContextManager(catalog=catalog).available_window("windowless")


def test_framework_messages_and_strings_are_accepted(manager: ContextManager) -> None:
    class LCMessage:  # the shape of a LangChain message, without importing LangChain
        type = "human"
        content = "hello there"

    assert manager.estimate_tokens([LCMessage()], "gpt-4o") == manager.estimate_tokens(
        [{"role": "user", "content": "hello there"}], "gpt-4o"
    )
    assert manager.prune("just a string", "gpt-4o").messages == [
        {"role": "user", "content": "just a string"}
    ]
    single = manager.prune({"role": "user", "content": "one"}, "gpt-4o")
    assert single.messages == [{"role": "user", "content": "one"}]

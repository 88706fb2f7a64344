"""PromptOptimizer: cost, latency, quality, model, compress, cache layout, bad input."""

from __future__ import annotations

import re
from typing import Any

import pytest

from aipowertools.core import count_tokens
from aipowertools.core.errors import ConfigurationError, UnknownModelError
from aipowertools.prompts import ContextOverflowError, PromptOptimizer

FACTS = [
    "The warehouse in Lyon ships orders within 2 days.",
    "Refunds are paid to the original card within 14 days.",
    "Customers in Canada pay a flat shipping fee of 12 dollars.",
    "The support desk answers between 9 and 17 on weekdays.",
    "Gift cards cannot be exchanged for cash under any circumstances.",
    "Orders above 80 dollars ship for free inside the European Union.",
]
FILLER = [
    "It is worth noting that this is generally the case for most situations.",
    "As mentioned before, there are many things to consider here in general.",
    "In other words, the details may vary depending on a number of factors.",
]


def rag_prompt(question: str = "How long do refunds take?") -> list[dict[str, Any]]:
    chunks = []
    for i in range(6):  # overlapping retrieved chunks: each repeats the previous one's tail
        window = FACTS[i : i + 3] + FILLER[i % 3 : i % 3 + 1]
        chunks.append(" ".join(window))
    context = "\n\n".join(chunks)
    return [
        {"role": "system", "content": "Answer from the context only.   Be   brief."},
        {"role": "user", "content": f"Context:\n\n{context}\n\n{question}"},
    ]


@pytest.fixture(scope="module")
def optimizer() -> PromptOptimizer:
    return PromptOptimizer()


def test_optimize_for_cost_is_lossless_and_reports(optimizer: PromptOptimizer) -> None:
    pinned = {"role": "user", "content": "keep   these    spaces", "pinned": True}
    image = {"type": "image_url", "image_url": {"url": "https://example.invalid/a.png"}}
    messages = [
        *rag_prompt(),
        pinned,
        {"role": "user", "content": [image, {"type": "text", "text": "a  b"}]},
    ]
    result = optimizer.optimize_for_cost(messages, "gpt-4o-mini")
    report = result.report
    assert (
        report.tokens_before
        == count_tokens(
            [{k: v for k, v in m.items() if k != "pinned"} for m in messages[:3]], "gpt-4o-mini"
        ).tokens
        + optimizer.manager.estimate_tokens([messages[3]], "gpt-4o-mini").tokens
        - 3
    )
    assert report.tokens_after < report.tokens_before
    assert report.saved_tokens == report.tokens_before - report.tokens_after
    assert 0 < report.saved_share < 1
    assert not report.lossy
    assert report.estimated  # the image is counted by rule
    kinds = {c.kind for c in report.changes}
    assert {"whitespace", "exact duplicate sentence"} <= kinds
    context = result.prompt[1]["content"]
    for fact in FACTS:
        assert context.count(fact) == 1  # every fact once
    assert result.prompt[0]["content"] == "Answer from the context only. Be brief."
    assert result.prompt[2] == {"role": "user", "content": "keep   these    spaces"}
    assert result.prompt[3]["content"][0] is image
    assert result.prompt[3]["content"][1]["text"] == "a b"
    assert optimizer.optimize_for_cost("", "gpt-4o-mini").report.saved_share == 0.0


def test_boilerplate_is_stripped_once_registered() -> None:
    optimizer = PromptOptimizer(boilerplate=["CONFIDENTIAL."], model="gpt-4o-mini")
    optimizer.register_boilerplate(re.compile(r"\[page \d+\]"))
    result = optimizer.optimize_for_cost("CONFIDENTIAL. Sales grew [page 3] by 4%.")
    assert result.prompt == " Sales grew by 4%."
    assert [c.kind for c in result.report.changes] == ["boilerplate", "whitespace"]


def test_compress_meets_the_target_by_the_models_counter(optimizer: PromptOptimizer) -> None:
    messages = rag_prompt()
    target = optimizer.optimize_for_cost(messages, "gpt-4o").report.tokens_after - 40
    result = optimizer.compress(messages, target, "gpt-4o")
    assert result.report.lossy
    assert result.report.tokens_after == count_tokens(result.prompt, "gpt-4o").tokens <= target
    assert result.prompt[1]["content"].endswith("How long do refunds take?")  # the question
    assert "Refunds are paid to the original card within 14 days." in result.prompt[1]["content"]
    assert any(c.kind == "extractive" for c in result.report.changes)
    text = " ".join(FACTS * 3) + ' The code is `x = 1` and he said "stop".'
    short = optimizer.compress(text, 40, "gpt-4o-mini")
    assert count_tokens(short.prompt, "gpt-4o-mini").tokens <= 40
    easy = optimizer.compress("Already short.", 100, "gpt-4o-mini")
    assert easy.prompt == "Already short."
    assert not easy.report.lossy


def test_compress_never_touches_pinned_or_tool_content_and_says_what_is_needed(
    optimizer: PromptOptimizer,
) -> None:
    pinned = {"role": "system", "content": " ".join(FACTS), "pinned": True}
    tool = {"role": "tool", "tool_call_id": "1", "content": " ".join(FACTS)}
    messages = [
        pinned,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        tool,
        {"role": "user", "content": "Which facts?"},
    ]
    with pytest.raises(ContextOverflowError) as caught:
        optimizer.compress(messages, 20, "gpt-4o-mini")
    needed = caught.value.needed_tokens
    assert (
        needed
        == count_tokens(
            [{k: v for k, v in m.items() if k != "pinned"} for m in messages], "gpt-4o-mini"
        ).tokens
    )
    assert caught.value.available_tokens == 20
    assert f"{needed} tokens" in str(caught.value)
    with pytest.raises(ContextOverflowError, match="code and quoted"):
        optimizer.compress("```\n" + "code " * 200 + "\n```", 10, "gpt-4o-mini")
    with pytest.raises(ConfigurationError, match="target_tokens"):
        optimizer.compress("x", -1, "gpt-4o-mini")


def test_aggressive_level_compresses_to_the_ratio(optimizer: PromptOptimizer) -> None:
    messages = rag_prompt()
    lossless = optimizer.optimize_for_cost(messages, "gpt-4o-mini").report.tokens_after
    result = optimizer.optimize_for_cost(messages, "gpt-4o-mini", level="aggressive")
    assert result.report.tokens_after <= int(lossless * 0.7)
    assert result.report.lossy
    targeted = optimizer.optimize_for_cost(messages, "gpt-4o-mini", target_tokens=lossless - 30)
    assert targeted.report.tokens_after <= lossless - 30
    with pytest.raises(ConfigurationError, match="level"):
        optimizer.optimize_for_cost(messages, "gpt-4o-mini", level="max")  # type: ignore[arg-type]


def test_optimize_for_quality_keeps_near_duplicates_and_fits_by_relevance(
    optimizer: PromptOptimizer,
) -> None:
    near = (
        "The refund policy allows returns within 30 days of purchase for all items. "
        "The refund policy allows returns within 30 days of purchase, for all items."
    )
    assert optimizer.optimize_for_quality(near, "gpt-4o-mini").prompt == near
    assert optimizer.optimize_for_cost(near, "gpt-4o-mini").prompt != near
    history = []
    for i in range(40):
        topic = "refund invoice" if i == 3 else "weather chatter"
        history += [
            {"role": "user", "content": f"question {i} about {topic} " + "filler " * 60},
            {"role": "assistant", "content": f"answer {i} " + "filler " * 60},
        ]
    history.append({"role": "user", "content": "so what about my refund invoice?"})
    result = optimizer.optimize_for_quality(history, "ollama/codellama", max_output=500)
    contents = [m["content"] for m in result.prompt]
    assert any(c.startswith("question 3 about refund invoice") for c in contents)
    assert contents[-1] == "so what about my refund invoice?"
    assert any(c.kind == "prune" for c in result.report.changes)
    assert result.report.tokens_after <= 4_096 - 500


def test_optimize_for_model_lays_out_for_the_providers_cache(optimizer: PromptOptimizer) -> None:
    system = (
        "Current date: 2025-01-02 10:00 UTC\nYou are a support bot.\n" + "Rule one applies. " * 200
    )
    messages = [
        {"role": "system", "content": system},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "refund?"},
    ]
    tools = [
        {"type": "function", "function": {"parameters": {"b": 1, "a": 2}, "name": "zeta"}},
        {"type": "function", "function": {"name": "alpha"}},
    ]
    claude = optimizer.optimize_for_model(messages, "claude-sonnet", tools=tools)
    first = claude.prompt[0]["content"]
    assert first[0]["cache_control"] == {"type": "ephemeral"}
    assert "2025-01-02" not in first[0]["text"]
    assert claude.prompt[-1]["content"] == [
        {"type": "text", "text": "refund?", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "Current date: 2025-01-02 10:00 UTC"},
    ]
    assert claude.tools is not None
    assert [t["function"]["name"] for t in claude.tools] == ["alpha", "zeta"]
    assert list(claude.tools[1]["function"]) == ["name", "parameters"]
    assert list(claude.tools[1]["function"]["parameters"]) == ["a", "b"]
    assert "added 2 cache_control breakpoint(s)" in claude.report.notes
    gpt = optimizer.optimize_for_latency(messages, "gpt-4o")
    assert isinstance(gpt.prompt[0]["content"], str)
    assert gpt.prompt[-1]["content"] == "refund?\n\nCurrent date: 2025-01-02 10:00 UTC"
    assert optimizer.optimize_for_latency("a  b", "gpt-4o").prompt == "a b"
    assert optimizer.optimize_for_model("a  b", "gpt-4o").tools is None


def test_order_for_cache_handles_parts_missing_users_and_custom_patterns() -> None:
    optimizer = PromptOptimizer(volatile=[re.compile(r"^Ticket #\d+")], model="claude-haiku")
    parts = [
        {"role": "system", "content": "Ticket #42\nStatic rules."},
        {"role": "user", "content": [{"type": "text", "text": "question"}]},
    ]
    result = optimizer.order_for_cache(parts)
    assert result.prompt[0]["content"][0]["text"] == "Static rules."
    assert result.prompt[1]["content"] == [
        {"type": "text", "text": "question", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "Ticket #42"},
    ]
    only_system = optimizer.order_for_cache(
        [{"role": "system", "content": "Today is Monday\nRules."}]
    )
    assert only_system.prompt[-1] == {"role": "system", "content": "Today is Monday"}
    plain = optimizer.order_for_cache([{"role": "user", "content": "q"}], "gpt-4o", tools=[])
    assert plain.prompt == [{"role": "user", "content": "q"}]
    assert plain.tools == []
    assert plain.report.notes == ()
    pinned = optimizer.order_for_cache(
        [
            {"role": "system", "content": "Today is Monday", "pinned": True},
            {"role": "user", "content": "q"},
        ],
        "gpt-4o",
    )
    assert pinned.prompt[0] == {"role": "system", "content": "Today is Monday"}


def test_bad_input(optimizer: PromptOptimizer) -> None:
    with pytest.raises(UnknownModelError) as caught:
        optimizer.optimize_for_cost("x", "claude-sonet")
    assert "claude-sonnet" in caught.value.suggestions
    with pytest.raises(ConfigurationError, match="name a model"):
        optimizer.optimize_for_cost("x")
    with pytest.raises(ConfigurationError, match="near_duplicate"):
        PromptOptimizer(near_duplicate=0)
    with pytest.raises(ConfigurationError, match="aggressive_ratio"):
        PromptOptimizer(aggressive_ratio=1.0)
    with pytest.raises(ConfigurationError, match="pattern"):
        PromptOptimizer(boilerplate=[""])

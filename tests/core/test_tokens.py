from __future__ import annotations

from types import SimpleNamespace

import pytest

from aipowertools.core import ModelCatalog, TokenCount, count_tokens
from aipowertools.core._tokens import estimate_tokens, normalize_messages
from aipowertools.core.errors import ConfigurationError

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "How many tokens is this sentence, roughly?"},
]


def test_openai_models_count_exactly() -> None:
    assert count_tokens("Hello, world", "gpt-4o-mini") == TokenCount(3, False)
    counted = count_tokens(MESSAGES, "gpt-4o")
    assert not counted.estimated
    assert 15 <= counted.tokens <= 40


@pytest.mark.parametrize(
    "model", ["claude-sonnet", "gemini-flash", "mistral-small", "ollama/llama3", "llamacpp/llama3"]
)
def test_other_providers_count_offline_and_say_it_is_approximate(model: str) -> None:
    counted = count_tokens(MESSAGES, model)
    assert counted.estimated
    assert 15 <= counted.tokens <= 40


def test_unknown_models_use_documented_estimate() -> None:
    assert count_tokens("x" * 40, "some-private-model") == TokenCount(10, True)
    # 3 priming + per message (4 + ceil(chars / 4))
    expected = 3 + (4 + 4) + (4 + 11)
    assert count_tokens(MESSAGES, "some-private-model") == TokenCount(expected, True)


def test_framework_message_objects_are_read_without_importing_frameworks() -> None:
    from langchain_core.messages import HumanMessage, SystemMessage
    from llama_index.core.base.llms.types import ChatMessage

    lc = [
        SystemMessage("You are terse."),
        HumanMessage("How many tokens is this sentence, roughly?"),
    ]
    li = [
        ChatMessage(role="system", content="You are terse."),
        ChatMessage(role="user", content="How many tokens is this sentence, roughly?"),
    ]
    expected = count_tokens(MESSAGES, "gpt-4o")
    assert count_tokens(lc, "gpt-4o") == expected
    assert count_tokens(li, "gpt-4o") == expected
    assert normalize_messages(lc) == MESSAGES
    assert normalize_messages(li) == MESSAGES


def test_content_parts_and_single_message() -> None:
    parts = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "abcd" * 10},
                "efgh",
                {"type": "image_url", "image_url": {"url": "x"}},
            ],
        }
    ]
    assert estimate_tokens(parts) == 3 + 4 + 12  # 44 text chars + newline + "efgh"
    assert normalize_messages({"role": "user", "content": "hi"}) == [
        {"role": "user", "content": "hi"}
    ]
    odd = SimpleNamespace(type="custom", content=None)
    assert normalize_messages([odd]) == [{"role": "custom", "content": ""}]
    assert normalize_messages([SimpleNamespace(role=None, content=5)])[0]["content"] == "5"
    with pytest.raises(ConfigurationError, match="cannot read a chat message"):
        normalize_messages([object()])


def test_custom_catalog() -> None:
    catalog = ModelCatalog(model_map={}, curated=False)
    catalog.add(id="house-model", provider="openai", litellm_model="gpt-4o")
    assert count_tokens("Hello, world", "house-model", catalog=catalog) == TokenCount(3, False)

"""Provider cassettes (built from documented example responses) replayed through litellm.

Set ``AIPOWERTOOLS_CASSETTE_RECORD`` to a vcrpy record mode (``once``, ``new_episodes``,
``all``) and the providers' API keys to re-record against the real APIs; the default,
``none``, replays only and fails on any request not in a cassette.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import vcr

pytestmark = pytest.mark.filterwarnings("ignore:Item .* is using the .ReadOnly. qualifier")

CASSETTES = Path(__file__).resolve().parents[1] / "cassettes"
RECORD_MODE = os.environ.get("AIPOWERTOOLS_CASSETTE_RECORD", "none")
RECORDING = RECORD_MODE != "none"
MESSAGES = [{"role": "user", "content": "Hello!"}]

replayer = vcr.VCR(
    cassette_library_dir=str(CASSETTES),
    record_mode=RECORD_MODE,
    match_on=["method", "scheme", "host", "port", "path"],
    filter_headers=["authorization", "x-api-key", "api-key", "x-goog-api-key", "cookie"],
    filter_query_parameters=["key"],
    decode_compressed_response=True,
)


def _key(name: str) -> str:
    return os.environ.get(name, "sk-replay") if RECORDING else "sk-replay"


def _complete(litellm: ModuleType, cassette: str, **kwargs: Any) -> Any:
    with replayer.use_cassette(f"{cassette}.yaml") as tape:
        response = litellm.completion(messages=MESSAGES, num_retries=0, **kwargs)
        if kwargs.get("stream"):
            response = list(response)
    if not RECORDING:
        assert tape.play_count == 1
    return response


def test_every_cassette_names_its_source_and_holds_no_credentials() -> None:
    files = sorted(CASSETTES.glob("*.yaml"))
    assert len(files) == 8
    for path in files:
        text = path.read_text()
        assert text.startswith("# Source: http"), path.name
        for secret in ("Authorization", "x-api-key", "sk-", "Bearer"):
            assert secret not in text, f"{path.name} holds {secret!r}"


def test_openai_chat(litellm: ModuleType) -> None:
    r = _complete(litellm, "openai_chat", model="openai/gpt-4.1", api_key=_key("OPENAI_API_KEY"))
    assert r.choices[0].message.content == "Hello! How can I assist you today?"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (19, 10, 29)


def test_openai_stream_usage_chunk(litellm: ModuleType) -> None:
    chunks = _complete(
        litellm,
        "openai_chat_stream",
        model="openai/gpt-4o-mini",
        stream=True,
        stream_options={"include_usage": True},
        api_key=_key("OPENAI_API_KEY"),
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello! How can I help?"
    usage = next(c.usage for c in reversed(chunks) if getattr(c, "usage", None))
    assert (usage.prompt_tokens, usage.completion_tokens) == (9, 7)


def test_openai_tool_call(litellm: ModuleType) -> None:
    r = _complete(litellm, "openai_tools", model="openai/gpt-4.1", api_key=_key("OPENAI_API_KEY"))
    call = r.choices[0].message.tool_calls[0]
    assert call.function.name == "get_current_weather"
    assert r.choices[0].finish_reason == "tool_calls"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (82, 17)


def test_openai_cached_and_reasoning_tokens(litellm: ModuleType) -> None:
    r = _complete(
        litellm,
        "openai_cached_reasoning",
        model="openai/o3-mini",
        api_key=_key("OPENAI_API_KEY"),
    )
    assert r.usage.prompt_tokens_details.cached_tokens == 1920
    assert r.usage.completion_tokens_details.reasoning_tokens == 1024
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (2006, 1324)


def test_anthropic_cache_tokens(litellm: ModuleType) -> None:
    r = _complete(
        litellm,
        "anthropic_messages_cache",
        model="anthropic/claude-3-5-sonnet-20241022",
        api_key=_key("ANTHROPIC_API_KEY"),
    )
    assert r.choices[0].message.content == "Hi! My name is Claude."
    # litellm's prompt_tokens = input + cache read + cache creation
    assert r.usage.prompt_tokens == 21 + 188086
    assert r.usage.completion_tokens == 393
    assert r.usage.cache_creation_input_tokens == 188086
    assert r.usage.prompt_tokens_details.cached_tokens == 0


def test_gemini_usage_metadata(litellm: ModuleType) -> None:
    r = _complete(
        litellm,
        "gemini_generate_content",
        model="gemini/gemini-2.0-flash",
        api_key=_key("GEMINI_API_KEY"),
    )
    assert r.choices[0].message.content == "Hello there! How can I help you today?"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (2, 11, 13)


def test_mistral_chat(litellm: ModuleType) -> None:
    r = _complete(
        litellm,
        "mistral_chat",
        model="mistral/mistral-small-latest",
        api_key=_key("MISTRAL_API_KEY"),
    )
    assert r.choices[0].message.content == "Hello! How can I assist you today?"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (16, 34)


def test_ollama_chat(litellm: ModuleType) -> None:
    r = _complete(
        litellm,
        "ollama_chat",
        model="ollama_chat/llama3.2",
        api_base="http://localhost:11434",
    )
    assert r.choices[0].message.content == "Hello! How are you today?"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (26, 298)

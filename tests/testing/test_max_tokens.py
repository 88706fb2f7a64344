"""Generation stops at max_tokens: the reply is cut there and usage never exceeds the cap."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import anthropic
import httpx
import openai
import pytest

from aipowertools.testing import Reply, SimModel, Simulator, ToolCall

MODEL = "gpt-4o-mini"
LONG = (
    "The simulator answers with this rather long reply so that a small max_tokens cap cuts it "
    "somewhere in the middle: a real provider stops generating at the cap, returns the text "
    "it produced so far and bills exactly the capped number of completion tokens."
)
USER: Any = [{"role": "user", "content": "Tell me something long."}]
CAP = 20


def _count(litellm: ModuleType, text: str) -> int:
    return int(litellm.token_counter(model=MODEL, text=text, count_response_tokens=True))


@pytest.fixture
def sim(llm_simulator: Simulator, litellm: ModuleType) -> Simulator:
    assert _count(litellm, LONG) > 2 * CAP  # the reply really is longer than the cap
    llm_simulator.add_model(SimModel(MODEL, reply=LONG))
    return llm_simulator


def _assert_cut(litellm: ModuleType, text: str, completion_tokens: int) -> None:
    assert completion_tokens == CAP
    assert LONG.startswith(text)
    assert len(text) < len(LONG)
    assert _count(litellm, text) == completion_tokens


@pytest.mark.parametrize("param", ["max_tokens", "max_completion_tokens"])
def test_openai_sdk_non_stream_is_cut_at_the_cap(
    sim: Simulator, litellm: ModuleType, param: str
) -> None:
    limit: dict[str, Any] = {param: CAP}
    with openai.OpenAI(base_url=sim.base_url(), api_key="k", max_retries=0) as client:
        out = client.chat.completions.create(
            model=MODEL,
            messages=USER,
            **limit,
        )
    choice = out.choices[0]
    assert choice.finish_reason == "length"
    assert out.usage is not None
    _assert_cut(litellm, choice.message.content or "", out.usage.completion_tokens)
    assert sim.requests[-1].completion_tokens == CAP


def test_openai_sdk_stream_is_cut_at_the_cap(sim: Simulator, litellm: ModuleType) -> None:
    with openai.OpenAI(base_url=sim.base_url(), api_key="k", max_retries=0) as client:
        stream = client.chat.completions.create(
            model=MODEL,
            messages=USER,
            max_tokens=CAP,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finish = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finish == ["length"]
    usage = chunks[-1].usage
    assert usage is not None
    _assert_cut(litellm, text, usage.completion_tokens)


def test_short_reply_under_the_cap_is_whole(sim: Simulator, litellm: ModuleType) -> None:
    with openai.OpenAI(base_url=sim.base_url(), api_key="k", max_retries=0) as client:
        out = client.chat.completions.create(
            model=MODEL,
            messages=USER,
            max_tokens=_count(litellm, LONG),  # exactly enough
        )
    assert out.choices[0].finish_reason == "stop"
    assert out.choices[0].message.content == LONG
    assert out.usage is not None
    assert out.usage.completion_tokens == _count(litellm, LONG)


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_sdk_is_cut_at_the_cap(sim: Simulator, litellm: ModuleType, stream: bool) -> None:
    with anthropic.Anthropic(
        base_url=sim.base_url("anthropic"), api_key="k", max_retries=0
    ) as client:
        message: anthropic.types.Message
        if stream:
            with client.messages.stream(
                model=MODEL,
                max_tokens=CAP,
                messages=USER,
            ) as events:
                message = events.get_final_message()
        else:
            message = client.messages.create(
                model=MODEL,
                max_tokens=CAP,
                messages=USER,
            )
    assert message.stop_reason == "max_tokens"
    (block,) = message.content
    assert block.type == "text"
    _assert_cut(litellm, block.text, message.usage.output_tokens)


@pytest.mark.parametrize("stream", [False, True])
def test_litellm_ollama_chat_num_predict_is_the_cap(
    sim: Simulator, litellm: ModuleType, stream: bool
) -> None:
    kwargs: dict[str, Any] = {
        "model": f"ollama_chat/{MODEL}",
        "api_base": sim.base_url("ollama"),
        "messages": USER,
        "max_tokens": CAP,  # litellm sends it as options.num_predict
        "num_retries": 0,
    }
    if stream:
        chunks = list(
            litellm.completion(**kwargs, stream=True, stream_options={"include_usage": True})
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        finish = [c.choices[0].finish_reason for c in chunks if c.choices]
        assert "length" in finish
        completion_tokens = sim.requests[-1].completion_tokens
    else:
        response = litellm.completion(**kwargs)
        text = response.choices[0].message.content
        assert response.choices[0].finish_reason == "length"
        completion_tokens = response.usage.completion_tokens
    assert sim.requests[-1].flavor == "ollama"
    _assert_cut(litellm, text, completion_tokens)


def test_raw_ollama_and_llamacpp_wire(sim: Simulator, litellm: ModuleType) -> None:
    ollama = httpx.post(
        sim.base_url("ollama") + "/api/chat",
        json={"model": MODEL, "messages": USER, "stream": False, "options": {"num_predict": CAP}},
    ).json()
    assert ollama["done_reason"] == "length"
    _assert_cut(litellm, ollama["message"]["content"], ollama["eval_count"])
    llamacpp = httpx.post(
        sim.base_url("llamacpp") + "/chat/completions",
        json={"model": MODEL, "messages": USER, "max_tokens": CAP},
    ).json()
    assert llamacpp["choices"][0]["finish_reason"] == "length"
    _assert_cut(
        litellm,
        llamacpp["choices"][0]["message"]["content"],
        llamacpp["usage"]["completion_tokens"],
    )


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
        },
    }
]
CALL = ToolCall("lookup", {"query": "a fairly long query string " * 4})


def test_tool_call_over_the_cap_is_dropped_and_the_cap_billed(
    llm_simulator: Simulator, litellm: ModuleType
) -> None:
    llm_simulator.add_model(SimModel(MODEL, reply=Reply(text="Let me look.", tool_calls=[CALL])))
    url = llm_simulator.base_url() + "/chat/completions"
    body = {"model": MODEL, "messages": USER, "tools": TOOLS}
    whole = httpx.post(url, json=body).json()
    assert whole["choices"][0]["finish_reason"] == "tool_calls"
    full = whole["usage"]["completion_tokens"]
    text_tokens = _count(litellm, "Let me look.")
    assert full > text_tokens + 5
    capped = httpx.post(url, json={**body, "max_tokens": text_tokens + 5}).json()
    choice = capped["choices"][0]
    assert choice["finish_reason"] == "length"
    assert choice["message"]["content"] == "Let me look."
    assert "tool_calls" not in choice["message"]  # an unfinished call is no usable call
    assert capped["usage"]["completion_tokens"] == text_tokens + 5
    enough = httpx.post(url, json={**body, "max_tokens": full}).json()
    assert enough["choices"][0]["finish_reason"] == "tool_calls"
    assert enough["usage"]["completion_tokens"] == full
    claude = httpx.post(
        llm_simulator.base_url("anthropic") + "/v1/messages",
        json={
            "model": MODEL,
            "messages": USER,
            "max_tokens": 3,
            "tools": [{"name": "lookup", "input_schema": TOOLS[0]["function"]["parameters"]}],  # type: ignore[index]
        },
    ).json()
    assert claude["stop_reason"] == "max_tokens"
    assert [b["type"] for b in claude["content"]] == ["text"]
    assert claude["usage"]["output_tokens"] == 3
    assert "Let me look.".startswith(claude["content"][0]["text"])


def test_reasoning_tokens_spend_the_cap_first(llm_simulator: Simulator) -> None:
    llm_simulator.add_model(SimModel(MODEL, reply=LONG, reasoning_tokens=50))
    url = llm_simulator.base_url() + "/chat/completions"
    out = httpx.post(url, json={"model": MODEL, "messages": USER, "max_tokens": CAP}).json()
    assert out["choices"][0]["finish_reason"] == "length"
    assert out["choices"][0]["message"]["content"] == ""
    assert out["usage"]["completion_tokens"] == CAP
    assert out["usage"]["completion_tokens_details"]["reasoning_tokens"] == CAP


@pytest.mark.parametrize("model", [MODEL, "claude-3-5-sonnet-20241022", "llama3", "my-model"])
def test_truncate_text_keeps_the_longest_prefix_within_budget(model: str) -> None:
    from aipowertools.testing._request import count_text_tokens, truncate_text

    # Dense words first, then emoji that cost several tokens each: the first guess from the
    # average characters per token falls short and the search has to move right.
    text = "word " * 30 + "\U0001f642" * 200
    for budget in (1, 7, 40, 100):
        prefix, used = truncate_text(model, text, budget)
        assert text.startswith(prefix)
        assert used == count_text_tokens(model, prefix) <= budget
        assert count_text_tokens(model, text[: len(prefix) + 1]) > budget  # nothing more fits
        assert truncate_text(model, text, budget) == (prefix, used)  # cached, same answer
    assert truncate_text(model, text, 0) == ("", 0)
    assert truncate_text(model, "short", 100) == ("short", count_text_tokens(model, "short"))


def test_tool_calls_that_fit_whole_are_kept(llm_simulator: Simulator, litellm: ModuleType) -> None:
    short = ToolCall("lookup", {"query": "x"})
    llm_simulator.add_model(SimModel(MODEL, reply=Reply(tool_calls=[short, CALL])))
    url = llm_simulator.base_url() + "/chat/completions"
    body = {"model": MODEL, "messages": USER, "tools": TOOLS}
    first = _count(litellm, 'lookup{"query":"x"}')
    out = httpx.post(url, json={**body, "max_tokens": first + 2}).json()
    choice = out["choices"][0]
    assert choice["finish_reason"] == "length"
    assert [c["function"]["arguments"] for c in choice["message"]["tool_calls"]] == [
        '{"query":"x"}'
    ]
    assert out["usage"]["completion_tokens"] == first + 2

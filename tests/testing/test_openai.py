"""OpenAI chat-completions wire format, through litellm and the openai SDK."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import httpx
import openai
import pytest

from aipowertools.testing import SimModel, SimRequest, Simulator

# litellm's streaming types trigger a pydantic UserWarning at first use; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Item .* is using the .ReadOnly. qualifier")

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is the capital of France? Answer in one word."},
]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}


def expected_usage(litellm: ModuleType, model: str, reply: str, **kw: Any) -> tuple[int, int]:
    prompt = litellm.token_counter(
        model=model,
        messages=kw.get("messages", MESSAGES),
        **({"tools": kw["tools"]} if "tools" in kw else {}),
    )
    completion = litellm.token_counter(model=model, text=reply, count_response_tokens=True)
    return prompt, completion


def test_litellm_usage_equals_offline_token_counter(
    llm_simulator: Simulator, litellm: ModuleType
) -> None:
    llm_simulator.add_model(SimModel("gpt-4o-mini", reply="Paris, of course."))
    response = litellm.completion(
        model="openai/gpt-4o-mini",
        api_base=llm_simulator.base_url("openai"),
        api_key="sk-sim",
        messages=MESSAGES,
        num_retries=0,
    )
    assert response.choices[0].message.content == "Paris, of course."
    prompt, completion = expected_usage(litellm, "gpt-4o-mini", "Paris, of course.")
    assert response.usage.prompt_tokens == prompt
    assert response.usage.completion_tokens == completion
    assert response.usage.total_tokens == prompt + completion
    stats = llm_simulator.stats()
    assert stats.served == 1
    assert stats.prompt_tokens == prompt
    assert stats.completion_tokens == completion


async def test_litellm_async_stream_reports_final_usage(
    llm_simulator: Simulator, litellm: ModuleType
) -> None:
    text = "The capital of France is Paris, a city on the Seine."
    llm_simulator.add_model(SimModel("gpt-4o", reply=text))
    stream = await litellm.acompletion(
        model="openai/gpt-4o",
        api_base=llm_simulator.base_url("openai"),
        api_key="sk-sim",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
        num_retries=0,
    )
    pieces, usage = [], None
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        if getattr(chunk, "usage", None):
            usage = chunk.usage
    assert "".join(pieces) == text
    assert len(pieces) > 5
    prompt, completion = expected_usage(litellm, "gpt-4o", text)
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (prompt, completion)


def test_echo_and_cycling_and_callable_scripts(llm_simulator: Simulator) -> None:
    seen: list[SimRequest] = []

    def script(request: SimRequest) -> str:
        seen.append(request)
        return request.last_user_text.upper()

    llm_simulator.add_model(SimModel("echo", reply="echo"))
    llm_simulator.add_model(SimModel("cycle", reply=["one", "two"]))
    llm_simulator.add_model(SimModel("fn", reply=script))
    client = openai.OpenAI(base_url=llm_simulator.base_url(), api_key="sk", max_retries=0)

    def ask(model: str, text: str) -> str | None:
        out = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": text}]
        )
        return out.choices[0].message.content

    assert ask("echo", "repeat me") == "repeat me"
    assert [ask("cycle", "x") for _ in range(3)] == ["one", "two", "one"]
    assert ask("fn", "shout") == "SHOUT"
    assert seen[0].flavor == "openai"
    assert seen[0].model == "fn"
    client.close()


def test_openai_sdk_stream_with_usage(llm_simulator: Simulator, litellm: ModuleType) -> None:
    llm_simulator.add_model(SimModel("gpt-4o-mini", reply="Paris."))
    with openai.OpenAI(base_url=llm_simulator.base_url(), api_key="sk", max_retries=0) as client:
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,  # type: ignore[arg-type]
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Paris."
    assert chunks[-1].usage is not None
    prompt, completion = expected_usage(litellm, "gpt-4o-mini", "Paris.")
    assert chunks[-1].usage.prompt_tokens == prompt
    assert chunks[-1].usage.completion_tokens == completion
    # without include_usage there is no usage chunk
    with openai.OpenAI(base_url=llm_simulator.base_url(), api_key="sk", max_retries=0) as client:
        chunks = list(
            client.chat.completions.create(
                model="gpt-4o-mini",
                messages=MESSAGES,
                stream=True,  # type: ignore[arg-type]
            )
        )
    assert all(c.usage is None for c in chunks)


def test_models_endpoint_lists_configured_models() -> None:
    with Simulator(models=[SimModel("a"), SimModel("b")]) as sim:
        client = openai.OpenAI(base_url=sim.base_url(), api_key="sk", max_retries=0)
        assert sorted(m.id for m in client.models.list()) == ["a", "b"]
        # a model's own port lists only that model
        own = openai.OpenAI(base_url=sim.base_url(model="b"), api_key="sk", max_retries=0)
        assert [m.id for m in own.models.list()] == ["b"]
        client.close()
        own.close()
        assert httpx.get(sim.url + "/health").json() == {"status": "ok"}


def test_stats_endpoint_matches_python_api(llm_simulator: Simulator) -> None:
    url = llm_simulator.base_url() + "/chat/completions"
    for _ in range(3):
        httpx.post(url, json={"model": "m", "messages": MESSAGES})
    over_http = httpx.get(llm_simulator.url + "/_sim/stats").json()
    stats = llm_simulator.stats()
    assert over_http["served"] == stats.served == 3
    assert over_http["by_model"]["m"]["requests"] == 3
    assert over_http["status_counts"] == {"200": 3}
    assert [r.status for r in llm_simulator.requests] == [200, 200, 200]
    httpx.post(llm_simulator.url + "/_sim/reset")
    assert llm_simulator.stats().requests == 0

"""``cost`` equals litellm's ``completion_cost`` for every recorded cassette (to 1e-9 USD).

Each vcrpy cassette under ``tests/cassettes`` (OpenAI chat / stream / tools / cached +
reasoning, Anthropic cache, Gemini, Mistral, Ollama) is replayed through ``litellm.completion``
(record mode "none": no network) and the answer priced by us and by litellm.
``test_replay_machinery_on_a_fresh_cassette`` records cassettes from the simulator and prices
their replay the same way.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from aipowertools.core import cost, default_catalog, litellm
from aipowertools.testing import SimModel, Simulator

# litellm's pydantic types warn about their ReadOnly TypedDict items when rebuilt (not ours).
pytestmark = pytest.mark.filterwarnings(
    "ignore:Item .* is using the `ReadOnly` qualifier:UserWarning"
)

CASSETTE_DIR = Path(__file__).parents[2] / "cassettes"
CASSETTES = sorted(CASSETTE_DIR.glob("*.yaml"))
KEY = "sk-test-not-a-real-key-000000"
# How each shared cassette is called through litellm (as in tests/testing/test_cassettes.py).
CASES: dict[str, dict[str, Any]] = {
    "openai_chat": {"model": "openai/gpt-4.1"},
    "openai_chat_stream": {
        "model": "openai/gpt-4o-mini",
        "stream": True,
        "stream_options": {"include_usage": True},
    },
    "openai_tools": {"model": "openai/gpt-4.1"},
    "openai_cached_reasoning": {"model": "openai/o3-mini"},
    # litellm's map no longer prices these two models: both sides price them as a current one
    "anthropic_messages_cache": {
        "model": "anthropic/claude-3-5-sonnet-20241022",
        "price_as": "claude-sonnet",
    },
    "gemini_generate_content": {"model": "gemini/gemini-2.0-flash", "price_as": "gemini-flash"},
    "mistral_chat": {"model": "mistral/mistral-small-latest"},
    "ollama_chat": {"model": "ollama_chat/llama3.2", "api_base": "http://localhost:11434"},
}


def _priced_both_ways(path: Path, price_as: str | None = None, **call: Any) -> tuple[float, float]:
    """Replay ``path`` through litellm: (our cost, litellm's completion_cost) of the answer.

    Both price the model that answered (``response.model``, as litellm does), or ``price_as``
    (a catalog id) where litellm's map lacks it.
    """
    import vcr

    lt = litellm()
    with vcr.use_cassette(
        str(path), record_mode="none", match_on=["method", "scheme", "host", "port", "path"]
    ) as tape:
        response = lt.completion(
            messages=[{"role": "user", "content": "Hello!"}], num_retries=0, api_key=KEY, **call
        )
        if call.get("stream"):
            response = lt.stream_chunk_builder(list(response))
    assert tape.play_count == 1
    if price_as is not None:
        priced = default_catalog().get(price_as).litellm_model
        expected = lt.completion_cost(completion_response=response, base_model=priced)
        return cost(response, price_as), float(expected)
    answered = str(response.model)
    provider = call["model"].partition("/")[0]
    ours = cost(response, answered if "/" in answered else f"{provider}/{answered}")
    return ours, float(lt.completion_cost(completion_response=response))


@pytest.mark.parametrize("path", CASSETTES, ids=[p.stem for p in CASSETTES])
def test_cost_equals_litellm_for_every_cassette(path: Path) -> None:
    assert path.stem in CASES, f"new cassette {path.name}: add how to call it to CASES here"
    ours, expected = _priced_both_ways(path, **CASES[path.stem])
    assert math.isclose(ours, expected, rel_tol=0, abs_tol=1e-9), (path.stem, ours, expected)
    if not path.stem.startswith("ollama"):
        assert ours > 0  # a priced model: never a silent $0


def test_replay_machinery_on_a_fresh_cassette(tmp_path: Path) -> None:
    """The replay above, on cassettes recorded here from the simulator (OpenAI and Anthropic)."""
    import vcr

    haiku = default_catalog().get("claude-haiku").litellm_model
    models = [SimModel(m, reply="a recorded reply of six words") for m in ("gpt-4o-mini", haiku)]
    calls: list[tuple[Path, dict[str, Any]]] = []
    with Simulator(models=models) as sim:
        for name, model, base in (
            ("openai", "openai/gpt-4o-mini", sim.base_url("openai")),
            ("anthropic", f"anthropic/{haiku}", sim.base_url("anthropic")),
        ):
            path = tmp_path / f"{name}.yaml"
            with vcr.use_cassette(str(path), record_mode="once"):
                recorded = litellm().completion(
                    model=model,
                    messages=[{"role": "user", "content": "Hello!"}],
                    api_base=base,
                    api_key=KEY,
                    num_retries=0,
                )
            assert recorded.usage.completion_tokens > 0
            calls.append((path, {"model": model, "api_base": base}))
    # The simulator is gone: only the cassettes can answer now.
    for path, call in calls:
        ours, expected = _priced_both_ways(path, **call)
        assert expected > 0
        assert math.isclose(ours, expected, rel_tol=0, abs_tol=1e-9)

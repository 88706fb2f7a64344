from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aipowertools.core import (
    ModelCatalog,
    ModelInfo,
    Usage,
    cost,
    default_catalog,
    estimate_cost,
    litellm,
)
from aipowertools.core._aliases import CURATED, LOCAL
from aipowertools.core.errors import ConfigurationError, UnknownModelError

# Building a litellm ModelResponse makes pydantic rebuild litellm's TypedDicts, which warns
# about their ReadOnly items (litellm's types, not ours), depending on what was imported first.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Item .* is using the `ReadOnly` qualifier:UserWarning"
)


def litellm_response(model: str, usage: Usage) -> object:
    """A litellm ModelResponse carrying ``usage`` the way litellm reports it."""
    lt = litellm()
    from litellm.types.utils import (
        CompletionTokensDetailsWrapper,
        PromptTokensDetailsWrapper,
    )
    from litellm.types.utils import Usage as LiteUsage

    lite_usage = LiteUsage(
        prompt_tokens=usage.input_tokens,
        completion_tokens=usage.output_tokens,
        total_tokens=usage.total_tokens,
        prompt_tokens_details=PromptTokensDetailsWrapper(
            cached_tokens=usage.cached_input_tokens,
            cache_creation_tokens=usage.cache_creation_tokens,
        ),
        completion_tokens_details=CompletionTokensDetailsWrapper(
            reasoning_tokens=usage.reasoning_tokens
        ),
        cache_creation_input_tokens=usage.cache_creation_tokens,
        cache_read_input_tokens=usage.cached_input_tokens,
    )
    return lt.ModelResponse(
        model=model,
        choices=[{"message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        usage=lite_usage,
    )


USAGES = {
    "plain": Usage(1234, 567),
    "cached": Usage(20_000, 800, cached_input_tokens=12_000),
    "cache_write": Usage(9_000, 300, cache_creation_tokens=4_000),
    "cache_both": Usage(30_000, 1_000, cached_input_tokens=10_000, cache_creation_tokens=5_000),
    "reasoning": Usage(3_000, 9_000, reasoning_tokens=7_500),
    "huge_prompt": Usage(250_000, 2_000, cached_input_tokens=50_000),
    "zero": Usage(),
}


@pytest.mark.parametrize("shape", sorted(USAGES))
@pytest.mark.parametrize("alias", sorted(CURATED))
def test_cost_equals_litellm_completion_cost(alias: str, shape: str) -> None:
    usage = USAGES[shape]
    info = default_catalog().get(alias)
    if info.context_window and usage.input_tokens > info.context_window:
        # as long a prompt as the model takes (still past 200k where a tier starts there)
        usage = Usage(info.context_window - 1_000, 2_000, cached_input_tokens=1_000)
    response = litellm_response(info.litellm_model, usage)
    expected = litellm().completion_cost(completion_response=response, model=info.litellm_model)
    assert Usage.from_any(response) == usage
    assert math.isclose(cost(response, alias), expected, rel_tol=0, abs_tol=1e-9), (
        alias,
        shape,
        cost(response, alias),
        expected,
    )


def test_curated_catalog_covers_the_families_users_name() -> None:
    ids = default_catalog().ids()
    assert len(ids) >= 20
    for family in (
        "claude-opus",
        "claude-sonnet",
        "claude-haiku",
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4.1",
        "o3",
        "gemini-pro",
        "gemini-flash",
        "mistral-large",
        "mistral-medium",
        "mistral-small",
        "ollama/llama3",
        "ollama/mistral",
        "ollama/deepseek-coder",
        "ollama/qwen2.5",
        "llamacpp/llama3",
    ):
        assert family in ids
    for info in default_catalog().models():
        assert info.quality is not None
        assert 0 <= info.quality <= 1


@pytest.mark.parametrize("alias", sorted({*LOCAL, "ollama/llama3", "ollama/mistral"}))
def test_local_models_cost_nothing(alias: str) -> None:
    info = default_catalog().get(alias)
    assert info.local
    assert cost(Usage(10_000, 5_000), alias) == 0.0
    assert estimate_cost("hello", alias, 100) == 0.0


def test_hand_computed_costs() -> None:
    # gpt-4o: $2.50 / 1M input, $1.25 / 1M cached, $10 / 1M output
    usage = Usage(input_tokens=1_000_000, output_tokens=100_000, cached_input_tokens=400_000)
    assert cost(usage, "gpt-4o") == pytest.approx(0.6 * 2.5 + 0.4 * 1.25 + 0.1 * 10)
    # claude-sonnet: cache writes at $3.75 / 1M
    write = Usage(input_tokens=1_000_000, output_tokens=0, cache_creation_tokens=1_000_000)
    assert cost(write, "claude-sonnet") == pytest.approx(3.75)


def test_reasoning_price_and_tiers_on_custom_model() -> None:
    catalog = ModelCatalog(model_map={}, curated=False)
    catalog.add(
        id="thinker",
        provider="acme",
        input_cost_per_token=1e-6,
        output_cost_per_token=2e-6,
        output_cost_per_reasoning_token=5e-6,
        price_tiers=[{"above_tokens": 1000, "input_cost_per_token": 3e-6}],
    )
    usage = Usage(input_tokens=500, output_tokens=100, reasoning_tokens=40)
    assert cost(usage, "thinker", catalog=catalog) == pytest.approx(500e-6 + 60 * 2e-6 + 40 * 5e-6)
    big = Usage(input_tokens=2000, output_tokens=0)
    assert cost(big, "thinker", catalog=catalog) == pytest.approx(2000 * 3e-6)
    # a ModelInfo can be priced directly
    assert cost(usage, catalog.get("thinker")) == cost(usage, "thinker", catalog=catalog)


def test_unknown_model_is_never_free() -> None:
    with pytest.raises(UnknownModelError):
        cost(Usage(10, 10), "no-such-model")
    with pytest.raises(UnknownModelError):
        estimate_cost("hi", "no-such-model", 10)


def test_cost_rejects_objects_without_usage() -> None:
    with pytest.raises(ConfigurationError, match="cannot find token usage"):
        cost(object(), "gpt-4o")


def test_estimate_cost_is_an_upper_bound() -> None:
    messages = [{"role": "user", "content": "Write a haiku about budgets. " * 20}]
    for alias in ("gpt-4o", "claude-sonnet", "gemini-flash", "o4-mini"):
        worst = estimate_cost(messages, alias, max_tokens=300)
        info = default_catalog().get(alias)
        from aipowertools.core import count_tokens

        prompt = count_tokens(messages, alias).tokens
        actual = cost(Usage(prompt, 300, reasoning_tokens=100), alias)
        assert worst >= actual, alias
        assert worst <= actual * 2 + 1e-9, alias  # not absurdly pessimistic
        assert worst > 0
        assert info.max_output_tokens is not None


def test_estimate_cost_defaults_to_max_output_and_validates() -> None:
    info = default_catalog().get("gpt-4o-mini")
    assert estimate_cost("hi", "gpt-4o-mini") == pytest.approx(
        estimate_cost("hi", "gpt-4o-mini", info.max_output_tokens)
    )
    with pytest.raises(ConfigurationError, match="max_tokens must be"):
        estimate_cost("hi", "gpt-4o-mini", -1)
    catalog = ModelCatalog(model_map={}, curated=False)
    catalog.add(id="nolimit", provider="acme", input_cost_per_token=1e-6)
    with pytest.raises(ConfigurationError, match="max_tokens is needed"):
        estimate_cost("hi", "nolimit", catalog=catalog)
    # not an OpenAI model, so its token count is an estimate, padded by 25 % plus framing
    from aipowertools.core import count_tokens

    counted = count_tokens("x" * 400, "nolimit", catalog=catalog)
    assert counted.estimated
    assert estimate_cost("x" * 400, "nolimit", 0, catalog=catalog) == pytest.approx(
        (math.ceil(counted.tokens * 1.25) + 4 + 3) * 1e-6
    )


def test_model_info_price_per_1k() -> None:
    info = ModelInfo(
        id="m",
        provider="p",
        litellm_model="m",
        input_cost_per_token=1e-6,
        output_cost_per_token=3e-6,
    )
    assert info.price_per_1k == pytest.approx(0.002)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    alias=st.sampled_from(sorted(CURATED)),
    data=st.data(),
)
def test_cost_matches_litellm_for_any_usage(alias: str, data: st.DataObject) -> None:
    info = default_catalog().get(alias)
    limit = info.context_window or 100_000
    input_tokens = data.draw(st.integers(0, limit), label="input")
    cached = data.draw(st.integers(0, input_tokens), label="cached")
    creation = data.draw(st.integers(0, input_tokens - cached), label="creation")
    output = data.draw(st.integers(0, info.max_output_tokens or 10_000), label="output")
    reasoning = data.draw(st.integers(0, output), label="reasoning")
    usage = Usage(input_tokens, output, cached, creation, reasoning)
    response = litellm_response(info.litellm_model, usage)
    expected = litellm().completion_cost(completion_response=response, model=info.litellm_model)
    assert math.isclose(cost(usage, alias), expected, rel_tol=0, abs_tol=1e-9)

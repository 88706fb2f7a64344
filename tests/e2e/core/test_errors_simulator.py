"""The error taxonomy against real HTTP failures from the simulator, through litellm and SDKs."""

from __future__ import annotations

import math
from collections.abc import Iterator

import anthropic
import openai
import pytest

from aipowertools.core import Usage, cost, litellm
from aipowertools.core.errors import (
    ErrorKind,
    RateLimitedError,
    as_provider_error,
    classify,
    retry_after_seconds,
)
from aipowertools.testing import Fault, SimModel, Simulator

# Building litellm responses makes pydantic rebuild litellm's TypedDicts, which warns about
# their ReadOnly items (litellm's types, not ours).
pytestmark = pytest.mark.filterwarnings(
    "ignore:Item .* is using the `ReadOnly` qualifier:UserWarning"
)
MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    models = [
        SimModel("gpt-4o-mini", reply="hi there", cached_tokens=2),
        SimModel("claude-haiku-4-5", reply="hi there", cache_creation_tokens=3),
    ]
    with Simulator(models, seed=0) as simulator:
        yield simulator


def _litellm_call(sim: Simulator, **kwargs: object) -> object:
    return litellm().completion(
        model="openai/gpt-4o-mini",
        api_base=sim.base_url("openai"),
        api_key="sk-test",
        messages=MESSAGES,
        num_retries=0,
        max_retries=0,
        **kwargs,
    )


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        (Fault("rate_limit", retry_after=3), ErrorKind.RATE_LIMITED),
        (Fault("server_error"), ErrorKind.TRANSIENT),
        (Fault("bad_gateway"), ErrorKind.TRANSIENT),
        (Fault("unavailable"), ErrorKind.TRANSIENT),
        (Fault("context_length"), ErrorKind.CONTEXT_WINDOW),
        (Fault("authentication"), ErrorKind.AUTHENTICATION),
        (Fault("content_policy"), ErrorKind.CONTENT_POLICY),
        (Fault("disconnect"), ErrorKind.TRANSIENT),
    ],
    ids=lambda v: getattr(getattr(v, "kind", None), "value", str(v)),
)
def test_litellm_faults_are_classified(sim: Simulator, fault: Fault, kind: ErrorKind) -> None:
    sim.fail_next("gpt-4o-mini", 1, fault)
    with pytest.raises(Exception) as info:
        _litellm_call(sim)
    assert classify(info.value) is kind, repr(info.value)
    assert as_provider_error(info.value).kind is kind


def test_litellm_rate_limit_carries_retry_after(sim: Simulator) -> None:
    sim.fail_next("gpt-4o-mini", 1, Fault("rate_limit", retry_after=3))
    with pytest.raises(Exception) as info:
        _litellm_call(sim)
    assert retry_after_seconds(info.value) == 3.0
    err = as_provider_error(info.value)
    assert isinstance(err, RateLimitedError)
    assert err.retry_after == 3.0
    assert err.status_code == 429


def test_litellm_timeout_is_classified(sim: Simulator) -> None:
    sim.fail_next("gpt-4o-mini", 1, Fault("hang", delay_s=5))
    with pytest.raises(Exception) as info:
        _litellm_call(sim, timeout=0.5)
    assert classify(info.value) is ErrorKind.TIMEOUT


def test_openai_sdk_faults(sim: Simulator) -> None:
    client = openai.OpenAI(base_url=sim.base_url("openai"), api_key="sk-test", max_retries=0)
    sim.fail_next("gpt-4o-mini", 1, Fault("rate_limit", retry_after=2))
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
    assert classify(info.value) is ErrorKind.RATE_LIMITED
    assert retry_after_seconds(info.value) == 2.0
    sim.fail_next("gpt-4o-mini", 1, "context_length")
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
    assert classify(bad.value) is ErrorKind.CONTEXT_WINDOW
    client.close()


def test_anthropic_sdk_faults(sim: Simulator) -> None:
    client = anthropic.Anthropic(
        base_url=sim.base_url("anthropic"), api_key="sk-test", max_retries=0
    )
    try:
        client.messages.create(model="claude-haiku-4-5", max_tokens=20, messages=MESSAGES)  # type: ignore[arg-type]
    except anthropic.NotFoundError:
        client.close()
        pytest.skip("this simulator build does not serve the Anthropic wire format yet")
    sim.fail_next("claude-haiku-4-5", 1, "unavailable")
    with pytest.raises(anthropic.APIStatusError) as info:
        client.messages.create(model="claude-haiku-4-5", max_tokens=20, messages=MESSAGES)  # type: ignore[arg-type]
    assert classify(info.value) is ErrorKind.TRANSIENT
    sim.fail_next("claude-haiku-4-5", 1, "authentication")
    with pytest.raises(anthropic.AuthenticationError) as auth:
        client.messages.create(model="claude-haiku-4-5", max_tokens=20, messages=MESSAGES)  # type: ignore[arg-type]
    assert classify(auth.value) is ErrorKind.AUTHENTICATION
    # a successful reply: usage (with cache writes) priced like litellm prices it
    message = client.messages.create(
        model="claude-haiku-4-5",
        max_tokens=20,
        messages=MESSAGES,  # type: ignore[arg-type]
    )
    usage = Usage.from_any(message)
    assert usage.cache_creation_tokens == 3
    assert usage.input_tokens >= 3
    client.close()


def test_simulated_response_cost_matches_litellm(sim: Simulator) -> None:
    response = _litellm_call(sim)
    usage = Usage.from_any(response)
    assert usage.input_tokens > 0
    assert usage.output_tokens > 0
    assert usage.cached_input_tokens == 2
    expected = litellm().completion_cost(completion_response=response, model="gpt-4o-mini")
    assert math.isclose(cost(response, "gpt-4o-mini"), expected, rel_tol=0, abs_tol=1e-9)

"""Small pieces: complexity, context, deployments, health, strategies, results."""

from __future__ import annotations

import pickle
import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aipowertools.core.errors import ConfigurationError, ContextWindowExceededError
from aipowertools.router import (
    Completion,
    Deployment,
    DeploymentState,
    HealthPolicy,
    NoDeploymentError,
    Race,
    RouteRequest,
    Strategy,
    heuristic_complexity,
    quality_prior,
    resolve,
)
from aipowertools.router._context import message_tokens, prepare, trim
from aipowertools.router._deployment import provider_of

from .conftest import dep


def test_complexity_heuristic_signals() -> None:
    easy = heuristic_complexity([{"role": "user", "content": "Translate 'cat' to French."}])
    assert easy == pytest.approx(0.05, abs=0.01)
    code = heuristic_complexity([{"role": "user", "content": "```py\ndef f(x): ...```"}])
    reasoning = heuristic_complexity(
        [{"role": "user", "content": [{"type": "text", "text": "Prove it step by step, why?"}]}]
    )
    assert code == pytest.approx(0.35, abs=0.01)
    assert reasoning == pytest.approx(0.45, abs=0.01)
    long_chat = [{"role": "assistant", "content": "x"}] * 7 + [{"role": "user", "content": "hi"}]
    assert heuristic_complexity(long_chat) == pytest.approx(0.25, abs=0.01)
    assert heuristic_complexity([{"role": "system", "content": "no user turn"}]) == 0.15


@pytest.mark.parametrize("size", [1_000, 40_000, 400_000])
def test_complexity_reads_a_bounded_part_of_any_prompt(
    size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aipowertools.router import _complexity

    seen: list[int] = []
    count = _complexity._count

    def recording(pattern: re.Pattern[str], starts: tuple[str, ...], text: str, cap: int) -> int:
        seen.append(len(text))
        return count(pattern, starts, text, cap)

    monkeypatch.setattr(_complexity, "_count", recording)
    # Cues only in the middle of a long prompt are not read; cues at either end are.
    filler = "lorem ipsum " * (size // 12)
    text = "Why? def f(): " + filler + " debug it, summarize"
    score = heuristic_complexity([{"role": "user", "content": text}])
    assert len(seen) == 3
    assert max(seen) <= 2 * _complexity.CUE_WINDOW + 1
    length = 0.35 * min(1, len(text) / 4000)
    assert score == pytest.approx(0.15 + length + 0.2 + 0.2 - 0.1)


# The cue patterns as first written (one regex scan of the whole turn): the fast path must
# agree with them on every turn short enough to be read whole.
_OLD_CODE = re.compile(r"```|\bdef \w+\(|\bclass \w+|\bfunction\b|\bSELECT\b.+\bFROM\b|=>|#include")
_OLD_REASONING = re.compile(
    r"\b(prove|step[- ]by[- ]step|analy[sz]e|trade-?offs?|derive|design|optimi[sz]e|why|"
    r"compare|debug)\b",
    re.IGNORECASE,
)
_OLD_SIMPLE = re.compile(
    r"\b(translate|summari[sz]e|classify|extract|yes or no|one word|spell)\b", re.IGNORECASE
)
_WORDS = [
    "why", "Why", "prove", "step by step", "step-by-step", "analyze", "tradeoffs", "trade-off",
    "design", "designs", "optimise", "compare", "debug", "debugger", "translate", "Summarize",
    "classify", "extract", "yes or no", "one word", "spell", "spelling", "def f(", "class A",
    "function", "functional", "SELECT a FROM b", "select x from y", "=>", "#include", "```",
    "x", "_why", "why_", "9why", " ", "\n", ".", "-",
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_WORDS), max_size=40), st.booleans())
def test_complexity_fast_path_agrees_with_the_plain_patterns(words: list[str], long: bool) -> None:
    text = "".join(words)
    messages = [{"role": "assistant", "content": "x"}] * (7 if long else 0)
    messages = [*messages, {"role": "user", "content": text}]
    score = 0.15 + 0.35 * min(1.0, len(text) / 4000)
    score += 0.2 if _OLD_CODE.search(text) else 0.0
    score += min(0.3, 0.1 * len(_OLD_REASONING.findall(text)))
    score += 0.1 if long else 0.0
    score -= min(0.2, 0.1 * len(_OLD_SIMPLE.findall(text)))
    assert heuristic_complexity(messages) == pytest.approx(min(1.0, max(0.0, score)), abs=1e-12)


def test_complexity_of_a_short_prompt_reads_all_of_it() -> None:
    middle = "x" * 1500 + " step by step " + "y" * 1500
    assert heuristic_complexity([{"role": "user", "content": middle}]) == pytest.approx(
        0.15 + 0.35 * len(middle) / 4000 + 0.1, abs=1e-9
    )
    long_middle = "x" * 9000 + " step by step " + "y" * 9000
    assert heuristic_complexity([{"role": "user", "content": long_middle}]) == pytest.approx(
        0.5, abs=1e-9
    )


def test_message_tokens_and_prepare() -> None:
    image = {
        "role": "user",
        "content": [
            {"type": "text", "text": "x" * 40},
            {"type": "image_url", "image_url": {"url": "u"}},
        ],
    }
    assert message_tokens(image) == 10 + 4 + 85
    call = {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"function": {"name": "abcd", "arguments": "x" * 36}}],
    }
    assert message_tokens(call) == 10 + 4
    prompt = prepare(None, [image])
    assert prompt.has_images
    with pytest.raises(ConfigurationError, match="string"):
        prepare(3, None)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="empty"):
        prepare(None, [])


def test_trim_keeps_system_pinned_recent_and_no_orphan_tool() -> None:
    messages = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "old " * 100},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"function": {"name": "f", "arguments": "x" * 40}}],
        },
        {"role": "tool", "content": "r", "tool_call_id": "1"},
        {"role": "user", "content": "new"},
    ]
    kept = trim(prepare(None, messages), 16)
    assert [m["content"] for m in kept.messages] == ["s", "new"]  # the orphan tool result went
    with pytest.raises(ContextWindowExceededError, match="need 8 tokens"):
        trim(prepare(None, messages), 2)  # the system message and the last user turn


def test_deployment_defaults_and_validation() -> None:
    assert provider_of("claude-3-haiku") == "anthropic"
    assert provider_of("gemini-pro") == "gemini"
    assert provider_of("mistral-small") == "mistral"
    assert provider_of("gpt-4o") == "openai"
    assert Deployment("openai/x", api_base="http://127.0.0.1:8000/v1").local
    assert not Deployment("openai/x", api_base="https://api.example.com").local
    assert Deployment("openai/x", api_base="http://h:1/v1").name == "openai/x@h:1"
    assert quality_prior("claude-opus-4") == 0.95
    assert quality_prior("something-else") == 0.5
    for bad in ({"quality": 2.0}, {"timeout": 0}, {"weight": -1}):
        with pytest.raises(ConfigurationError):
            Deployment("openai/x", **bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="non-empty"):
        Deployment("")
    assert dep("a").replace(quality=0.1).quality == 0.1


def test_resolve_from_mapping_catalog() -> None:
    catalog = {
        "my-model": {
            "input_cost_per_token": 1e-6,
            "output_cost_per_token": 2e-6,
            "max_input_tokens": 32_000,
            "supports_function_calling": True,
        }
    }
    d = resolve(Deployment("openai/my-model", local=False), catalog)
    assert (d.input_cost_per_token, d.context_window, d.supports_tools) == (1e-6, 32_000, True)
    assert d.supports_vision is False
    unknown = resolve(Deployment("openai/nope", local=False), catalog)
    assert unknown.input_cost_per_token is None
    local = resolve(Deployment("ollama_chat/x"), None)
    assert local.input_cost_per_token == 0.0
    assert local.latency_ms == 300.0


def test_health_policy_and_state_paths() -> None:
    for bad in (
        {"failure_threshold": 0},
        {"error_rate_threshold": 0},
        {"cooldown_s": 10, "max_cooldown_s": 1},
    ):
        with pytest.raises(ConfigurationError):
            HealthPolicy(**bad)  # type: ignore[arg-type]
    st = DeploymentState(
        HealthPolicy(min_samples=3, window=4, latency_threshold_ms=100, cooldown_s=0.0)
    )
    now = time.monotonic()
    for latency in (50.0, 200.0, 300.0):
        st.begin(now)
        st.success(latency)
    assert st.open_until > 0
    assert "p95 latency" in st.open_reason
    assert st.samples == 0  # slow samples forgotten so a trial can close the circuit
    st2 = DeploymentState(HealthPolicy(min_samples=4, window=4, failure_threshold=10))
    for ok in (True, False, True, False):
        st2.begin(now)
        if ok:
            st2.success(10.0)
        else:
            st2.failure(now)
    assert st2.error_rate == 0.0
    assert st2.open_until > 0
    assert "error rate" in st2.open_reason
    assert not st2.available(now)
    assert "circuit open" in st2.unavailable_reason(now)
    st3 = DeploymentState(HealthPolicy(failure_threshold=1, cooldown_s=0.0))
    st3.begin(now)
    st3.failure(now)
    st3.begin(now + 1)  # the half-open trial
    assert st3.probing
    assert st3.unavailable_reason(now + 1) == "circuit half-open, trial call in flight"
    st3.failure(now + 1)  # trial failed: open again, longer
    assert st3.open_until >= now + 1
    st3.begin(now + 2)
    st3.failure(now + 2, counts=False)
    assert not st3.probing
    for v in range(1, 11):
        st.success(float(v))
    assert (st.p50_ms, st.p90_ms) == (5.0, 9.0)


def test_apply_remote_only_extends_unavailability() -> None:
    st = DeploymentState(HealthPolicy(cooldown_s=10))
    now = time.monotonic()
    assert st.apply_remote(open_until=now + 5, open_reason="x (reported by another router)")
    assert not st.available(now)
    assert "reported by another router" in st.unavailable_reason(now)
    assert not st.apply_remote(open_until=now + 1, open_reason="earlier")  # never shortens
    assert st.open_reason.startswith("x ")
    assert st.apply_remote(parked_until=now + 20, parked_reason="Retry-After (elsewhere)")
    assert "(Retry-After (elsewhere))" in st.unavailable_reason(now)
    st.failure(now, counts=False, retry_after=30)  # a local 429 parking longer takes over
    assert st.unavailable_reason(now).endswith("(Retry-After)")
    assert st.available(now + 31)  # then half-open: one trial call
    st.begin(now + 31)
    assert not st.available(now + 31)


def test_race_delay_and_validation() -> None:
    from aipowertools.router._engine import Candidate

    st = DeploymentState(HealthPolicy())
    cand = Candidate(dep("a"), st, 0.0, 0.0, 400.0, 0.7)
    assert Race(hedge_after=0.25).delay_s(cand) == 0.25
    assert Race().delay_s(cand) == pytest.approx(0.8)  # cold: 2x the predicted latency
    for v in range(1, 21):
        st.success(float(v * 10))
    assert Race(hedge_after="p50").delay_s(cand) == pytest.approx(0.1)
    assert Race(hedge_after="p90").delay_s(cand) == pytest.approx(0.18)
    assert Race(hedge_after="p95").delay_s(cand) == pytest.approx(0.19)
    with pytest.raises(ConfigurationError):
        Race(hedge_after="p99")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        Race(hedge_after=-1)
    with pytest.raises(ConfigurationError):
        Race(max_hedges=0)
    from aipowertools.router import ParallelBest

    with pytest.raises(ConfigurationError):
        ParallelBest(1)


def test_custom_strategy_and_weighted_without_weights() -> None:
    from aipowertools.router import DecisionEngine, Weighted

    class Reverse(Strategy):
        name = "reverse"

        def order(self, candidates, request, floor):  # type: ignore[no-untyped-def,override]
            return candidates[::-1]

    e = DecisionEngine([dep("a"), dep("b")])
    d = e.decide(RouteRequest(prompt_tokens=1), Reverse())
    assert [c.deployment.name for c in d.candidates] == ["b", "a"]
    assert d.reason == "first in the reverse order"
    e2 = DecisionEngine([dep("a", weight=0.0, price=1e-5), dep("b", weight=0.0, price=1e-7)])
    d2 = e2.decide(RouteRequest(prompt_tokens=1), Weighted())
    assert d2.candidates[0].deployment.name == "b"


def test_result_usage_and_errors_pickle() -> None:
    from aipowertools.router import LLMRouter

    from .conftest import FakeTransport

    r = LLMRouter([dep("a")], transport=FakeTransport(), catalog={}, monitor=False)
    result = r.route_sync("hi")
    usage = result.usage
    assert (usage.input_tokens, usage.output_tokens) == (20, 10)
    err = NoDeploymentError([("a", "why")])
    again = pickle.loads(pickle.dumps(err))
    assert again.rejected == {"a": "why"}
    assert isinstance(Completion("x"), Completion)

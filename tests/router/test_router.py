from __future__ import annotations

import asyncio

import pytest

from aipowertools.core.errors import (
    ConfigurationError,
    ContentPolicyError,
    ContextWindowExceededError,
    ErrorKind,
    ProviderError,
    RateLimitedError,
    TransientProviderError,
)
from aipowertools.router import (
    HealthPolicy,
    LLMRouter,
    NoDeploymentError,
    ParallelBest,
    Race,
)

from .conftest import Behaviour, FakeTransport, dep


def router(transport: FakeTransport, *deps: object, **kw: object) -> LLMRouter:
    return LLMRouter(list(deps), transport=transport, catalog={}, **kw)  # type: ignore[arg-type]


async def test_route_returns_answer_cost_and_decision(transport: FakeTransport) -> None:
    r = router(
        transport, dep("cheap", price=1e-7, quality=0.7), dep("big", price=1e-5, quality=0.95)
    )
    result = await r.route(task="Say hi", complexity_score=0.2)
    assert result.content == "answer from cheap"
    assert result.deployment == "cheap"
    assert result.provider == "openai"
    assert result.model == "openai/cheap"
    assert result.cost == pytest.approx(20 * 1e-7 + 10 * 4e-7)
    assert result.latency_ms > 0
    assert result.decision.chosen is not None
    assert result.decision.chosen.name == "cheap"
    assert "cheapest deployment meeting the quality floor" in result.decision.explanation
    assert [a.ok for a in result.attempts] == [True]
    assert result.input_tokens == 20
    assert result.output_tokens == 10
    hard = await r.route(task="x", complexity_score=0.2, required_quality=0.9)
    assert hard.deployment == "big"


async def test_failover_on_transient_and_records_every_attempt(transport: FakeTransport) -> None:
    transport.behaviours["a"] = Behaviour(fail_rate=1.0)
    r = router(transport, dep("a", price=1e-7), dep("b", price=1e-6))
    result = await r.route(task="hi")
    assert result.deployment == "b"
    assert [(a.deployment, a.ok, a.error_kind) for a in result.attempts] == [
        ("a", False, "transient"),
        ("b", True, None),
    ]
    assert r.state("a").consecutive_failures == 1


async def test_rate_limit_parks_deployment_for_retry_after(transport: FakeTransport) -> None:
    transport.behaviours["a"] = Behaviour(fail_rate=1.0, error=RateLimitedError, retry_after=30)
    r = router(transport, dep("a", price=1e-7), dep("b", price=1e-6))
    first = await r.route(task="hi")
    assert first.deployment == "b"
    second = await r.route(task="hi")
    assert second.deployment == "b"
    assert transport.calls == ["a", "b", "b"]  # a not called again while parked
    assert "Retry-After" in dict(second.decision.rejected)["a"]
    assert r.state("a").failures == 0  # a 429 is not the deployment's fault


async def test_circuit_opens_and_no_request_reaches_it(transport: FakeTransport) -> None:
    transport.behaviours["a"] = Behaviour(fail_rate=1.0)
    r = router(
        transport,
        dep("a", price=1e-7),
        dep("b", price=1e-6),
        health=HealthPolicy(failure_threshold=3, cooldown_s=60),
    )
    for _ in range(10):
        assert (await r.route(task="hi")).deployment == "b"
    assert transport.calls.count("a") == 3


async def test_half_open_trial_closes_circuit(transport: FakeTransport) -> None:
    transport.behaviours["a"] = Behaviour(fail_rate=1.0)
    r = router(
        transport,
        dep("a", price=1e-7),
        dep("b", price=1e-6),
        health=HealthPolicy(failure_threshold=1, cooldown_s=0.05),
    )
    await r.route(task="hi")
    assert r.state("a").open_until > 0
    transport.behaviours["a"] = Behaviour()
    await asyncio.sleep(0.06)
    result = await r.route(task="hi")
    assert result.deployment == "a"
    assert r.state("a").open_until == 0.0


@pytest.mark.parametrize("store", [None, "memory://"])
async def test_health_stays_in_process_by_default(
    transport: FakeTransport, monkeypatch: pytest.MonkeyPatch, store: str | None
) -> None:
    import aipowertools.core.stores as stores
    import aipowertools.router._shared_health as shared

    def no_redis(url: object) -> None:
        raise AssertionError("the per-process default touched Redis")

    monkeypatch.setattr(stores, "async_redis_client", no_redis)
    monkeypatch.setattr(stores, "redis_client", no_redis)
    monkeypatch.setattr(shared, "async_redis_client", no_redis)
    monkeypatch.setenv("AIPOWERTOOLS_STORE", "redis://127.0.0.1:1/0")  # not followed for health
    transport.behaviours["a"] = Behaviour(fail_rate=1.0)
    transport.behaviours["c"] = Behaviour(fail_rate=1.0, error=RateLimitedError, retry_after=9)
    r = router(
        transport,
        dep("a", price=1e-7),
        dep("c", price=2e-7),
        dep("b", price=1e-6),
        health=HealthPolicy(failure_threshold=1, cooldown_s=60),
        health_store=store,
    )
    assert r._shared_health is None
    assert r._executor.health is None
    assert (await r.route(task="hi")).deployment == "b"  # opens a, parks c
    assert [c async for c in r.stream(task="hi") if c.content]
    assert "1 consecutive failures" in r.state("a").open_reason
    assert r.state("c").parked_until > 0
    with pytest.raises(ConfigurationError, match="health_refresh_s"):
        router(transport, dep("a"), health_refresh_s=0)


async def test_non_failover_error_is_raised(transport: FakeTransport) -> None:
    transport.behaviours["a"] = Behaviour(fail_rate=1.0, error=ContentPolicyError)
    r = router(transport, dep("a", price=1e-7), dep("b", price=1e-6))
    with pytest.raises(ContentPolicyError):
        await r.route(task="hi")
    assert transport.calls == ["a"]


async def test_all_failed_raises_classified_error(transport: FakeTransport) -> None:
    transport.behaviours["a"] = Behaviour(fail_rate=1.0)
    transport.behaviours["b"] = Behaviour(fail_rate=1.0, error=RateLimitedError, retry_after=5)
    r = router(transport, dep("a"), dep("b"))
    with pytest.raises(ProviderError) as info:
        await r.route(task="hi", strategy="fallback")
    assert "all 2 attempts failed" in str(info.value)
    assert info.value.kind is ErrorKind.RATE_LIMITED
    assert info.value.retry_after == 5


async def test_confidential_goes_local_only(transport: FakeTransport) -> None:
    r = router(
        transport,
        dep("cloud", price=0.0, quality=0.9),
        dep("local", price=0.0, quality=0.5, local=True),
    )
    result = await r.route(task="secret", tags=["confidential"], complexity_score=0.9)
    assert result.deployment == "local"
    assert dict(result.decision.rejected)["cloud"] == "confidential request, cloud deployment"
    r2 = router(transport, dep("cloud"))
    with pytest.raises(NoDeploymentError, match="confidential"):
        await r2.route(task="secret", confidential=True)


async def test_race_hedges_slow_primary_and_cancels_loser(transport: FakeTransport) -> None:
    # a answers only after 30 s: however late the hedge fires on a loaded machine, b wins.
    transport.behaviours["a"] = Behaviour(latency_s=30.0)
    transport.behaviours["b"] = Behaviour(latency_s=0.01)
    r = router(transport, dep("a", price=1e-7), dep("b", price=1e-6))
    result = await r.route(task="hi", strategy=Race(hedge_after=0.02))
    assert result.deployment == "b"
    assert transport.cancelled == ["a"]  # nobody waited for a
    by_name = {a.deployment: a for a in result.attempts}
    assert by_name["a"].error_kind == "cancelled"
    assert by_name["a"].cost_usd > 0  # the loser's prompt is paid for, and counted
    assert by_name["b"].hedge
    assert result.cost == pytest.approx(sum(a.cost_usd for a in result.attempts))
    assert r.state("a").inflight == 0


async def test_race_without_hedge_when_primary_fast(transport: FakeTransport) -> None:
    r = router(transport, dep("a", price=1e-7), dep("b", price=1e-6))
    # a answers at once; the hedge would fire after 30 s, so a stalled loop cannot trigger it.
    result = await r.route(task="hi", strategy=Race(hedge_after=30.0))
    assert result.deployment == "a"
    assert len(result.attempts) == 1


async def test_race_fails_over_when_primary_errors(transport: FakeTransport) -> None:
    transport.behaviours["a"] = Behaviour(fail_rate=1.0)
    r = router(transport, dep("a", price=1e-7), dep("b", price=1e-6))
    result = await r.route(task="hi", strategy=Race(hedge_after=5.0))
    assert result.deployment == "b"


async def test_parallel_best_uses_scorer(transport: FakeTransport) -> None:
    transport.behaviours["a"] = Behaviour(content="short")
    transport.behaviours["b"] = Behaviour(content="a much longer answer")
    r = router(transport, dep("a", quality=0.8), dep("b", quality=0.8), dep("c", quality=0.1))
    result = await r.route(task="hi", strategy=ParallelBest(2))
    assert result.content == "a much longer answer"
    assert sorted(transport.calls) == ["a", "b"]
    assert len(result.attempts) == 2
    assert result.cost == pytest.approx(sum(a.cost_usd for a in result.attempts))
    picky = await r.route(task="hi", strategy=ParallelBest(2, scorer=lambda answers: 0))
    assert picky.deployment == "a"


async def test_parallel_best_falls_back_when_all_fail(transport: FakeTransport) -> None:
    transport.behaviours["a"] = Behaviour(fail_rate=1.0)
    transport.behaviours["b"] = Behaviour(fail_rate=1.0)
    r = router(transport, dep("a", quality=0.9), dep("b", quality=0.8), dep("c", quality=0.1))
    result = await r.route(task="hi", strategy="parallel_best")
    assert result.deployment == "c"


async def test_tools_and_params_reach_the_transport(transport: FakeTransport) -> None:
    transport.behaviours["t"] = Behaviour(tool_call=True)
    r = router(transport, dep("n", tools=False, price=0.0), dep("t", price=1e-6))
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    result = await r.route(
        task="weather?", tools=tools, tool_choice="auto", max_tokens=50, temperature=0.1
    )
    assert result.deployment == "t"
    assert result.tool_calls[0].name == "get_weather"
    assert transport.params[-1] == {
        "tools": tools,
        "tool_choice": "auto",
        "max_tokens": 50,
        "temperature": 0.1,
    }


async def test_context_window_trim_or_raise(
    transport: FakeTransport, caplog: pytest.LogCaptureFixture
) -> None:
    r = router(transport, dep("small", window=300))
    history = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "pinned fact", "pinned": True},
    ]
    for i in range(20):
        history += [
            {"role": "user", "content": f"question {i} " + "x" * 200},
            {"role": "assistant", "content": f"answer {i} " + "y" * 200},
        ]
    history.append({"role": "user", "content": "last question"})
    with pytest.raises(ContextWindowExceededError, match="allow_trim=True"):
        await r.route(messages=history)
    result = await r.route(messages=history, allow_trim=True, max_tokens=50)
    sent = transport.messages[-1]
    assert sent[0]["content"] == "be brief"
    assert sent[1]["content"] == "pinned fact"
    assert "pinned" not in sent[1]
    assert sent[-1]["content"] == "last question"
    assert len(sent) < len(history)
    assert any("history trimmed" in w for w in result.decision.warnings)
    assert any("history trimmed" in rec.getMessage() for rec in caplog.records)


async def test_feedback_shifts_future_routing(transport: FakeTransport) -> None:
    r = router(
        transport,
        dep("a", quality=0.8, price=1e-7),
        dep("b", quality=0.75, price=1e-6),
        strategy="quality_first",
    )
    first = await r.route(task="hi")
    assert first.deployment == "a"
    for _ in range(5):
        r.record_feedback(first.request_id, 0.0)
    assert (await r.route(task="hi")).deployment == "b"
    with pytest.raises(ConfigurationError, match="unknown request id"):
        r.record_feedback("nope", 1.0)
    with pytest.raises(ConfigurationError, match=r"\[0, 1\]"):
        r.record_feedback(first.request_id, 2.0)


async def test_stream_fails_over_before_first_token(transport: FakeTransport) -> None:
    transport.behaviours["a"] = Behaviour(fail_rate=1.0)
    transport.behaviours["b"] = Behaviour(content="hello there", tool_call=True)
    r = router(transport, dep("a", price=1e-7), dep("b", price=1e-6))
    stream = r.stream(task="hi")
    assert stream.decision.chosen is not None
    assert stream.decision.chosen.name == "a"
    text = "".join([c.content async for c in stream])
    assert text == "hello there "
    assert stream.result is not None
    assert stream.result.deployment == "b"
    assert stream.result.output_tokens == 10
    assert stream.result.tool_calls[0].arguments == '{"city": "Paris"}'
    assert [a.ok for a in stream.result.attempts] == [False, True]


async def test_stream_error_after_first_token_reaches_caller() -> None:
    class Broken(FakeTransport):
        async def stream(self, d, messages, params):  # type: ignore[no-untyped-def,override]
            self.calls.append(d.name)
            yield __import__("aipowertools.router", fromlist=["Chunk"]).Chunk(content="partial")
            raise TransientProviderError("dropped", provider="openai", model=d.model)

    t = Broken()
    r = router(t, dep("a"), dep("b"))
    got: list[str] = []

    async def consume() -> None:
        async for chunk in r.stream(task="hi", strategy="fallback"):
            got.append(chunk.content)

    with pytest.raises(TransientProviderError):
        await consume()
    assert got == ["partial"]
    assert t.calls == ["a"]  # never fails over after the first token
    assert r.state("a").failures == 1


async def test_stream_consumer_stops_early(transport: FakeTransport) -> None:
    transport.behaviours["a"] = Behaviour(content="one two three four")
    r = router(transport, dep("a"))
    stream = r.stream(task="hi")
    agen = stream.__aiter__()
    async for chunk in agen:
        if chunk.content:
            break
    await agen.aclose()  # type: ignore[attr-defined]
    assert r.state("a").inflight == 0


def test_sync_route_and_stream(transport: FakeTransport) -> None:
    r = router(transport, dep("a"))
    assert r.route_sync("hi").content == "answer from a"
    assert "".join(c.content for c in r.stream_sync("hi")) == "answer from a "


async def test_bad_arguments_are_typed(transport: FakeTransport) -> None:
    r = router(transport, dep("a"))
    with pytest.raises(ConfigurationError, match="exactly one"):
        await r.route()
    with pytest.raises(ConfigurationError, match="complexity_score"):
        await r.route(task="x", complexity_score=3)
    with pytest.raises(ConfigurationError, match="required_quality"):
        await r.route(task="x", required_quality=-1)
    with pytest.raises(ConfigurationError, match="max_tokens"):
        await r.route(task="x", max_tokens=0)
    with pytest.raises(ConfigurationError, match="role"):
        await r.route(messages=[{"content": "no role"}])
    with pytest.raises(ConfigurationError, match="budget_usd_per_month"):
        LLMRouter([dep("a")], budget_usd_per_month=0, catalog={})
    with pytest.raises(ConfigurationError, match="no deployment named"):
        r.state("zzz")


def test_add_remove_and_seed_shape() -> None:
    r = LLMRouter(
        local_models=["llama3", "llamacpp/qwen"],
        llamacpp_url="http://127.0.0.1:8080",
        cloud_providers=[dep("gpt")],
        catalog={},
    )
    names = [d.name for d in r.deployments]
    assert names == ["ollama_chat/llama3@localhost:11434", "llamacpp/qwen", "gpt"]
    assert all(d.local for d in r.deployments[:2])
    assert r.deployments[1].api_base == "http://127.0.0.1:8080/v1"
    r.add_deployment(dep("extra"))
    r.remove_deployment("gpt")
    assert [d.name for d in r.deployments][-1] == "extra"
    assert "extra" in repr(r)
    with pytest.raises(ConfigurationError, match="llamacpp_url"):
        LLMRouter(local_models=["llamacpp/x"], catalog={})


async def test_decide_without_calling(transport: FakeTransport) -> None:
    r = router(transport, dep("a", tools=False), dep("b"))
    decision = r.decide("hi", needs_tools=True)
    assert decision.chosen is not None
    assert decision.chosen.name == "b"
    assert transport.calls == []


async def test_deployment_rate_limits_fail_over(transport: FakeTransport) -> None:
    r = router(
        transport,
        dep("a", price=1e-7, rpm=2, tpm=10_000, timeout=0.2),
        dep("b", price=1e-6),
        rate_limit_store="memory://",
    )
    names = [(await r.route(task="hi")).deployment for _ in range(4)]
    assert names[:2] == ["a", "a"]
    assert names[2:] == ["b", "b"]  # a's own limit is used up; it is parked, not hammered
    assert transport.calls.count("a") == 2
    r.remove_deployment("a")
    assert r._executor.limiter is None


async def test_route_opens_a_span(transport: FakeTransport) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from aipowertools.router import _telemetry

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    old = _telemetry.use(provider)
    try:
        transport.behaviours["a"] = Behaviour(fail_rate=1.0)
        r = router(transport, dep("a", price=1e-7), dep("b", price=1e-6))
        result = await r.route(task="hi")
        transport.behaviours["a"] = Behaviour(fail_rate=1.0, error=ContentPolicyError)
        with pytest.raises(ContentPolicyError):
            await r.route(task="hi", deployments=["a"])
    finally:
        _telemetry.restore(old)
    spans = exporter.get_finished_spans()
    ok, failed = (s for s in spans if s.name == "aipowertools.router.route")
    assert ok.name == "aipowertools.router.route"
    assert ok.attributes["aipowertools.router.deployment"] == "b"
    assert ok.attributes["aipowertools.router.attempts"] == 2
    assert ok.attributes["aipowertools.request_id"] == result.request_id
    assert not failed.status.is_ok


def test_default_transport_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from aipowertools.router import LiteLLMTransport, OpenAICompatibleTransport

    monkeypatch.delenv("AIPOWERTOOLS_ROUTER_TRANSPORT", raising=False)
    assert isinstance(LLMRouter([dep("a")], catalog={}).transport, OpenAICompatibleTransport)
    monkeypatch.setenv("AIPOWERTOOLS_ROUTER_TRANSPORT", "litellm")
    assert isinstance(LLMRouter([dep("a")], catalog={}).transport, LiteLLMTransport)
    monkeypatch.setenv("AIPOWERTOOLS_ROUTER_TRANSPORT", " Direct ")
    assert isinstance(LLMRouter([dep("a")], catalog={}).transport, OpenAICompatibleTransport)
    monkeypatch.setenv("AIPOWERTOOLS_ROUTER_TRANSPORT", "httpx")
    with pytest.raises(ConfigurationError, match="AIPOWERTOOLS_ROUTER_TRANSPORT='httpx'"):
        LLMRouter([dep("a")], catalog={})
    transport = FakeTransport()  # an explicit transport wins over the environment
    assert LLMRouter([dep("a")], catalog={}, transport=transport).transport is transport

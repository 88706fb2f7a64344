"""The router with a response cache: a hit answers before routing, budget and rate limits."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from llama_index.core.base.llms.types import ChatMessage, MessageRole

from aipowertools.cache import LLMCache
from aipowertools.core import CostTracker
from aipowertools.core.errors import ConfigurationError
from aipowertools.router import LLMRouter
from aipowertools.router.langchain import RouterChatModel
from aipowertools.router.llama_index import RouterLLM

from .conftest import Behaviour, FakeTransport, dep


def make(transport: FakeTransport, cache: Any, rpm: int | None = None, **kw: Any) -> LLMRouter:
    return LLMRouter(
        [dep("cheap", price=1e-7, quality=0.7, rpm=rpm)], transport=transport, catalog={},
        cache=cache, **kw,
    )  # fmt: skip


async def test_a_hit_answers_before_routing_budget_and_rate_limits() -> None:
    transport = FakeTransport()
    tracker = CostTracker(store="memory://", budget_usd=1.0)
    cache = LLMCache("memory://")
    router = make(transport, cache, rpm=1, cost_tracker=tracker)
    first = await router.route("What is the capital of France?", temperature=0)
    assert first.cache == "miss"
    assert transport.calls == ["cheap"]
    # rpm=1: a second provider call would have to wait for the limiter; a hit never asks it
    second = await router.route("What is the capital of France?", temperature=0)
    assert second.cache == "hit"
    assert second.content == first.content
    assert second.cost == 0.0
    assert second.attempts == []
    assert second.decision.strategy == "cache"
    assert transport.calls == ["cheap"]
    hits = [r for r in tracker.records() if "cache:hit" in r.tags]
    assert len(hits) == 1
    assert hits[0].cost_usd == 0.0
    assert hits[0].saved_usd == pytest.approx(first.cost)
    assert tracker.saved_usd() == pytest.approx(first.cost)


async def test_another_temperature_is_another_request() -> None:
    transport = FakeTransport()
    router = make(transport, LLMCache("memory://"))
    await router.route("What is the capital of France?", temperature=0)
    third = await router.route("What is the capital of France?", temperature=1)
    assert third.cache == "miss"
    assert transport.calls == ["cheap", "cheap"]


async def test_routing_options_that_change_the_model_are_in_the_key() -> None:
    transport = FakeTransport()
    router = LLMRouter(
        [dep("cheap", price=1e-7), dep("big", price=1e-5, quality=0.95)],
        transport=transport, catalog={}, cache=LLMCache("memory://"),
    )  # fmt: skip
    await router.route("hi", deployments=["cheap"])
    assert (await router.route("hi", deployments=["cheap"])).cache == "hit"
    assert (await router.route("hi", deployments=["big"])).cache == "miss"
    assert (await router.route("hi", required_quality=0.9)).cache == "miss"


async def test_streams_are_cached_and_replayed_as_streams() -> None:
    transport = FakeTransport(behaviours={"cheap": Behaviour(content="Paris is the capital")})
    router = make(transport, LLMCache("memory://"))
    stream = router.stream("Capital?")
    live = [c.content async for c in stream]
    assert stream.result is not None
    assert stream.result.cache == "miss"
    replay = router.stream("Capital?")
    chunks = [c async for c in replay]
    assert [c.content for c in chunks[:-1]] == [text for text in live if text]
    assert chunks[-1].output_tokens == 10  # usage comes last
    assert replay.result is not None
    assert replay.result.cache == "hit"
    assert transport.calls == ["cheap"]
    # and a routed call of the same request is answered by the streamed one
    assert (await router.route("Capital?")).content == "Paris is the capital "


async def test_failures_are_not_cached() -> None:
    transport = FakeTransport(behaviours={"cheap": Behaviour(fail_rate=1.0)})
    cache = LLMCache("memory://")
    router = make(transport, cache)
    for _ in range(2):
        with pytest.raises(Exception, match="failed"):
            await router.route("hi")
    assert cache.stats().hits == 0


async def test_confidential_requests_skip_a_shared_cache() -> None:
    transport = FakeTransport()
    shared = LLMCache("redis://127.0.0.1:1/0")  # never contacted for confidential requests
    router = LLMRouter([dep("local", local=True)], transport=transport, catalog={}, cache=shared)
    result = await router.route("my secret", tags=["confidential"])
    assert result.cache == "miss"
    assert shared.stats().errors == 0


def test_cache_argument_is_checked() -> None:
    with pytest.raises(ConfigurationError, match="cache"):
        LLMRouter([dep("a")], catalog={}, cache="memory://")  # type: ignore[arg-type]


def test_langchain_response_metadata_says_hit_or_miss() -> None:
    transport = FakeTransport()
    llm = RouterChatModel(router=make(transport, LLMCache("memory://")))
    first = llm.invoke([HumanMessage("hi")])
    second = llm.invoke([HumanMessage("hi")])
    assert first.response_metadata["cache"] == "miss"
    assert second.response_metadata["cache"] == "hit"
    assert first.content == second.content
    streamed = list(llm.stream([HumanMessage("hi")]))
    assert any(c.response_metadata.get("cache") == "hit" for c in streamed)
    assert transport.calls == ["cheap"]
    plain = RouterChatModel(router=make(FakeTransport(), None))
    assert "cache" not in plain.invoke([HumanMessage("hi")]).response_metadata


def test_semantic_hits_are_marked_in_llama_index_raw() -> None:
    def embed(text: str) -> list[float]:
        words = set(text.lower().strip("?").split())
        return [float(w in words) for w in ("capital", "france", "what", "is", "the", "tall")]

    transport = FakeTransport()
    llm = RouterLLM(router=make(transport, LLMCache("memory://", semantic=embed, threshold=0.9)))
    first = llm.chat([ChatMessage(role=MessageRole.USER, content="What is the capital of France?")])
    second = llm.chat([ChatMessage(role=MessageRole.USER, content="the capital of France is what")])
    assert first.raw["cache"] == "miss"
    assert second.raw["cache"] == "semantic"
    assert transport.calls == ["cheap"]

"""The LangChain BaseCache: langchain-tests suites on the embedded stores, a real chat model."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from langchain_core.caches import BaseCache
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, Generation
from langchain_tests.integration_tests.cache import AsyncCacheTestSuite, SyncCacheTestSuite

from aipowertools.cache import LLMCache
from aipowertools.cache.langchain import LangChainCache, model_of
from aipowertools.core import CostTracker


def _cache(url: str) -> LangChainCache:
    return LangChainCache(store=url, namespace="lc" + uuid.uuid4().hex[:10])


class TestMemorySync(SyncCacheTestSuite):
    @pytest.fixture
    def cache(self) -> BaseCache:
        return _cache("memory://")


class TestMemoryAsync(AsyncCacheTestSuite):
    @pytest.fixture
    async def cache(self) -> BaseCache:
        return _cache("memory://")


class TestDiskcacheSync(SyncCacheTestSuite):
    @pytest.fixture
    def cache(self, tmp_path: Path) -> BaseCache:
        return _cache(f"diskcache://{tmp_path}")


class TestDiskcacheAsync(AsyncCacheTestSuite):
    @pytest.fixture
    async def cache(self, tmp_path: Path) -> BaseCache:
        return _cache(f"diskcache://{tmp_path}")


def test_model_of_llm_string() -> None:
    assert model_of("[('_type', 'openai-chat'), ('model_name', 'gpt-4o-mini')]") == "gpt-4o-mini"
    assert model_of('{"kwargs": {"model": "claude-haiku"}}---x') == "claude-haiku"
    assert model_of("no model here") == "langchain"


def test_a_chat_model_answers_twice_from_one_call_and_the_ledger_sees_the_saving() -> None:
    tracker = CostTracker(store="memory://")
    cache = LangChainCache(LLMCache("memory://", cost_tracker=tracker))
    reply = AIMessage(
        "Paris.",
        usage_metadata={"input_tokens": 1000, "output_tokens": 500, "total_tokens": 1500},
        response_metadata={"finish_reason": "stop", "model_name": "gpt-4o-mini"},
    )
    model = GenericFakeChatModel(messages=iter([reply]), cache=cache)
    first = model.invoke("Capital of France?")
    second = model.invoke("Capital of France?")  # the fake has no second reply: from cache
    assert first.content == second.content == "Paris."
    assert cache.cache.stats().hits == 1
    assert len(tracker.records()) == 1


def test_filtered_answers_are_not_cached() -> None:
    cache = LangChainCache(store="memory://")
    blocked = ChatGeneration(
        message=AIMessage("", response_metadata={"finish_reason": "content_filter"})
    )
    cache.update("p", "llm", [blocked])
    assert cache.lookup("p", "llm") is None
    cache.update("p", "llm", [Generation(text="ok", generation_info={"finish_reason": "stop"})])
    assert cache.lookup("p", "llm") == [
        Generation(text="ok", generation_info={"finish_reason": "stop"})
    ]


def test_an_entry_that_is_not_generations_is_a_miss() -> None:
    engine = LLMCache("memory://")
    cache = LangChainCache(engine)
    engine.store({"not": "generations"}, messages="p", model="langchain", llm_string="llm")
    assert cache.lookup("p", "llm") is None
    engine.store("{not json", messages="q", model="langchain", llm_string="llm")
    assert cache.lookup("q", "llm") is None


async def test_async_update_records_usage() -> None:
    engine = LLMCache("memory://")
    cache = LangChainCache(engine, user="ann", tags=["faq"])
    gen = ChatGeneration(
        message=AIMessage(
            "hi",
            usage_metadata={"input_tokens": 7, "output_tokens": 3, "total_tokens": 10},
        )
    )
    await cache.aupdate("p", "[('model_name', 'gpt-4o-mini')]", [gen])
    hit: Any = await engine.alookup(
        "p", model="gpt-4o-mini", llm_string="[('model_name', 'gpt-4o-mini')]"
    )
    assert hit.input_tokens == 7
    assert hit.output_tokens == 3

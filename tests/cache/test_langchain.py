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


def test_chat_prompts_are_keyed_by_their_messages() -> None:
    from langchain_core.load import dumps as lc_dumps
    from langchain_core.messages import HumanMessage, SystemMessage

    from aipowertools.cache.langchain import messages_of

    def prompt(*messages: Any) -> str:
        return lc_dumps(list(messages))

    history_a = AIMessage("Hi!", id="run-1", response_metadata={"model_name": "x"})
    history_b = AIMessage("Hi!", id="run-2", response_metadata={"model_name": "y"})
    a = prompt(SystemMessage("Be brief."), HumanMessage("hi"), history_a, HumanMessage("Capital?"))
    b = prompt(SystemMessage("Be brief."), HumanMessage("hi"), history_b, HumanMessage("Capital?"))
    assert a != b
    assert isinstance(messages_of(a), list)
    assert messages_of("plain prompt") == "plain prompt"
    assert messages_of("[{not json") == "[{not json"
    assert messages_of('[{"lc": 2}]') == '[{"lc": 2}]'
    cache = LangChainCache(store="memory://")
    cache.update(a, LLM, [Generation(text="Paris.")])
    assert cache.lookup(b, LLM) == [Generation(text="Paris.")]  # ids and metadata do not count
    other = prompt(SystemMessage("Be verbose."), HumanMessage("Capital?"))
    assert cache.lookup(other, LLM) is None


def test_semantic_matching_embeds_the_last_user_message() -> None:
    from langchain_core.load import dumps as lc_dumps
    from langchain_core.messages import HumanMessage

    seen: list[str] = []

    def embed(text: str) -> list[float]:
        seen.append(text)
        return [1.0, 0.0] if "france" in text.lower() else [0.0, 1.0]

    cache = LangChainCache(LLMCache("memory://", semantic=embed, threshold=0.9))
    cache.update(lc_dumps([HumanMessage("Capital of France?")]), LLM, [Generation(text="Paris")])
    hit = cache.lookup(lc_dumps([HumanMessage("France: its capital?")]), LLM)
    assert hit == [Generation(text="Paris")]
    assert seen == ["Capital of France?", "France: its capital?"]


LLM = "[('_type', 'fake'), ('model_name', 'gpt-4o-mini')]"

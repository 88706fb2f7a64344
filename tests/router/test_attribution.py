"""Routed calls are attributed: arguments, an enclosing track_call, framework metadata.

And a routed call's keywords are checked: an unknown one is a ConfigurationError naming the
closest option (``complexity=`` is the seed's alias of ``complexity_score``).
"""

from __future__ import annotations

import logging
import time

import pytest

from aipowertools.core import CostTracker
from aipowertools.core.errors import BudgetExceededError, ConfigurationError
from aipowertools.router import LLMRouter

from .conftest import FakeTransport, dep


def _router(tracker: CostTracker | None = None) -> LLMRouter:
    return LLMRouter(
        deployments=[dep("a", price=1e-6)], transport=FakeTransport(), cost_tracker=tracker
    )


def _rows(tracker: CostTracker) -> list:
    return list(tracker.records())


async def test_route_arguments_reach_the_ledger_row() -> None:
    tracker = CostTracker(store="memory://")
    result = await _router(tracker).route(
        "hi", user="u1", task_name="summarize", session="s1", tags=["proj"]
    )
    (row,) = _rows(tracker)
    assert (row.user, row.task, row.session) == ("u1", "summarize", "s1")
    assert "proj" in row.tags
    assert row.request_id == result.request_id


async def test_per_user_and_per_task_budgets_apply_to_routed_calls() -> None:
    tracker = CostTracker(store="memory://")
    tracker.add_budget(1e-9, scope="user:alice", period="day")
    tracker.add_budget(1e-9, scope="task:expensive", period="day")
    router = _router(tracker)
    with pytest.raises(BudgetExceededError, match="user:alice"):
        await router.route("hi", user="alice")
    with pytest.raises(BudgetExceededError, match="task:expensive"):
        await router.route("hi", task_name="expensive")
    await router.route("hi", user="bob", task_name="cheap")  # other scopes: fine
    assert [r.user for r in _rows(tracker)] == ["bob"]


async def test_an_enclosing_track_call_records_the_routed_call_itself(
    caplog: pytest.LogCaptureFixture,
) -> None:
    routed, tracked = CostTracker(store="memory://"), CostTracker(store="memory://")
    router = _router(routed)
    with caplog.at_level(logging.WARNING, logger="aipowertools.core"):
        async with tracked.track_call("code_gen", user="u2", tags=["team"]) as span:
            result = await router.route("Generate code")
    assert "without span.record()" not in caplog.text
    (row,) = _rows(tracked)
    assert span.result is not None
    assert span.result.request_id == row.request_id
    assert row.request_id == result.request_id
    assert (row.task, row.user) == ("code_gen", "u2")
    assert row.cost_usd == pytest.approx(result.cost, abs=1e-12)
    assert row.cost_usd > 0
    assert row.input_tokens == result.input_tokens
    # the router's own row carries the span's attribution too
    (own,) = _rows(routed)
    assert (own.task, own.user) == ("code_gen", "u2")
    assert "team" in own.tags


async def test_a_track_call_on_the_routers_own_tracker_is_one_row() -> None:
    tracker = CostTracker(store="memory://")
    router = _router(tracker)
    async with tracker.track_call("one") as span:
        await router.route("hi")
        await router.route("hi again")
    rows = _rows(tracker)
    assert len(rows) == 2  # one per routed call, none for the span itself
    assert {r.task for r in rows} == {"one"}
    assert span.reservation is None or span.reservation.done


async def test_a_router_without_a_tracker_still_feeds_the_span() -> None:
    tracked = CostTracker(store="memory://")
    async with tracked.track_call("code_gen"):
        result = await _router().route("hi")
    (row,) = _rows(tracked)
    assert row.cost_usd == pytest.approx(result.cost)
    assert row.task == "code_gen"


def test_sync_calls_see_the_enclosing_span() -> None:
    tracked = CostTracker(store="memory://")
    router = _router()
    with tracked.track_call("sync-task"):
        router.route_sync("hi")
        chunks = list(router.stream_sync("hi"))
    assert chunks
    rows = _rows(tracked)
    assert len(rows) == 2
    assert {r.task for r in rows} == {"sync-task"}


def test_langchain_config_metadata_reaches_the_ledger() -> None:
    from aipowertools.router.langchain import RouterChatModel

    tracker = CostTracker(store="memory://")
    chat = RouterChatModel(router=_router(tracker))
    chat.invoke(
        "hi", config={"metadata": {"user_id": "u9", "task": "t9", "thread_id": "th"}, "tags": ["x"]}
    )
    list(chat.stream("hi", config={"metadata": {"user": "u10"}}))
    first, second = sorted(_rows(tracker), key=lambda r: r.user or "")
    assert (first.user, first.task, first.session) == ("u10", None, None)
    assert (second.user, second.task, second.session) == ("u9", "t9", "th")
    assert "x" in second.tags


def test_llama_index_instrument_tags_reach_the_ledger() -> None:
    from llama_index.core.base.llms.types import ChatMessage
    from llama_index.core.instrumentation.dispatcher import instrument_tags

    from aipowertools.router.llama_index import RouterLLM

    tracker = CostTracker(store="memory://")
    llm = RouterLLM(router=_router(tracker))
    with instrument_tags({"user": "u7", "task": "rag"}):
        llm.chat([ChatMessage(role="user", content="hi")])
    (row,) = _rows(tracker)
    assert (row.user, row.task) == ("u7", "rag")


async def test_unknown_keywords_are_refused_naming_the_closest_option() -> None:
    router = _router()
    with pytest.raises(
        ConfigurationError, match=r"complexity_scor=.*did you mean complexity_score"
    ):
        await router.route("hi", complexity_scor=0.7)
    with pytest.raises(ConfigurationError, match=r"temprature=.*did you mean temperature"):
        router.stream("hi", temprature=0.2)
    with pytest.raises(ConfigurationError, match="not both"):
        await router.route("hi", complexity=0.2, complexity_score=0.3)
    with pytest.raises(ConfigurationError, match="user must be a string"):
        await router.route("hi", user=7)  # type: ignore[arg-type]


async def test_complexity_is_the_seed_alias_of_complexity_score() -> None:
    transport = FakeTransport()
    router = LLMRouter(deployments=[dep("a")], transport=transport)
    result = await router.route(task="Generate code", complexity=0.7)
    assert result.decision.complexity == 0.7
    assert "complexity" not in transport.params[-1]  # never forwarded to the provider
    await router.route("hi", temperature=0.1, seed=3, extra_body={"k": 1})  # provider params
    assert transport.params[-1]["seed"] == 3


def test_a_router_without_arguments_takes_its_deployments_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "MISTRAL_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AIPOWERTOOLS_ROUTER_MODELS", "openai/gpt-4o-mini, openai/gpt-4o")
    assert [d.name for d in LLMRouter().deployments] == ["openai/gpt-4o-mini", "openai/gpt-4o"]
    monkeypatch.delenv("AIPOWERTOOLS_ROUTER_MODELS")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-x")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9/anthropic")
    names = [d.name for d in LLMRouter().deployments]
    assert names == [
        "anthropic/claude-haiku-4-5@127.0.0.1:9",
        "anthropic/claude-sonnet-4-5@127.0.0.1:9",
    ]
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    assert LLMRouter().deployments == []


def test_ollama_host_sets_where_local_models_are_served(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:11500")
    (d,) = LLMRouter(local_models=["llama3"]).deployments
    assert d.api_base == "http://127.0.0.1:11500"
    monkeypatch.setenv("OLLAMA_HOST", "https://gpu-box:443")
    assert LLMRouter(local_models=["llama3"]).ollama_url == "https://gpu-box:443"
    monkeypatch.delenv("OLLAMA_HOST")
    assert LLMRouter(local_models=["llama3"]).ollama_url == "http://localhost:11434"


async def test_a_library_warning_is_never_a_provider_error() -> None:
    """A warning made an exception by a warnings filter reaches the caller as itself."""
    from aipowertools.core.errors import ProviderError

    class Warns(FakeTransport):
        async def complete(self, d, messages, params):  # type: ignore[no-untyped-def]
            raise DeprecationWarning("litellm: this parameter was renamed")

    tracker = CostTracker(store="memory://")
    router = LLMRouter(deployments=[dep("a")], transport=Warns(), cost_tracker=tracker)
    with pytest.raises(DeprecationWarning, match="renamed") as raised:
        await router.route("hi")
    assert not isinstance(raised.value, ProviderError)
    state = router.engine.states["a"]
    assert state.available(time.monotonic())  # not the deployment's fault: not parked
    assert state.inflight == 0
    (row,) = _rows(tracker)
    assert row.status == "warning"

"""One cost function on every path: router, LangChain handler, LlamaIndex handler, to 1e-9.

Every provider cassette (``tests/cassettes``) and simulator replies with cached, reasoning
and tiered tokens are sent through ``LLMRouter.route`` / ``stream``, through
``RouterChatModel`` with the ``CostCallbackHandler`` and through ``RouterLLM`` with the
LlamaIndex instrumentation; every figure (the result's cost, each ledger row) must equal
core's ``cost()`` of the provider's own usage payload, read independently of the router.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from aipowertools.core import CostTracker, ModelCatalog, PriceTier, Usage, cost, default_catalog
from aipowertools.router import Deployment, LLMRouter
from aipowertools.router._transport import LiteLLMTransport
from aipowertools.testing import SimModel, Simulator

pytestmark = [
    pytest.mark.filterwarnings("ignore:Item .* is using the `ReadOnly` qualifier:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*langchain-community.*:DeprecationWarning"),
]

CASSETTE_DIR = Path(__file__).parents[2] / "cassettes"
CASSETTES = sorted(CASSETTE_DIR.glob("*.yaml"))
KEY = "sk-test-not-a-real-key-000000"
# model, catalog model to price at (litellm's map lacks two of the recorded models), extras
CASES: dict[str, dict[str, Any]] = {
    "openai_chat": {"model": "openai/gpt-4.1"},
    "openai_chat_stream": {"model": "openai/gpt-4o-mini", "stream": True},
    "openai_tools": {"model": "openai/gpt-4.1"},
    "openai_cached_reasoning": {"model": "openai/o3-mini"},
    "anthropic_messages_cache": {
        "model": "anthropic/claude-3-5-sonnet-20241022",
        "catalog_model": "claude-sonnet",
    },
    "gemini_generate_content": {
        "model": "gemini/gemini-2.0-flash",
        "catalog_model": "gemini-flash",
    },
    "mistral_chat": {"model": "mistral/mistral-small-latest"},
    "ollama_chat": {"model": "ollama_chat/llama3.2", "api_base": "http://localhost:11434"},
}


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=0, abs_tol=1e-9)


def _vcr(path: Path) -> Any:
    import vcr

    return vcr.use_cassette(
        str(path),
        record_mode="none",
        match_on=["method", "scheme", "host", "port", "path"],
        allow_playback_repeats=True,
    )


def _expected(path: Path, case: dict[str, Any]) -> float:
    """Core's cost of the provider's own usage payload, replayed straight through litellm."""
    from aipowertools.core import litellm

    lt = litellm()
    call = {k: v for k, v in case.items() if k in ("model", "api_base")}
    stream = case.get("stream", False)
    with _vcr(path):
        response = lt.completion(
            messages=[{"role": "user", "content": "Hello!"}],
            num_retries=0,
            api_key=KEY,
            stream=stream,
            **({"stream_options": {"include_usage": True}} if stream else {}),
            **call,
        )
        if stream:
            response = lt.stream_chunk_builder(list(response))
    info = default_catalog().get(case.get("catalog_model") or case["model"])
    return cost(Usage.from_any(response), info)


def _router(case: dict[str, Any], tracker: CostTracker) -> LLMRouter:
    local = case["model"].startswith("ollama")
    d = Deployment(
        case["model"],
        api_base=case.get("api_base"),
        api_key=KEY,
        local=local,
        catalog_model=case.get("catalog_model"),
    )
    return LLMRouter(deployments=[d], transport=LiteLLMTransport(), cost_tracker=tracker)


def _only_row(tracker: CostTracker) -> Any:
    rows = list(tracker.records())
    assert len(rows) == 1, rows
    return rows[0]


@pytest.mark.parametrize("path", CASSETTES, ids=[p.stem for p in CASSETTES])
def test_every_cassette_costs_the_same_on_every_path(path: Path) -> None:
    from langchain_core.messages import HumanMessage
    from llama_index.core.base.llms.types import ChatMessage

    from aipowertools.callbacks.langchain import CostCallbackHandler
    from aipowertools.callbacks.llama_index import instrument
    from aipowertools.router.langchain import RouterChatModel
    from aipowertools.router.llama_index import RouterLLM

    assert path.stem in CASES, f"new cassette {path.name}: add how to call it to CASES here"
    case = CASES[path.stem]
    expected = _expected(path, case)
    if not case["model"].startswith("ollama"):
        assert expected > 0
    routed, handled, indexed = (CostTracker(store="memory://") for _ in range(3))
    router = _router(case, routed)
    chat = RouterChatModel(router=router)
    llm = RouterLLM(router=router)
    handler = CostCallbackHandler(handled)
    with _vcr(path):
        if case.get("stream"):
            assert "".join(c.content for c in router.stream_sync("Hello!"))
            result_cost = _only_row(routed).cost_usd
            list(chat.stream([HumanMessage("Hello!")], config={"callbacks": [handler]}))
        else:
            result_cost = router.route_sync("Hello!").cost
            chat.invoke([HumanMessage("Hello!")], config={"callbacks": [handler]})
        instrumentation = instrument(indexed, spans=False)
        try:
            if case.get("stream"):
                list(llm.stream_chat([ChatMessage(role="user", content="Hello!")]))
            else:
                llm.chat([ChatMessage(role="user", content="Hello!")])
        finally:
            instrumentation.uninstrument()
    figures = {
        "route result": result_cost,
        "router ledger": sum(r.cost_usd for r in routed.records()) / 3,  # route, chat, llm
        "langchain handler": _only_row(handled).cost_usd,
        "llama_index handler": _only_row(indexed).cost_usd,
    }
    for where, figure in figures.items():
        assert _close(figure, expected), (path.stem, where, figure, expected)


def _tiered_catalog() -> ModelCatalog:
    catalog = ModelCatalog(model_map={}, curated=False)
    catalog.add(
        id="gpt-4o-mini",
        provider="openai",
        input_cost_per_token=1e-6,
        output_cost_per_token=4e-6,
        cache_read_input_token_cost=2.5e-7,
        output_cost_per_reasoning_token=8e-6,
        price_tiers=(
            PriceTier(above_tokens=10, input_cost_per_token=2e-6, output_cost_per_token=6e-6),
        ),
        context_window=128_000,
        max_output_tokens=4096,
    )
    return catalog


@pytest.mark.parametrize("transport", ["direct", "litellm"])
@pytest.mark.parametrize("stream", [False, True], ids=["route", "stream"])
def test_simulator_cached_reasoning_and_tiered_tokens(transport: str, stream: bool) -> None:
    catalog = _tiered_catalog()
    info = catalog.get("gpt-4o-mini")
    tracker = CostTracker(store="memory://")
    prompt = "Explain the difference between a list and a tuple in Python, briefly please."
    with Simulator(
        models=[SimModel("gpt-4o-mini", reply="A reply", cached_tokens=8, reasoning_tokens=5)]
    ) as sim:
        d = Deployment(
            "openai/gpt-4o-mini", api_base=sim.base_url("openai"), api_key=KEY, local=False
        )
        router = LLMRouter(
            deployments=[d],
            catalog=catalog,
            cost_tracker=tracker,
            transport=LiteLLMTransport() if transport == "litellm" else None,
        )
        if stream:
            chunks = list(router.stream_sync(prompt))
            assert chunks
            # the last stream's result, read from the ledger below
        else:
            result = router.route_sync(prompt)
            assert result.usage.cached_input_tokens == 8
            assert result.usage.reasoning_tokens == 5
        assert sim.wait_idle()
        stats = sim.stats()
    usage = Usage(
        input_tokens=stats.prompt_tokens,
        output_tokens=stats.completion_tokens,
        cached_input_tokens=8,
        reasoning_tokens=5,
    )
    assert usage.input_tokens > 10  # past the tier
    expected = cost(usage, info)
    row = _only_row(tracker)
    assert (row.cached_input_tokens, row.reasoning_tokens) == (8, 5)
    assert _close(row.cost_usd, expected), (row.cost_usd, expected)
    if not stream:
        assert _close(result.cost, expected)


def test_chat_openai_with_the_handler_and_the_router_agree_on_cached_tokens() -> None:
    """The issue's figures: a 1,513-token prompt with 1,024 cached tokens, on both paths."""
    import httpx
    from langchain_openai import ChatOpenAI

    from aipowertools.callbacks.langchain import CostCallbackHandler

    prompt = " ".join(["word"] * 1500)
    model = SimModel("gpt-4o-mini", reply="ok", cached_tokens=1024)
    via_router, via_handler = CostTracker(store="memory://"), CostTracker(store="memory://")
    with Simulator(models=[model]) as sim:
        router = LLMRouter(
            deployments=[
                Deployment(
                    "openai/gpt-4o-mini", api_base=sim.base_url("openai"), api_key=KEY, local=False
                )
            ],
            cost_tracker=via_router,
        )
        routed = router.route_sync(prompt)
        with httpx.Client() as client:
            chat = ChatOpenAI(
                model="gpt-4o-mini",
                base_url=sim.base_url("openai"),
                api_key=KEY,  # type: ignore[arg-type]
                max_retries=0,
                http_client=client,
            )
            chat.invoke(prompt, config={"callbacks": [CostCallbackHandler(via_handler)]})
    assert routed.usage.cached_input_tokens == 1024
    handler_row = _only_row(via_handler)
    assert handler_row.input_tokens == routed.usage.input_tokens
    assert _close(routed.cost, handler_row.cost_usd)
    assert _close(_only_row(via_router).cost_usd, handler_row.cost_usd)
    # cached tokens are billed at the cache-read price, not in full
    full = cost(Usage(routed.usage.input_tokens, routed.usage.output_tokens), "gpt-4o-mini")
    assert routed.cost < full

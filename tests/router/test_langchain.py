from __future__ import annotations

import asyncio
import importlib
import json
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.load import dumpd, dumps, load, loads
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage
from langchain_core.prompts import (
    ChatPromptTemplate,
    HumanMessagePromptTemplate,
    PromptTemplate,
)
from langchain_core.runnables import Runnable, RunnableSequence
from langchain_core.tools import tool
from langchain_tests.unit_tests import ChatModelUnitTests
from pydantic import BaseModel

from aipowertools.core.errors import ConfigurationError
from aipowertools.router import Deployment, LLMRouter, QualityFirst
from aipowertools.router.langchain import RouterChatModel, chat_model_deployment

from .conftest import Behaviour, FakeTransport, dep

# load() / loads() are marked beta by langchain-core.
pytestmark = pytest.mark.filterwarnings(
    "ignore::langchain_core._api.beta_decorator.LangChainBetaWarning"
)


def make_router(transport: FakeTransport | None = None) -> LLMRouter:
    return LLMRouter(
        [dep("cheap", price=1e-7, quality=0.7), dep("big", price=1e-5, quality=0.95)],
        transport=transport or FakeTransport(),
        catalog={},
    )


#: Prices for the catalog-priced deployments of the configurations below.
CATALOG = {
    m: {"input_cost_per_token": 1.5e-7, "output_cost_per_token": 6e-7}
    for m in ("gpt-4o-mini", "claude-haiku-4-5", "claude-sonnet-4-5")
}


def config(key: str = "sk-unit-cheap") -> dict[str, Any]:
    """A serializable configuration: every kind of deployment entry, a catalog, a strategy."""
    return {
        "deployments": [
            {"model": "openai/cheap", "name": "cheap", "input_cost_per_token": 1e-7,
             "output_cost_per_token": 4e-7, "quality": 0.7, "api_key": key, "tags": ["fast"]},
            Deployment("openai/big", name="big", input_cost_per_token=1e-5,
                       output_cost_per_token=4e-5, quality=0.95, params={"seed": 7}),
            "openai/gpt-4o-mini",
        ],
        "local_models": ["llama3"],
        "cloud_providers": ["anthropic"],
        "catalog": CATALOG,
        "strategy": "quality_first",
        "required_quality": 0.6,
    }  # fmt: skip


class TestRouterChatModelUnit(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return RouterChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return config()

    @pytest.fixture(autouse=True)
    def _loadable_with_allowed_objects_all(self) -> Iterator[None]:
        """Put RouterChatModel on the ``allowed_objects="all"`` list the standard tests load with.

        langchain-core (>= 1.2.5) lets ``load(..., allowed_objects="all")`` build only the
        classes listed in its own ``langchain_core.load.mapping`` (partner packages get listed
        there upstream), so no third-party class can pass the standard ``test_serdes`` as is.
        This adds ours to that list while the class's tests run; ``test_serdes`` itself runs
        unchanged. Users load with ``allowed_objects=[RouterChatModel]`` (tested below).
        """
        module = importlib.import_module("langchain_core.load.load")
        allowed = module._get_default_allowed_class_paths("all") | {tuple(RouterChatModel.lc_id())}
        with mock.patch.dict(module._default_class_paths_cache, {"all": allowed}):
            yield

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return (
            {"AIPOWERTOOLS_ROUTER_MODELS": "openai/gpt-4o-mini, openai/gpt-4o"},
            {
                "catalog": {
                    m: {"input_cost_per_token": 1e-7, "output_cost_per_token": 4e-7}
                    for m in ("gpt-4o-mini", "gpt-4o")
                }
            },
            {"deployment_names": ["openai/gpt-4o-mini", "openai/gpt-4o"]},
        )


@pytest.fixture
def llm(transport: FakeTransport) -> RouterChatModel:
    return RouterChatModel(router=make_router(transport))


def test_invoke_metadata_and_usage(llm: RouterChatModel) -> None:
    msg = llm.invoke("hello")
    assert isinstance(msg, AIMessage)
    assert msg.content == "answer from cheap"
    assert msg.usage_metadata == {"input_tokens": 20, "output_tokens": 10, "total_tokens": 30}
    meta = msg.response_metadata
    assert meta["model_name"] == "openai/cheap"
    assert meta["deployment"] == "cheap"
    assert meta["provider"] == "openai"
    assert meta["cost_usd"] == pytest.approx(20 * 1e-7 + 10 * 4e-7)
    assert meta["latency_ms"] > 0
    assert meta["decision"]["deployment"] == "cheap"
    assert "cheapest" in meta["decision"]["explanation"]


async def test_ainvoke_with_routing_overrides(llm: RouterChatModel) -> None:
    msg = await llm.ainvoke([SystemMessage("sys"), HumanMessage("hi")], required_quality=0.9)
    assert msg.response_metadata["deployment"] == "big"
    bound = llm.bind(required_quality=0.9)
    assert (await bound.ainvoke("hi")).response_metadata["deployment"] == "big"


def test_batch_and_lcel(llm: RouterChatModel) -> None:
    chain = ChatPromptTemplate.from_messages([("human", "Q: {q}")]) | llm
    out = chain.batch([{"q": "a"}, {"q": "b"}, {"q": "c"}])
    assert [m.content for m in out] == ["answer from cheap"] * 3


def test_stream_usage_and_metadata(llm: RouterChatModel) -> None:
    chunks = list(llm.stream("hi"))
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    total = chunks[0]
    for c in chunks[1:]:
        total = total + c
    assert total.content == "answer from cheap "
    assert total.usage_metadata == {"input_tokens": 20, "output_tokens": 10, "total_tokens": 30}
    assert total.response_metadata["deployment"] == "cheap"
    assert total.response_metadata["cost_usd"] > 0


async def test_astream_failover_before_first_token(transport: FakeTransport) -> None:
    transport.behaviours["cheap"] = Behaviour(fail_rate=1.0)
    llm = RouterChatModel(router=make_router(transport))
    chunks = [c async for c in llm.astream("hi")]
    assert "".join(str(c.content) for c in chunks) == "answer from big "
    assert chunks[-1].response_metadata["deployment"] == "big"


@tool
def get_weather(city: str) -> str:
    """Weather in a city."""
    return f"sunny in {city}"


def test_bind_tools_and_tool_calls(transport: FakeTransport) -> None:
    transport.behaviours["cheap"] = Behaviour(tool_call=True)
    llm = RouterChatModel(router=make_router(transport))
    msg = llm.bind_tools([get_weather], tool_choice="any").invoke("weather in Paris?")
    assert msg.tool_calls == [
        {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1", "type": "tool_call"}
    ]
    sent = transport.params[-1]
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    assert sent["tool_choice"] == "required"
    streamed = list(llm.bind_tools([get_weather]).stream("weather?"))
    total: Any = streamed[0]
    for c in streamed[1:]:
        total = total + c
    assert total.tool_calls[0]["args"] == {"city": "Paris"}


class Weather(BaseModel):
    city: str


def test_with_structured_output(transport: FakeTransport) -> None:
    transport.behaviours["cheap"] = Behaviour(tool_call=True, tool_name="Weather")
    llm = RouterChatModel(router=make_router(transport))
    out = llm.with_structured_output(Weather).invoke("where?")
    assert out == Weather(city="Paris")


def test_invalid_tool_arguments_are_reported(transport: FakeTransport) -> None:
    from aipowertools.router import Completion, ToolCall

    async def bad(d: Any, m: Any, p: Any) -> Completion:
        return Completion("", [ToolCall("c1", "f", "{not json")], 1, 1)

    transport.complete = bad  # type: ignore[method-assign,assignment]
    msg = RouterChatModel(router=make_router(transport)).invoke("x")
    assert msg.invalid_tool_calls[0]["name"] == "f"
    assert msg.tool_calls == []


def test_needs_router_or_models(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIPOWERTOOLS_ROUTER_MODELS", raising=False)
    with pytest.raises(ConfigurationError, match="AIPOWERTOOLS_ROUTER_MODELS"):
        RouterChatModel()
    with pytest.raises(ConfigurationError, match="must be an LLMRouter"):
        RouterChatModel(router="nope")


def test_ls_params(llm: RouterChatModel) -> None:
    params = llm._get_ls_params(stop=["x"], temperature=0.2, max_tokens=5)
    assert params == {
        "ls_provider": "aipowertools",
        "ls_model_name": "aipowertools-router",
        "ls_model_type": "chat",
        "ls_temperature": 0.2,
        "ls_max_tokens": 5,
        "ls_stop": ["x"],
    }


class _EchoModel(BaseChatModel):
    """A tiny LangChain model used as a deployment."""

    @property
    def _llm_type(self) -> str:
        return "echo"

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):  # type: ignore[no-untyped-def]
        from langchain_core.outputs import ChatGeneration, ChatResult

        text = f"echo: {messages[-1].content}"
        return ChatResult(
            generations=[
                ChatGeneration(
                    message=AIMessage(
                        text,
                        usage_metadata={"input_tokens": 3, "output_tokens": 2, "total_tokens": 5},
                    )
                )
            ]
        )


async def test_langchain_model_as_deployment() -> None:
    d = chat_model_deployment(
        _EchoModel(),
        name="echo",
        input_cost_per_token=1e-6,
        output_cost_per_token=2e-6,
        quality=0.6,
    )
    router = LLMRouter([d], catalog={})
    result = await router.route(task="ping")
    assert result.content == "echo: ping"
    assert result.cost == pytest.approx(3e-6 + 4e-6)
    stream = router.stream(task="pong")
    assert "".join([c.content async for c in stream]) == "echo: pong"
    assert stream.result is not None
    assert stream.result.output_tokens == 2


async def test_concurrent_ainvoke(llm: RouterChatModel) -> None:
    out = await asyncio.gather(*(llm.ainvoke(f"q{i}") for i in range(50)))
    assert len({m.response_metadata["request_id"] for m in out}) == 50


def test_create_agent_loop(transport: FakeTransport) -> None:
    from langchain.agents import create_agent

    from aipowertools.router import Completion, ToolCall

    async def scripted(d: Any, messages: Any, params: Any) -> Completion:
        transport.messages.append([dict(m) for m in messages])
        if messages[-1]["role"] == "tool":
            return Completion(f"It is {messages[-1]['content']}.", input_tokens=5, output_tokens=5)
        assert params["tools"][0]["function"]["name"] == "get_weather"
        return Completion("", [ToolCall("c1", "get_weather", '{"city": "Oslo"}')], 5, 5)

    transport.complete = scripted  # type: ignore[method-assign]
    agent = create_agent(RouterChatModel(router=make_router(transport)), tools=[get_weather])
    state = agent.invoke({"messages": [HumanMessage("Weather in Oslo?")]})
    assert state["messages"][-1].content == "It is sunny in Oslo."
    assert [m.type for m in state["messages"]] == ["human", "ai", "tool", "ai"]
    assert state["messages"][-1].response_metadata["deployment"] == "cheap"


# ---------------------------------------------------------------------- serialization
#: How a user loads a serialized RouterChatModel (an explicit allowlist, our namespace).
LOAD: dict[str, Any] = {"allowed_objects": [RouterChatModel], "valid_namespaces": ["aipowertools"]}


CHAIN_LOAD: dict[str, Any] = {
    **LOAD,
    "allowed_objects": [
        RouterChatModel, RunnableSequence, ChatPromptTemplate, HumanMessagePromptTemplate,
        PromptTemplate,
    ],
}  # fmt: skip


def _fields(d: Deployment) -> dict[str, Any]:
    return {name: getattr(d, name) for name in Deployment.__dataclass_fields__}


def _secret(secret_id: str) -> dict[str, Any]:
    return {"lc": 1, "type": "secret", "id": [secret_id]}


def test_lc_namespace_is_the_module_path() -> None:
    assert RouterChatModel.is_lc_serializable()
    assert RouterChatModel.get_lc_namespace() == ["aipowertools", "router", "langchain"]
    assert RouterChatModel.lc_id() == ["aipowertools", "router", "langchain", "RouterChatModel"]


def test_round_trip_rebuilds_the_same_router(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIPOWERTOOLS_STORE", "memory://")
    llm = RouterChatModel(
        **config(key="sk-deploy-1234"),
        api_key="sk-model-5678",
        budget_usd_per_month=25.0,
        model="my-router",
        temperature=0.3,
        max_tokens=200,
        stop=["END"],
        timeout=30.0,
        allow_trim=True,
    )
    text = dumps(llm)
    assert "sk-deploy-1234" not in text
    assert "sk-model-5678" not in text
    assert "sk-deploy-1234" not in repr(llm)
    kwargs = json.loads(text)["kwargs"]
    assert kwargs["api_key"] == _secret("AIPOWERTOOLS_ROUTER_API_KEY")
    assert kwargs["deployment_api_keys"] == {"cheap": _secret("AIPOWERTOOLS_ROUTER_API_KEY_CHEAP")}
    assert kwargs["deployments"][1] == {
        "model": "openai/big", "name": "big", "local": False, "input_cost_per_token": 1e-5,
        "output_cost_per_token": 4e-5, "quality": 0.95, "params": {"seed": 7},
    }  # fmt: skip

    secrets = {
        "AIPOWERTOOLS_ROUTER_API_KEY": "sk-model-5678",
        "AIPOWERTOOLS_ROUTER_API_KEY_CHEAP": "sk-deploy-1234",
    }
    loaded = loads(text, **LOAD, secrets_map=secrets)
    assert isinstance(loaded, RouterChatModel)
    assert loaded.router is not llm.router
    assert [_fields(d) for d in loaded.router.deployments] == [
        _fields(d) for d in llm.router.deployments
    ]
    assert loaded.deployment_names == [
        "cheap", "big", "openai/gpt-4o-mini", "ollama_chat/llama3@localhost:11434",
        "anthropic/claude-haiku-4-5", "anthropic/claude-sonnet-4-5",
    ]  # fmt: skip
    assert loaded.router.deployments[0].api_key == "sk-deploy-1234"
    assert loaded.router.deployments[0].tags == frozenset({"fast"})
    assert loaded.router.strategy.name == llm.router.strategy.name == "quality_first"
    assert loaded.router.budget_usd_per_month == 25.0
    assert loaded.router.cost_tracker is not None
    assert loaded.api_key is not None
    assert loaded.api_key.get_secret_value() == "sk-model-5678"
    for name in ("model_name", "temperature", "max_tokens", "stop", "timeout", "allow_trim",
                 "required_quality", "strategy", "catalog"):  # fmt: skip
        assert getattr(loaded, name) == getattr(llm, name), name
    assert loaded.asdict() == llm.asdict()
    assert dumps(loaded) == text
    # dumpd / load give the same model as dumps / loads.
    assert dumps(load(dumpd(llm), **LOAD, secrets_map=secrets)) == text

    # Without the secrets the model loads keyless (keys then come from the provider's
    # environment variable, as for any LangChain model).
    bare = loads(text, **LOAD)
    assert bare.api_key is None
    assert [d.api_key for d in bare.router.deployments] == [None] * 6
    assert bare.deployment_names == loaded.deployment_names


def test_loaded_model_answers_with_its_restored_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from aipowertools.core.errors import AuthenticationError
    from aipowertools.testing import SimModel, Simulator

    key = "sk-sim-9f3a71"
    with Simulator(models=[SimModel("gpt-4o-mini", reply="pong from the simulator")],
                   api_key=key) as sim:  # fmt: skip
        llm = RouterChatModel(
            deployments=[
                {"model": "openai/gpt-4o-mini", "name": "sim-mini", "local": False,
                 "api_base": sim.base_url("openai"), "api_key": key}
            ],
            catalog=CATALOG,
        )  # fmt: skip
        text = dumps(llm)
        assert key not in text
        loaded = loads(text, **LOAD, secrets_map={"AIPOWERTOOLS_ROUTER_API_KEY_SIM_MINI": key})
        msg = loaded.invoke("ping")
        assert msg.content == "pong from the simulator"
        assert msg.response_metadata["deployment"] == "sim-mini"
        assert msg.response_metadata["cost_usd"] > 0
        # The key really is what the simulator checks: without it the call is refused.
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
        with pytest.raises(AuthenticationError):
            loads(text, **LOAD).invoke("ping")


class _Catalog:
    def get(self, name: str) -> dict[str, float]:
        return {"input_cost_per_token": 1e-7, "output_cost_per_token": 1e-7}


def _unserializable() -> list[Any]:
    from aipowertools.core import CostTracker

    return [
        pytest.param(lambda: {"router": make_router()}, "live router=", id="router"),
        pytest.param(
            lambda: {**config(), "cost_tracker": CostTracker(store="memory://")},
            "cost_tracker=",
            id="cost_tracker",
        ),
        pytest.param(
            lambda: {**config(), "strategy": QualityFirst()}, "Strategy object", id="strategy"
        ),
        pytest.param(
            lambda: {**config(), "catalog": _Catalog()}, "catalog= is a _Catalog", id="catalog"
        ),
        pytest.param(
            lambda: {"deployments": [dep("a", transport=FakeTransport())], "catalog": {}},
            "deployment 'a' has a transport",
            id="transport",
        ),
        pytest.param(
            lambda: {"deployments": [dep("a", params={"client": object()})], "catalog": {}},
            "deployment 'a' has fields that are not plain JSON",
            id="params",
        ),
    ]


@pytest.mark.parametrize(("make", "reason"), _unserializable())
def test_live_objects_dump_to_not_implemented(make: Any, reason: str) -> None:
    llm = RouterChatModel(**make())
    problem = llm.serialization_problem()
    assert problem is not None
    assert reason in problem
    data = dumpd(llm)
    assert data["type"] == "not_implemented"
    assert data["id"] == RouterChatModel.lc_id()
    assert reason in data["repr"]
    with pytest.raises(NotImplementedError, match="doesn't implement serialization"):
        load(data, **LOAD)
    assert load(data, **LOAD, ignore_unserializable_fields=True) is None
    # Inside a chain too: the chain does not load into one without this model.
    with pytest.raises(NotImplementedError):
        loads(dumps(_chain(llm)), **CHAIN_LOAD)


def _chain(llm: RouterChatModel) -> Runnable[Any, Any]:
    return ChatPromptTemplate.from_messages([("human", "{q}")]) | llm


def test_chain_with_a_configured_model_round_trips() -> None:
    text = dumps(_chain(RouterChatModel(**config())))
    assert "sk-unit-cheap" not in text
    chain = loads(text, **CHAIN_LOAD)
    assert isinstance(chain, RunnableSequence)
    assert isinstance(chain.last, RouterChatModel)
    assert chain.last.router.strategy.name == "quality_first"
    assert len(chain.last.deployment_names) == 6


def test_model_with_live_router_still_runs_with_callbacks(transport: FakeTransport) -> None:
    from langchain_core.callbacks import BaseCallbackHandler

    seen: list[dict[str, Any]] = []

    class Recorder(BaseCallbackHandler):
        def on_chat_model_start(self, serialized: dict[str, Any], *args: Any, **kw: Any) -> None:
            seen.append(serialized)

    llm = RouterChatModel(router=make_router(transport))
    assert llm.invoke("hi", config={"callbacks": [Recorder()]}).content == "answer from cheap"
    assert seen[0]["type"] == "not_implemented"


def test_llm_cache_keys_tell_routers_apart(transport: FakeTransport) -> None:
    from langchain_core.caches import InMemoryCache

    cache = InMemoryCache()
    other = LLMRouter([dep("other")], transport=transport, catalog={})
    first = RouterChatModel(router=make_router(transport), cache=cache)
    second = RouterChatModel(router=other, cache=cache)
    assert first.invoke("hi").content == "answer from cheap"
    assert second.invoke("hi").content == "answer from other"
    assert first.invoke("hi").content == "answer from cheap"
    assert transport.calls == ["cheap", "other"]  # the third call came from the cache
    # Configured models are keyed on their serialized configuration (never on key values).
    key = RouterChatModel(**config())._get_llm_string()
    assert key == RouterChatModel(**config("sk-other"))._get_llm_string()
    assert key != RouterChatModel(**{**config(), "strategy": "cost_optimal"})._get_llm_string()
    assert "sk-unit-cheap" not in key


def test_dict_deployments_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="unknown Deployment field") as info:
        RouterChatModel(deployments=[{"model": "openai/x", "api_key": "sk-hidden", "qualty": 1}])
    assert "sk-hidden" not in str(info.value)
    with pytest.raises(ConfigurationError, match="needs 'model'"):
        RouterChatModel(deployments=[{"name": "x"}])
    with pytest.raises(ConfigurationError, match="got int"):
        RouterChatModel(local_models=[3])
    with pytest.raises(ConfigurationError, match="unknown routing strategy"):
        RouterChatModel(**{**config(), "strategy": "cheapest-please"})


def test_deployment_api_keys() -> None:
    llm = RouterChatModel(
        deployments=["openai/gpt-4o-mini"],
        catalog=CATALOG,
        deployment_api_keys={"openai/gpt-4o-mini": "sk-by-name"},
    )
    assert llm.router.deployments[0].api_key == "sk-by-name"
    assert "sk-by-name" not in dumps(llm)
    assert "sk-by-name" not in repr(llm)
    with pytest.raises(ConfigurationError, match="names no deployment"):
        RouterChatModel(**config(), deployment_api_keys={"nope": "k"})
    with pytest.raises(ConfigurationError, match="another one"):
        RouterChatModel(**config(key="a"), deployment_api_keys={"cheap": "b"})
    with pytest.raises(ConfigurationError, match="router="):
        RouterChatModel(router=make_router(), deployment_api_keys={"cheap": "k"})

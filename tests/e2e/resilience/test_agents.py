"""Agents through the resilience wrappers, against the provider simulator with injected faults.

LangChain's ``create_agent`` over ``with_resilience(ChatOpenAI(...))`` and LlamaIndex's
``FunctionAgent`` over ``ResilientLLM(OpenAI(...))``: the simulator answers 429 / 5xx first,
the wrappers retry, and the tool loop finishes with the tool's result in the conversation.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel

from aipowertools.resilience import CircuitBreaker, RateLimiter, RetryPolicy
from aipowertools.testing import Fault, SimModel, SimRequest, ToolCall

MODEL = "gpt-4o-mini"


def get_weather(city: str) -> str:
    """Current weather of a city."""
    return f"sunny in {city}"


class Weather(BaseModel):
    city: str
    sky: str


def _chat_openai(sim: Any, **kw: Any) -> Any:
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        model=MODEL, base_url=sim.base_url("openai"), api_key="sk-sim", max_retries=0, **kw
    )


def _tool_loop_model(sim: Any) -> None:
    sim.add_model(
        SimModel(MODEL, reply=[ToolCall("get_weather", {"city": "Paris"}), "It is sunny."])
    )


def _retrying(events: list[Any]) -> RetryPolicy:
    return RetryPolicy(max_attempts=4, base_delay=0.001, max_delay=0.01, on_retry=events.append)


@pytest.mark.parametrize("mode", ["invoke", "ainvoke", "stream", "astream"])
async def test_create_agent_runs_through_with_resilience(llm_simulator, mode):
    from langchain.agents import create_agent

    from aipowertools.resilience.langchain import ResilientChatModel, with_resilience

    _tool_loop_model(llm_simulator)
    # the first model call fails twice (429, then 500); the second once (503)
    llm_simulator.schedule(
        MODEL,
        [Fault("rate_limit", retry_after=0.01), "server_error", None, "unavailable"],
    )
    limiter = RateLimiter(tokens_per_minute=100_000)
    events: list[Any] = []
    model = with_resilience(
        _chat_openai(llm_simulator, streaming=mode.endswith("stream")),
        rate_limiter=limiter,
        limiter_key=MODEL,
        retry=_retrying(events),
        circuit_breaker=CircuitBreaker(f"agent-{mode}", failure_threshold=10),
    )
    assert isinstance(model, ResilientChatModel)
    agent = create_agent(model, [get_weather])
    inputs = {"messages": [{"role": "user", "content": "Weather in Paris?"}]}
    if mode == "invoke":
        state = agent.invoke(inputs)
    elif mode == "ainvoke":
        state = await agent.ainvoke(inputs)
    elif mode == "stream":
        state = list(agent.stream(inputs, stream_mode="values"))[-1]
    else:
        state = [s async for s in agent.astream(inputs, stream_mode="values")][-1]
    assert state is not None
    messages = state["messages"]
    assert messages[1].tool_calls[0]["name"] == "get_weather"
    assert messages[2].content == "sunny in Paris"
    assert messages[-1].content == "It is sunny."
    assert [e.kind.value for e in events] == ["rate_limited", "transient", "transient"]
    # A streamed answer's last event can reach the client before the handler counts it.
    assert llm_simulator.wait_idle(30.0)
    stats = llm_simulator.stats().by_model[MODEL]
    assert stats.requests == 5
    assert stats.served == 2
    assert [r.status for r in llm_simulator.requests] == [429, 500, 200, 503, 200]
    # the limiter's reservations were corrected with the answers' usage
    used = limiter.get_stats(MODEL).keys[MODEL].usage["tokens_per_60s"][0]
    assert used > 0


async def test_create_agent_with_structured_output_through_with_resilience(llm_simulator):
    from langchain.agents import create_agent
    from langchain.agents.structured_output import ToolStrategy

    from aipowertools.resilience.langchain import with_resilience

    seen: list[SimRequest] = []

    def reply(request: SimRequest) -> Any:
        seen.append(request)
        if len(seen) == 1:
            return ToolCall("get_weather", {"city": "Oslo"})
        return ToolCall("Weather", {"city": "Oslo", "sky": "grey"})

    llm_simulator.add_model(SimModel(MODEL, reply=reply))
    llm_simulator.fail_next(MODEL, 1, "bad_gateway")
    events: list[Any] = []
    model = with_resilience(_chat_openai(llm_simulator), retry=_retrying(events))
    agent = create_agent(model, [get_weather], response_format=ToolStrategy(Weather))
    state = await agent.ainvoke({"messages": [{"role": "user", "content": "Oslo?"}]})
    assert state["structured_response"] == Weather(city="Oslo", sky="grey")
    assert len(events) == 1
    assert seen[0].tool_names == ["get_weather", "Weather"]
    assert seen[0].body["tool_choice"] == "required"  # ToolStrategy forces a tool call


def test_with_structured_output_json_schema_reaches_the_provider(llm_simulator):
    from aipowertools.resilience.langchain import with_resilience

    seen: list[SimRequest] = []

    def reply(request: SimRequest) -> str:
        seen.append(request)
        return json.dumps({"city": "Rome", "sky": "blue"})

    llm_simulator.add_model(SimModel(MODEL, reply=reply))
    llm_simulator.fail_next(MODEL, 1, "server_error")
    events: list[Any] = []
    structured = with_resilience(
        _chat_openai(llm_simulator), retry=_retrying(events)
    ).with_structured_output(Weather, method="json_schema")
    assert structured.invoke("Rome?") == Weather(city="Rome", sky="blue")
    assert len(events) == 1
    assert seen[0].response_format is not None
    assert seen[0].response_format["type"] == "json_schema"
    assert not seen[0].tools


def test_with_config_and_bind_tools_keep_the_breaker(llm_simulator):
    from aipowertools.core.errors import CircuitOpenError
    from aipowertools.resilience.langchain import with_resilience

    llm_simulator.add_model(SimModel(MODEL, reply=ToolCall("get_weather", {"city": "Nice"})))
    llm_simulator.fail_next(MODEL, 2, "server_error")
    breaker = CircuitBreaker("tools-breaker", failure_threshold=2)
    model = with_resilience(_chat_openai(llm_simulator), circuit_breaker=breaker)
    bound = model.bind_tools([get_weather]).with_config(tags=["weather"])
    for _ in range(2):
        with pytest.raises(Exception, match=r"500|Internal"):
            bound.invoke("Nice?")
    with pytest.raises(CircuitOpenError):
        bound.invoke("Nice?")
    assert llm_simulator.stats().by_model[MODEL].requests == 2  # the third never left


# llama-index-workflows inspects the agent instance with inspect.getmembers, which touches
# pydantic's deprecated instance attributes (not ours; depends on which test runs first).
_PYDANTIC_211 = "pydantic.warnings.PydanticDeprecatedSince211"


@pytest.mark.filterwarnings(
    f"ignore:Accessing the 'model_computed_fields' attribute:{_PYDANTIC_211}",
    f"ignore:Accessing the 'model_fields' attribute:{_PYDANTIC_211}",
)
async def test_function_agent_runs_through_resilient_llm(llm_simulator):
    from llama_index.core.agent.workflow import FunctionAgent
    from llama_index.llms.openai import OpenAI

    from aipowertools.resilience.llama_index import ResilientLLM

    _tool_loop_model(llm_simulator)
    llm_simulator.schedule(MODEL, [Fault("rate_limit", retry_after=0.01), None, "bad_gateway"])
    events: list[Any] = []
    inner = OpenAI(
        model=MODEL, api_base=llm_simulator.base_url("openai"), api_key="sk-sim", max_retries=0
    )
    llm = ResilientLLM(
        inner,
        rate_limiter=RateLimiter(requests_per_minute=600),
        retry=_retrying(events),
        circuit_breaker=CircuitBreaker("function-agent", failure_threshold=10),
    )
    assert llm.metadata.is_function_calling_model
    agent = FunctionAgent(tools=[get_weather], llm=llm, system_prompt="Use the tools.")
    response = await agent.run(user_msg="Weather in Paris?")
    assert str(response) == "It is sunny."
    assert [e.kind.value for e in events] == ["rate_limited", "transient"]
    assert response.tool_calls[0].tool_name == "get_weather"
    assert response.tool_calls[0].tool_output.content == "sunny in Paris"
    assert llm_simulator.wait_idle(30.0)
    stats = llm_simulator.stats().by_model[MODEL]
    assert (stats.requests, stats.served) == (4, 2)
    aclient = getattr(inner, "_aclient", None)
    if aclient is not None:
        await aclient.close()


async def test_resilient_llm_tool_api_sync_and_predict_and_call(llm_simulator):
    from llama_index.core.tools import FunctionTool
    from llama_index.llms.openai import OpenAI

    from aipowertools.resilience.llama_index import ResilientLLM

    llm_simulator.add_model(SimModel(MODEL, reply=ToolCall("get_weather", {"city": "Lyon"})))
    llm_simulator.fail_next(MODEL, 1, "server_error")
    events: list[Any] = []
    inner = OpenAI(
        model=MODEL, api_base=llm_simulator.base_url("openai"), api_key="sk-sim", max_retries=0
    )
    llm = ResilientLLM(inner, retry=_retrying(events))
    tool = FunctionTool.from_defaults(get_weather)
    response = llm.chat_with_tools([tool], user_msg="Lyon?")
    calls = llm.get_tool_calls_from_response(response)
    assert (calls[0].tool_name, calls[0].tool_kwargs) == ("get_weather", {"city": "Lyon"})
    assert len(events) == 1
    aresponse = await llm.achat_with_tools([tool], user_msg="Lyon?")
    assert llm.get_tool_calls_from_response(aresponse)[0].tool_kwargs == {"city": "Lyon"}
    out = llm.predict_and_call([tool], user_msg="Lyon?")
    assert out.response == "sunny in Lyon"
    chunks = list(llm.stream_chat_with_tools([tool], user_msg="Lyon?"))
    assert llm.get_tool_calls_from_response(chunks[-1])[0].tool_name == "get_weather"
    achunks = [c async for c in await llm.astream_chat_with_tools([tool], user_msg="Lyon?")]
    assert llm.get_tool_calls_from_response(achunks[-1])[0].tool_kwargs == {"city": "Lyon"}
    aclient = getattr(inner, "_aclient", None)
    if aclient is not None:
        await aclient.close()


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_resilience_middleware_around_each_model_call(llm_simulator, mode):
    from langchain.agents import create_agent

    from aipowertools.resilience.langchain import ResilienceMiddleware

    _tool_loop_model(llm_simulator)
    llm_simulator.schedule(MODEL, [Fault("rate_limit", retry_after=0.01), None, "bad_gateway"])
    limiter = RateLimiter(tokens_per_minute=100_000)
    events: list[Any] = []
    middleware = ResilienceMiddleware(
        rate_limiter=limiter,
        retry=_retrying(events),
        circuit_breaker=CircuitBreaker(f"mw-{mode}", failure_threshold=10),
        timeout=30,
        tokens=100,
    )
    agent = create_agent(_chat_openai(llm_simulator), [get_weather], middleware=[middleware])
    inputs = {"messages": [{"role": "user", "content": "Weather in Paris?"}]}
    state = agent.invoke(inputs) if mode == "sync" else await agent.ainvoke(inputs)
    assert state["messages"][-1].content == "It is sunny."
    assert [e.kind.value for e in events] == ["rate_limited", "transient"]
    assert [r.status for r in llm_simulator.requests] == [429, 200, 502, 200]
    # the limiter key defaults to the model's name; reservations corrected with usage
    stats = limiter.get_stats(MODEL).keys[MODEL]
    answered = sum(
        r.prompt_tokens + r.completion_tokens for r in llm_simulator.requests if r.status == 200
    )
    # failed attempts keep their 100-token estimates; answered ones are corrected to usage
    assert stats.usage["tokens_per_60s"][0] == 2 * 100 + answered


def test_resilience_middleware_breaker_opens_and_bad_timeout(llm_simulator):
    from langchain.agents import create_agent

    from aipowertools.core.errors import CircuitOpenError, ConfigurationError
    from aipowertools.resilience.langchain import ResilienceMiddleware, model_key

    with pytest.raises(ConfigurationError, match="timeout"):
        ResilienceMiddleware(timeout=0)
    _tool_loop_model(llm_simulator)
    llm_simulator.fail_next(MODEL, 5, "server_error")
    breaker = CircuitBreaker("mw-open", failure_threshold=2)
    agent = create_agent(
        _chat_openai(llm_simulator),
        [get_weather],
        middleware=[ResilienceMiddleware(circuit_breaker=breaker, limiter_key="k")],
    )
    for _ in range(2):
        with pytest.raises(Exception, match=r"500|Internal"):
            agent.invoke({"messages": [{"role": "user", "content": "x"}]})
    with pytest.raises(CircuitOpenError):
        agent.invoke({"messages": [{"role": "user", "content": "x"}]})
    assert llm_simulator.stats().requests == 2
    assert model_key(object()) == "object"

"""The router's OpenTelemetry spans and metrics, by the GenAI semantic conventions.

With the SDK's in-memory exporter and metric reader: one trace per user call, the router's
spans under the active span (the user's, or LangChain's chat span), ``chat {model}`` spans
with the real provider, a span for streamed calls with the time to first chunk, and the
``gen_ai.client.*`` metrics with provider and model attributes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from aipowertools.router import Deployment, LLMRouter
from aipowertools.router.langchain import RouterChatModel
from aipowertools.testing import SimModel, Simulator

from .conftest import KEY, sim_deployment


class Telemetry:
    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.user = self.tracer_provider.get_tracer("user-app")

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, prefix: str) -> list[ReadableSpan]:
        return [s for s in self.spans() if s.name.startswith(prefix)]

    def points(self, metric: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        found = []
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for m in scope.metrics:
                    if m.name == metric:
                        found.extend(m.data.data_points)
        return found


@pytest.fixture
def otel() -> Iterator[Telemetry]:
    from aipowertools.router import _telemetry

    t = Telemetry()
    old = _telemetry.use(t.tracer_provider, t.meter_provider)
    try:
        yield t
    finally:
        _telemetry.restore(old)


@pytest.fixture
def tsim() -> Iterator[Simulator]:
    models = [
        SimModel("gpt-4o-mini", reply="hello from openai"),
        SimModel("claude-haiku-4-5", reply="hello from anthropic"),
    ]
    with Simulator(models=models, seed=2) as sim:
        yield sim


def _router(sim: Simulator, *, anthropic_first: bool = False) -> LLMRouter:
    price = 1e-9 if anthropic_first else 1e-5
    claude = Deployment(
        "anthropic/claude-haiku-4-5", name="claude", api_base=sim.base_url("anthropic"),
        api_key=KEY, local=False, quality=0.8,
        input_cost_per_token=price, output_cost_per_token=price,
    )  # fmt: skip
    mini = sim_deployment(
        sim, "gpt-4o-mini", quality=0.8, input_cost_per_token=1e-7, output_cost_per_token=4e-7
    )
    return LLMRouter([mini, claude], monitor=False, catalog={})


def _one_trace(t: Telemetry, user_span: ReadableSpan) -> None:
    assert {s.context.trace_id for s in t.spans()} == {user_span.context.trace_id}


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
async def test_route_spans_sit_under_the_users_span(otel, tsim, mode) -> None:
    llm = RouterChatModel(router=_router(tsim))
    with otel.user.start_as_current_span("user-request"):
        if mode == "invoke":
            reply = llm.invoke("hi")  # routed on the background loop: context carried over
        else:
            reply = await llm.ainvoke("hi")
    assert reply.content == "hello from openai"
    (user,) = otel.named("user-request")
    (route,) = otel.named("aipowertools.router.route")
    (chat,) = otel.named("chat ")
    _one_trace(otel, user)
    assert route.parent is not None
    assert route.parent.span_id == user.context.span_id
    assert chat.parent is not None
    assert chat.parent.span_id == route.context.span_id
    assert chat.name == "chat gpt-4o-mini"
    assert chat.kind.name == "CLIENT"
    attrs = chat.attributes
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.model"] == "gpt-4o-mini"
    assert attrs["gen_ai.response.model"] == "gpt-4o-mini"
    assert attrs["gen_ai.usage.input_tokens"] > 0
    assert attrs["gen_ai.usage.output_tokens"] > 0
    assert attrs["server.address"] == "127.0.0.1"
    assert "gen_ai.usage.input_tokens" not in route.attributes  # counted once, on the child


async def test_failover_gives_one_chat_span_per_attempt_with_the_real_provider(otel, tsim) -> None:
    tsim.fail_next("claude-haiku-4-5", 1, "server_error")
    llm = RouterChatModel(router=_router(tsim, anthropic_first=True))
    with otel.user.start_as_current_span("user-request"):
        reply = await llm.ainvoke("hi")
    assert reply.content == "hello from openai"
    failed, ok = otel.named("chat ")
    assert failed.name == "chat claude-haiku-4-5"
    assert failed.attributes["gen_ai.provider.name"] == "anthropic"
    assert failed.attributes["error.type"] == "transient"
    assert not failed.status.is_ok
    assert ok.name == "chat gpt-4o-mini"
    (route,) = otel.named("aipowertools.router.route")
    assert {failed.parent.span_id, ok.parent.span_id} == {route.context.span_id}
    assert route.attributes["aipowertools.router.attempts"] == 2
    durations = otel.points("gen_ai.client.operation.duration")
    errors = [p for p in durations if p.attributes.get("error.type") == "transient"]
    assert [p.attributes["gen_ai.provider.name"] for p in errors] == ["anthropic"]


@pytest.mark.parametrize("mode", ["stream", "astream"])
async def test_streamed_calls_have_spans_with_time_to_first_chunk(otel, tsim, mode) -> None:
    llm = RouterChatModel(router=_router(tsim))
    with otel.user.start_as_current_span("user-request"):
        if mode == "stream":
            text = "".join(str(c.content) for c in llm.stream("hi"))
        else:
            text = "".join([str(c.content) async for c in llm.astream("hi")])
    assert text == "hello from openai"
    (user,) = otel.named("user-request")
    (route,) = otel.named("aipowertools.router.route")
    (chat,) = otel.named("chat ")
    _one_trace(otel, user)
    assert route.parent.span_id == user.context.span_id
    assert chat.parent.span_id == route.context.span_id
    assert chat.attributes["aipowertools.router.stream"] is True
    assert chat.attributes["gen_ai.response.time_to_first_chunk"] > 0
    assert chat.attributes["gen_ai.usage.output_tokens"] > 0
    assert route.attributes["aipowertools.router.deployment"] == "gpt-4o-mini"
    (ttfc,) = otel.points("gen_ai.client.operation.time_to_first_chunk")
    assert ttfc.attributes["gen_ai.request.model"] == "gpt-4o-mini"


async def test_metrics_carry_provider_model_tokens_and_cost(otel, tsim) -> None:
    router = _router(tsim)
    result = await router.route(task="hi")
    tokens = otel.points("gen_ai.client.token.usage")
    by_type = {p.attributes["gen_ai.token.type"]: p for p in tokens}
    assert by_type["input"].sum == result.input_tokens
    assert by_type["output"].sum == result.output_tokens
    for point in tokens:
        assert point.attributes["gen_ai.provider.name"] == "openai"
        assert point.attributes["gen_ai.request.model"] == "gpt-4o-mini"
        assert point.attributes["gen_ai.operation.name"] == "chat"
    (duration,) = otel.points("gen_ai.client.operation.duration")
    assert duration.count == 1
    assert duration.attributes["gen_ai.response.model"] == "gpt-4o-mini"
    (cost,) = otel.points("aipowertools.gen_ai.client.cost")
    assert cost.value == pytest.approx(result.cost)
    assert cost.attributes["gen_ai.provider.name"] == "openai"


async def test_router_spans_sit_under_langchains_chat_span(otel, tsim) -> None:
    from aipowertools.callbacks.langchain import LoggingCallbackHandler

    handler = LoggingCallbackHandler(tracer_provider=otel.tracer_provider)
    llm = RouterChatModel(router=_router(tsim))
    with otel.user.start_as_current_span("user-request"):
        llm.invoke("hi", config={"callbacks": [handler]})
        await llm.ainvoke("hi", config={"callbacks": [handler]})
    (user,) = otel.named("user-request")
    _one_trace(otel, user)
    lc_chats = [
        s for s in otel.named("chat ") if s.instrumentation_scope.name != "aipowertools.router"
    ]
    routes = otel.named("aipowertools.router.route")
    assert len(lc_chats) == 2
    assert len(routes) == 2
    assert {r.parent.span_id for r in routes} == {s.context.span_id for s in lc_chats}


async def test_no_sdk_means_no_spans_and_no_errors(tsim) -> None:
    """Without an SDK the API is a no-op: calls work and nothing is recorded."""
    router = _router(tsim)
    assert (await router.route(task="hi")).content == "hello from openai"
    assert "".join([c.content async for c in router.stream(task="hi")]) == "hello from openai"

"""The router's GenAI spans in edge cases: stream failures, lost races, request attributes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from aipowertools.core.errors import PermanentProviderError, TransientProviderError
from aipowertools.router import Chunk, Deployment, LLMRouter, _telemetry

from .conftest import Behaviour, FakeTransport, dep


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    old = _telemetry.use(provider)
    try:
        yield exporter
    finally:
        _telemetry.restore(old)


def _named(exporter: InMemorySpanExporter, prefix: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name.startswith(prefix)]


def _router(transport: FakeTransport, *deployments: Deployment, **kw: Any) -> LLMRouter:
    return LLMRouter(list(deployments), transport=transport, catalog={}, monitor=False, **kw)


async def test_request_attributes_and_providers(spans, transport) -> None:
    claude = Deployment(
        "anthropic/claude-x", name="claude", api_base="http://[bad", input_cost_per_token=1e-9,
        output_cost_per_token=1e-9, quality=0.9, supports_json=True, supports_tools=True,
        local=False,
    )  # fmt: skip
    router = _router(transport, claude)
    await router.route(
        task="hi", temperature=0.2, max_tokens=50, stop=["END"],
        response_format={"type": "text"}, seed=True,
    )  # fmt: skip
    await router.route(task="hi", response_format={"type": "json_object"})
    first, second = _named(spans, "chat ")
    assert first.name == "chat claude-x"
    assert first.attributes["gen_ai.provider.name"] == "anthropic"
    assert first.attributes["gen_ai.request.temperature"] == 0.2
    assert first.attributes["gen_ai.request.max_tokens"] == 50
    assert first.attributes["gen_ai.request.stop_sequences"] == ("END",)
    assert first.attributes["gen_ai.output.type"] == "text"
    assert "gen_ai.request.seed" not in first.attributes  # a bool is not a seed
    assert "server.address" not in first.attributes  # an unparsable api_base is left out
    assert second.attributes["gen_ai.output.type"] == "json"
    assert first.attributes["gen_ai.response.finish_reasons"] == ("stop",)


def test_provider_names_and_servers() -> None:
    assert _telemetry.provider_name(Deployment("gemini/gemini-2.5-flash")) == "gcp.gemini"
    assert _telemetry.provider_name(Deployment("ollama_chat/llama3")) == "ollama"
    assert _telemetry.provider_name(Deployment("somecloud/model-x")) == "somecloud"
    assert _telemetry.request_model(Deployment("gpt-4o")) == "gpt-4o"
    assert _telemetry._server("http://example.com:8080/v1") == {
        "server.address": "example.com",
        "server.port": 8080,
    }
    assert _telemetry._server("http:///nohost") == {}


async def test_a_stream_that_fails_before_its_first_chunk_ends_both_spans_in_error(
    spans, transport
) -> None:
    transport.behaviours["a"] = Behaviour(fail_rate=1.0, error=PermanentProviderError)
    router = _router(transport, dep("a"))
    with pytest.raises(PermanentProviderError):
        async for _ in router.stream(task="hi"):
            pass
    (chat,) = _named(spans, "chat ")
    (route,) = _named(spans, "aipowertools.router.route")
    assert chat.attributes["error.type"] == "permanent"
    assert not chat.status.is_ok
    assert route.attributes["error.type"] == "PermanentProviderError"
    assert not route.status.is_ok
    assert chat.parent.span_id == route.context.span_id


class BreaksMidStream(FakeTransport):
    async def stream(
        self, d: Deployment, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any]
    ) -> AsyncIterator[Chunk]:
        yield Chunk(content="partial ")
        raise TransientProviderError("connection reset", provider="openai", model=d.model)


async def test_a_stream_broken_after_its_first_chunk_and_one_given_up(spans) -> None:
    router = _router(BreaksMidStream(), dep("a"))
    with pytest.raises(TransientProviderError):
        async for _ in router.stream(task="hi"):
            pass
    (chat,) = _named(spans, "chat ")
    assert chat.attributes["error.type"] == "transient"
    assert chat.attributes["gen_ai.response.time_to_first_chunk"] >= 0
    spans.clear()
    stream = router.stream(task="hi")
    agen = stream.__aiter__()
    assert (await agen.__anext__()).content == "partial "
    await agen.aclose()  # the caller walks away
    (chat,) = _named(spans, "chat ")
    (route,) = _named(spans, "aipowertools.router.route")
    assert chat.attributes["error.type"] == "cancelled"
    assert route.status.is_unset  # walking away is not an error of the call


async def test_a_lost_race_ends_its_span_as_cancelled(spans, transport) -> None:
    transport.behaviours["slow"] = Behaviour(latency_s=5.0)
    router = _router(
        transport, dep("slow", price=1e-9, quality=0.9), dep("fast", price=1e-6, quality=0.9)
    )
    await asyncio.wait_for(router.route(task="hi", strategy="race"), 4.0)
    by_name = {s.attributes["aipowertools.router.deployment"]: s for s in _named(spans, "chat ")}
    assert by_name["slow"].attributes["error.type"] == "cancelled"
    assert "error.type" not in by_name["fast"].attributes

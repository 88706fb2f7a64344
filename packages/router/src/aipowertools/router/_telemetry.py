"""OpenTelemetry for the router, by the GenAI semantic conventions.

Each call the router makes to a deployment (each attempt: failovers, hedges and parallel
calls included) is a CLIENT span ``chat {model}`` carrying ``gen_ai.operation.name``,
``gen_ai.provider.name`` (the real provider: ``openai``, ``anthropic``, ``gcp.gemini``...),
``gen_ai.request.model``, ``gen_ai.response.model``, ``gen_ai.usage.*_tokens``,
``gen_ai.response.finish_reasons``, ``server.address`` / ``server.port``, and for streams
``gen_ai.response.time_to_first_chunk``; a failed attempt carries ``error.type`` (the error
kind) and an error status. The attempts of one routed call are children of one INTERNAL span
``aipowertools.router.route`` (strategy, decision, attempts, total cost), itself a child of the
span active where the call was made (the user's, LangChain's, LlamaIndex's).

Metrics (histograms and a counter, from the global ``MeterProvider``):
``gen_ai.client.token.usage`` (``{token}``, with ``gen_ai.token.type``),
``gen_ai.client.operation.duration`` (``s``, with ``error.type`` on failure),
``gen_ai.client.operation.time_to_first_chunk`` (``s``, streams) and
``aipowertools.gen_ai.client.cost`` (``USD``), each with the operation, provider, request and
response model and server address attributes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from aipowertools.router._deployment import Deployment
    from aipowertools.router._result import RouteResult

__all__ = [
    "ROUTE_SPAN",
    "AttemptTelemetry",
    "end_route_span",
    "meter_instruments",
    "provider_name",
    "start_route_span",
    "tracer",
]

_SCOPE = "aipowertools.router"
ROUTE_SPAN = "aipowertools.router.route"

# litellm provider prefixes -> GenAI ``gen_ai.provider.name`` values.
PROVIDERS: dict[str, str] = {
    "openai": "openai",
    "text-completion-openai": "openai",
    "azure": "azure.ai.openai",
    "azure_ai": "azure.ai.inference",
    "anthropic": "anthropic",
    "bedrock": "aws.bedrock",
    "sagemaker": "aws.bedrock",
    "vertex_ai": "gcp.vertex_ai",
    "vertex_ai_beta": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
    "mistral": "mistral_ai",
    "codestral": "mistral_ai",
    "groq": "groq",
    "cohere": "cohere",
    "cohere_chat": "cohere",
    "deepseek": "deepseek",
    "xai": "x_ai",
    "perplexity": "perplexity",
    "watsonx": "ibm.watsonx.ai",
    "ollama": "ollama",
    "ollama_chat": "ollama",
}

_TRACER: Any = None
_INSTRUMENTS: Any = None
_METER_PROVIDER: Any = None


def tracer() -> Any:
    """The router's tracer (from the global provider: a no-op until an SDK is installed)."""
    global _TRACER
    if _TRACER is None:
        from opentelemetry import trace

        from aipowertools.router import __version__

        _TRACER = trace.get_tracer(_SCOPE, __version__)
    return _TRACER


class _Instruments:
    def __init__(self, meter: Any) -> None:
        self.tokens = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}",
            description="Number of input and output tokens used",
        )  # fmt: skip
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration", unit="s",
            description="GenAI operation duration",
        )  # fmt: skip
        self.first_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk", unit="s",
            description="Time to receive the first chunk of a streamed answer",
        )  # fmt: skip
        self.cost = meter.create_counter(
            "aipowertools.gen_ai.client.cost", unit="USD",
            description="What the calls cost, from their token usage and the model's prices",
        )  # fmt: skip


def meter_instruments() -> _Instruments:
    """The router's metric instruments (from the global meter provider)."""
    global _INSTRUMENTS
    if _INSTRUMENTS is None:
        from opentelemetry import metrics

        from aipowertools.router import __version__

        provider: Any = _METER_PROVIDER or metrics.get_meter_provider()
        _INSTRUMENTS = _Instruments(provider.get_meter(_SCOPE, __version__))
    return cast("_Instruments", _INSTRUMENTS)


def use(tracer_provider: Any = None, meter_provider: Any = None) -> tuple[Any, Any, Any]:
    """Send the router's spans and metrics to these providers (tests); returns the old state.

    Pass the returned tuple to :func:`restore` to undo.
    """
    global _TRACER, _INSTRUMENTS, _METER_PROVIDER
    old = (_TRACER, _INSTRUMENTS, _METER_PROVIDER)
    from aipowertools.router import __version__

    _TRACER = tracer_provider.get_tracer(_SCOPE, __version__) if tracer_provider else None
    _METER_PROVIDER = meter_provider
    _INSTRUMENTS = None
    return old


def restore(state: tuple[Any, Any, Any]) -> None:
    """Undo :func:`use`."""
    global _TRACER, _INSTRUMENTS, _METER_PROVIDER
    _TRACER, _INSTRUMENTS, _METER_PROVIDER = state


def start_route_span(request_id: str, strategy: str, *, context: Any = None) -> Any:
    """Start the INTERNAL span around one routed call (not made current: streams use it)."""
    return tracer().start_span(
        ROUTE_SPAN,
        context=context,
        attributes={
            "aipowertools.request_id": request_id,
            "aipowertools.router.strategy": strategy,
        },
    )


def end_route_span(span: Any, result: RouteResult | None, error: BaseException | None) -> None:
    """End a routed call's span with the answering deployment, attempts and cost (or error)."""
    if span.is_recording():
        if result is not None:
            span.set_attributes(
                {
                    "aipowertools.router.deployment": result.deployment,
                    "aipowertools.router.attempts": len(result.attempts),
                    "aipowertools.router.confidence": result.decision.confidence,
                    "aipowertools.cost_usd": result.cost,
                }
            )
        if error is not None:
            from opentelemetry.trace import Status, StatusCode

            span.set_attribute("error.type", type(error).__qualname__)
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, str(error)[:200]))
    span.end()


def provider_name(deployment: Deployment) -> str:
    """The GenAI provider name of a deployment (its litellm prefix when not a known one)."""
    return PROVIDERS.get(deployment.provider, deployment.provider)


def request_model(deployment: Deployment) -> str:
    """The model name the provider is asked for (the litellm model without its prefix)."""
    model = deployment.model
    return model.split("/", 1)[1] if "/" in model else model


def _server(api_base: str | None) -> dict[str, Any]:
    if not api_base:
        return {}
    try:
        parts = urlsplit(api_base)
        port = parts.port
    except ValueError:
        return {}
    out: dict[str, Any] = {}
    if parts.hostname:
        out["server.address"] = parts.hostname
    if port:
        out["server.port"] = port
    return out


_PARAMS = (
    ("temperature", "gen_ai.request.temperature"),
    ("top_p", "gen_ai.request.top_p"),
    ("max_tokens", "gen_ai.request.max_tokens"),
    ("seed", "gen_ai.request.seed"),
    ("frequency_penalty", "gen_ai.request.frequency_penalty"),
    ("presence_penalty", "gen_ai.request.presence_penalty"),
)


class AttemptTelemetry:
    """The ``chat {model}`` span and the metrics of one call to one deployment."""

    __slots__ = ("_metric_attrs", "_start", "_ttfc", "span")

    def __init__(
        self,
        deployment: Deployment,
        params: Mapping[str, Any],
        *,
        parent: Any = None,
        stream: bool = False,
    ) -> None:
        model = request_model(deployment)
        self._metric_attrs: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider_name(deployment),
            "gen_ai.request.model": model,
            **_server(deployment.api_base),
        }
        self._start = time.perf_counter()
        self._ttfc: float | None = None
        t = tracer()
        from opentelemetry import trace

        attrs = dict(self._metric_attrs)
        attrs["aipowertools.router.deployment"] = deployment.name
        if stream:
            attrs["aipowertools.router.stream"] = True
        for key, attr in _PARAMS:
            value = params.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                attrs[attr] = value
        stop = params.get("stop")
        if isinstance(stop, (list, tuple)) and all(isinstance(s, str) for s in stop):
            attrs["gen_ai.request.stop_sequences"] = list(stop)
        if params.get("response_format") is not None:
            kind = params["response_format"]
            attrs["gen_ai.output.type"] = "json"
            if isinstance(kind, Mapping) and kind.get("type") == "text":
                attrs["gen_ai.output.type"] = "text"
        context = trace.set_span_in_context(parent) if parent is not None else None
        self.span = t.start_span(
            f"chat {model}", context=context, kind=trace.SpanKind.CLIENT, attributes=attrs
        )

    def first_chunk(self) -> None:
        """Mark the arrival of the first streamed chunk."""
        if self._ttfc is None:
            self._ttfc = time.perf_counter() - self._start
            if self.span.is_recording():
                self.span.set_attribute("gen_ai.response.time_to_first_chunk", self._ttfc)

    def ok(
        self,
        *,
        input_tokens: int,
        output_tokens: int,
        response_model: str | None,
        finish_reason: str | None,
        cost_usd: float,
    ) -> None:
        """End the span of a call that answered, and record its metrics."""
        duration = time.perf_counter() - self._start
        attrs = dict(self._metric_attrs)
        if response_model:
            attrs["gen_ai.response.model"] = response_model
        span = self.span
        if span.is_recording():
            span.set_attributes(
                {
                    **({"gen_ai.response.model": response_model} if response_model else {}),
                    "gen_ai.usage.input_tokens": input_tokens,
                    "gen_ai.usage.output_tokens": output_tokens,
                    "aipowertools.cost_usd": cost_usd,
                }
            )
            if finish_reason:
                span.set_attribute("gen_ai.response.finish_reasons", [finish_reason])
        span.end()
        instruments = meter_instruments()
        instruments.duration.record(duration, attrs)
        instruments.tokens.record(input_tokens, {**attrs, "gen_ai.token.type": "input"})
        instruments.tokens.record(output_tokens, {**attrs, "gen_ai.token.type": "output"})
        instruments.cost.add(cost_usd, attrs)
        if self._ttfc is not None:
            instruments.first_chunk.record(self._ttfc, attrs)

    def failed(self, error_type: str, error: BaseException | None) -> None:
        """End the span of a failed call (``error_type``: the error kind), record its duration."""
        duration = time.perf_counter() - self._start
        span = self.span
        if span.is_recording():
            from opentelemetry.trace import Status, StatusCode

            span.set_attribute("error.type", error_type)
            if error is not None:
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, str(error)[:200]))
        span.end()
        attrs = {**self._metric_attrs, "error.type": error_type}
        meter_instruments().duration.record(duration, attrs)

    def cancelled(self) -> None:
        """End the span of a call given up (a lost race, a caller that went away)."""
        if self.span.is_recording():
            self.span.set_attribute("error.type", "cancelled")
        self.span.end()

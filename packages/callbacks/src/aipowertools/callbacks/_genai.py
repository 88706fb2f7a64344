"""Framework-free pieces shared by the LangChain and LlamaIndex handlers.

* ``RunState`` / ``Runs``: what we remember about a run between its start and end callbacks.
* OpenTelemetry spans following the GenAI semantic conventions.
* Recording a finished call into a ``CostTracker`` (idempotent on the run id), with budget
  reservation before the call when the tracker has hard limits, and feeding a
  ``ProviderMonitor``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

    from aipowertools.callbacks._logger import StructuredLogger

TRACER_NAME = "aipowertools.callbacks"

# Class / type names to GenAI ``gen_ai.provider.name`` values.
_PROVIDER_HINTS: tuple[tuple[str, str], ...] = (
    ("azure", "azure.ai.openai"),
    ("openai", "openai"),
    ("anthropic", "anthropic"),
    ("bedrock", "aws.bedrock"),
    ("vertex", "gcp.vertex_ai"),
    ("google", "gcp.gemini"),
    ("gemini", "gcp.gemini"),
    ("mistral", "mistral_ai"),
    ("groq", "groq"),
    ("cohere", "cohere"),
    ("deepseek", "deepseek"),
    ("ollama", "ollama"),
    ("xai", "x_ai"),
    ("perplexity", "perplexity"),
    ("litellm", "litellm"),
)


_provider_cache: dict[str, str | None] = {}
_UNSEEN = "\0"


def provider_name(*hints: object) -> str | None:
    """Map framework hints (``ls_provider``, class path, ``_type``) to a GenAI provider name."""
    for hint in hints:
        if not hint:
            continue
        if type(hint) is str:
            known = _provider_cache.get(hint, _UNSEEN)
            if known is _UNSEEN:
                known = _provider_of(hint)
                if len(_provider_cache) < 1024:
                    _provider_cache[hint] = known
            if known is not None:
                return known
        else:
            found = _provider_of(hint)
            if found is not None:
                return found
    return None


def _provider_of(hint: object) -> str | None:
    text = str(hint).lower()
    for needle, name in _PROVIDER_HINTS:
        if needle in text:
            return name
    if isinstance(hint, str) and "." not in hint and "-" not in hint:
        return text
    return None


@dataclass(slots=True)
class RunState:
    """What a handler keeps about one run between start and end."""

    run_id: str
    kind: str
    name: str
    started: float
    parent_run_id: str | None = None
    model: str | None = None
    provider: str | None = None
    span: Span | None = None
    first_token: float | None = None
    reservation: Any = None
    prompt: Any = None
    text_parts: list[str] = field(default_factory=list)
    tags: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    usage: Any = None
    recorded: bool = False

    def duration_ms(self, now: float | None = None) -> float:
        """Milliseconds since the run started."""
        return ((now or time.perf_counter()) - self.started) * 1000.0

    def ttft_ms(self) -> float | None:
        """Milliseconds from the start to the first streamed token, if any."""
        if self.first_token is None:
            return None
        return (self.first_token - self.started) * 1000.0


class Runs:
    """A thread-safe map of run id to :class:`RunState`, bounded to survive lost end events.

    Runs are found by the key they were started with (``key``, else ``state.run_id``): the
    LangChain handlers use the run's ``UUID`` itself, which spares a string conversion per
    lookup; a ``UUID`` and its string are accepted alike when looking one up.
    """

    def __init__(self, limit: int = 10_000) -> None:
        self._runs: dict[object, RunState] = {}
        self._lock = threading.Lock()
        self._limit = limit

    def start(self, state: RunState, key: object = None) -> RunState:
        """Remember a new run (dropping the oldest when over the limit)."""
        with self._lock:
            if len(self._runs) >= self._limit:
                self._runs.pop(next(iter(self._runs)), None)
            self._runs[state.run_id if key is None else key] = state
        return state

    def get(self, run_id: object) -> RunState | None:
        """The state of a running run."""
        if run_id is None:
            return None
        state = self._runs.get(run_id)
        if state is None and type(run_id) is not str:
            state = self._runs.get(str(run_id))  # started under its string form
        return state

    def pop(self, run_id: object) -> RunState | None:
        """Forget a run, returning its state."""
        # dict.pop is atomic: no lock needed against start() or another pop().
        state = self._runs.pop(run_id, None)
        if state is None and run_id is not None and type(run_id) is not str:
            state = self._runs.pop(str(run_id), None)
        return state

    def __len__(self) -> int:
        return len(self._runs)


# --------------------------------------------------------------------------------- spans
_otel: Any = None


def _trace_api() -> Any:
    """``opentelemetry.trace``, imported once (an import statement costs on every call)."""
    global _otel
    if _otel is None:
        from opentelemetry import trace

        _otel = trace
    return _otel


def get_tracer(tracer_provider: Any = None) -> Tracer:
    """A tracer from ``tracer_provider`` or the global provider (a no-op without an SDK)."""
    from opentelemetry import trace

    from aipowertools.callbacks import __version__

    if tracer_provider is not None:
        return trace.get_tracer(TRACER_NAME, __version__, tracer_provider=tracer_provider)
    return trace.get_tracer(TRACER_NAME, __version__)


def start_span(
    tracer: Tracer,
    name: str,
    parent: Span | None,
    attributes: Mapping[str, Any],
    *,
    client: bool = False,
) -> Span:
    """Start a span under ``parent`` (or under the current context when there is none)."""
    trace = _trace_api()
    context = trace.set_span_in_context(parent) if parent is not None else None
    kind = trace.SpanKind.CLIENT if client else trace.SpanKind.INTERNAL
    attrs = {k: v for k, v in attributes.items() if v is not None}
    return tracer.start_span(name, context=context, kind=kind, attributes=attrs)


def end_span(span: Span | None, attributes: Mapping[str, Any], error: BaseException | None) -> None:
    """Set the final attributes (and error status) of a span and end it."""
    if span is None:
        return
    if span.is_recording():  # a no-op span keeps nothing: skip the attributes
        for key, value in attributes.items():
            if value is not None:
                span.set_attribute(key, value)
    if error is not None:
        from opentelemetry.trace import Status, StatusCode

        span.set_attribute("error.type", type(error).__qualname__)
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, str(error)[:200]))
    span.end()


def span_ids(span: Span | None) -> tuple[str | None, str | None]:
    """Hex trace and span ids of a span (``None`` for a no-op span)."""
    if span is None:
        return None, None
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return None, None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


def llm_request_attributes(
    operation: str, model: str | None, provider: str | None, params: Mapping[str, Any]
) -> dict[str, Any]:
    """GenAI request attributes of a chat / completion span."""
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": model,
    }
    for key, attr in (
        ("temperature", "gen_ai.request.temperature"),
        ("top_p", "gen_ai.request.top_p"),
        ("max_tokens", "gen_ai.request.max_tokens"),
        ("max_completion_tokens", "gen_ai.request.max_tokens"),
        ("frequency_penalty", "gen_ai.request.frequency_penalty"),
        ("presence_penalty", "gen_ai.request.presence_penalty"),
        ("seed", "gen_ai.request.seed"),
    ):
        value = params.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            attrs[attr] = value
    stop = params.get("stop")
    if isinstance(stop, str):
        attrs["gen_ai.request.stop_sequences"] = [stop]
    elif isinstance(stop, (list, tuple)) and all(isinstance(s, str) for s in stop):
        attrs["gen_ai.request.stop_sequences"] = list(stop)
    return attrs


def llm_response_attributes(
    response_model: str | None,
    response_id: str | None,
    input_tokens: int | None,
    output_tokens: int | None,
    finish_reasons: Sequence[str],
) -> dict[str, Any]:
    """GenAI response attributes of a chat / completion span."""
    return {
        "gen_ai.response.model": response_model,
        "gen_ai.response.id": response_id,
        "gen_ai.usage.input_tokens": input_tokens,
        "gen_ai.usage.output_tokens": output_tokens,
        "gen_ai.response.finish_reasons": list(finish_reasons) if finish_reasons else None,
    }


# --------------------------------------------------------------------------------- cost
_Usage: Any = None  # aipowertools.core.Usage, imported on first use


@dataclass(frozen=True)
class Tokens:
    """Token counts read from a framework response (converted to core ``Usage`` to record)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_tokens: int = 0

    def __add__(self, other: Tokens) -> Tokens:
        return Tokens(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cached_input_tokens + other.cached_input_tokens,
            self.cache_creation_tokens + other.cache_creation_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
        )

    def to_usage(self) -> Any:
        """The core ``Usage`` with these counts."""
        global _Usage
        Usage = _Usage
        if Usage is None:
            from aipowertools.core import Usage

            _Usage = Usage
        return Usage(
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cached_input_tokens=self.cached_input_tokens,
            cache_creation_tokens=self.cache_creation_tokens,
            reasoning_tokens=self.reasoning_tokens,
        )


def check_tracker(tracker: Any, who: str, *, optional: bool = False) -> None:
    """Refuse, at construction, a tracker that cannot record (rather than fail on every call)."""
    if tracker is None and optional:
        return
    if not callable(getattr(tracker, "record", None)):
        from aipowertools.core.errors import ConfigurationError

        raise ConfigurationError(
            f"{who} needs a CostTracker to record into, got {type(tracker).__name__}; "
            "e.g. tracker = CostTracker() (from aipowertools.core)"
        )


def has_hard_limits(tracker: Any) -> bool:
    """Whether a tracker enforces any hard budget (so calls must reserve first)."""
    budgets = getattr(tracker, "budgets", None)
    limits = getattr(budgets, "limits", ())
    if not limits:
        return False
    return any(getattr(limit, "hard", False) for limit in limits)


def estimate_usage(prompt: Any, completion: str, model: str | None) -> Tokens:
    """Count tokens offline when the provider reported no usage (marked estimated)."""
    from aipowertools.core import count_tokens

    name = model or "gpt-4o"
    input_tokens = count_tokens(prompt, name).tokens if prompt else 0
    output_tokens = count_tokens(completion, name).tokens if completion else 0
    return Tokens(input_tokens=input_tokens, output_tokens=output_tokens)


def record_call(tracker: Any, state: RunState, **kwargs: Any) -> bool:
    """Write one call into the tracker (settling its reservation); idempotent on request id.

    Takes the arguments of :func:`record_kwargs`.
    """
    return bool(tracker.record(**record_kwargs(state, **kwargs)))


def record_kwargs(
    state: RunState,
    *,
    request_id: str,
    usage: Tokens,
    model: str | None,
    estimated: bool,
    status: str = "ok",
    user: str | None = None,
    session: str | None = None,
    task: str | None = None,
    tags: Sequence[str] = (),
    trace_id: str | None = None,
    cost_usd: float | None = None,
) -> dict[str, Any]:
    """The ``CostTracker.record`` arguments for a finished call.

    ``cost_usd`` is the cost the response reports itself (a routed answer, priced by the
    router with core's cost function); without it the tracker prices ``usage``.
    """
    kwargs: dict[str, Any] = {
        "model": model or state.model,
        "request_id": request_id,
        "usage": usage.to_usage(),
        "provider": state.provider,
        "task": task,
        "user": user,
        "session": session,
        "tags": tuple(tags),
        "trace_id": trace_id,
        "latency_ms": state.duration_ms(),
        "status": status,
    }
    if estimated:
        kwargs["cost_exact"] = False
    if cost_usd is not None:
        kwargs["cost_usd"] = cost_usd
    if state.reservation is not None:
        kwargs["reservation"] = state.reservation
    return kwargs


def monitor_ok(monitor: Any, state: RunState, usage: Tokens, model: str | None) -> None:
    """Feed a ``ProviderMonitor`` (if any) with a successful call's latency, TTFT and tokens."""
    if monitor is not None:
        monitor.record(
            f"{state.provider or 'unknown'}/{model}",
            latency_ms=state.duration_ms(),
            ttft_ms=state.ttft_ms(),
            ok=True,
            output_tokens=usage.output_tokens,
            input_tokens=usage.input_tokens,
            provider=state.provider,
            model=model,
        )


def monitor_error(monitor: Any, state: RunState, error: BaseException) -> None:
    """Feed a ``ProviderMonitor`` (if any) with a failed call and its error kind."""
    if monitor is not None:
        from aipowertools.core.errors import classify

        monitor.record(
            f"{state.provider or 'unknown'}/{state.model}",
            latency_ms=state.duration_ms(),
            ok=False,
            error_kind=classify(error),
            provider=state.provider,
            model=state.model,
        )


def log_event(
    logger: StructuredLogger,
    level: str,
    event: str,
    fields: dict[str, Any],
    span: Span | None,
    *,
    defer: bool = False,
) -> None:
    """Emit an event whose trace and span ids are those of the run's span.

    With ``defer`` the event is assembled and redacted on the writer thread
    (:meth:`StructuredLogger.submit`): only for fields made for this event alone, holding
    no exception (whose traceback grows while it propagates).
    """
    ids = span_ids(span)
    # The run's span ids replace the current span's (looked up only when there are none).
    run_ids = ids if ids[0] is not None else None
    if defer:
        logger.submit(level, event, fields, ids=run_ids)
    else:
        logger.emit(logger.build(level, "log", event, fields, ids=run_ids))

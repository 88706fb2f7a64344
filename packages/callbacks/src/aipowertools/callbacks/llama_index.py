"""LlamaIndex handlers: cost into a ``CostTracker``, structured events and GenAI spans.

The instrumentation module (``llama_index.core.instrumentation``) is the primary way in:
:func:`instrument` adds an event handler and a span handler to the root dispatcher, so every
LLM, query engine, retriever and chat engine call is covered. LlamaIndex events carry no token
usage, so it is read from the provider response (``ChatResponse.raw``, including the last
chunk of a stream). For code still on ``Settings.callback_manager``,
:class:`LegacyCostCallbackHandler` does the cost and event part through the old callback API.

Example:
    >>> from aipowertools.core import CostTracker
    >>> from aipowertools.callbacks.llama_index import instrument
    >>> handle = instrument(tracker=CostTracker(store="memory://"))
    >>> handle.uninstrument()
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from llama_index.core.callbacks.base_handler import BaseCallbackHandler
from llama_index.core.callbacks.schema import CBEventType, EventPayload
from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.span_handlers import BaseSpanHandler
from pydantic import PrivateAttr

from aipowertools.callbacks._genai import (
    Runs,
    RunState,
    Tokens,
    check_tracker,
    end_span,
    estimate_usage,
    get_tracer,
    llm_request_attributes,
    llm_response_attributes,
    log_event,
    monitor_error,
    monitor_ok,
    provider_name,
    record_call,
    start_span,
)

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from aipowertools.callbacks._logger import StructuredLogger

__all__ = [
    "Instrumentation",
    "LegacyCostCallbackHandler",
    "ObservabilityEventHandler",
    "ObservabilitySpanHandler",
    "instrument",
]

_log = logging.getLogger("aipowertools.callbacks")


def _usage(response: Any) -> Tokens | None:
    """Token usage of a LlamaIndex ``ChatResponse`` / ``CompletionResponse``, if reported."""
    from aipowertools.core import Usage
    from aipowertools.core.errors import ConfigurationError

    if response is None:
        return None
    for source in (getattr(response, "raw", None), response):
        if source is None:
            continue
        try:
            u = Usage.from_any(source)
        except ConfigurationError:
            continue
        if u.input_tokens or u.output_tokens:
            return Tokens(
                u.input_tokens,
                u.output_tokens,
                u.cached_input_tokens,
                u.cache_creation_tokens,
                u.reasoning_tokens,
            )
    return None


def _response_model(response: Any) -> str | None:
    raw = getattr(response, "raw", None)
    model = raw.get("model") if isinstance(raw, Mapping) else getattr(raw, "model", None)
    return str(model) if isinstance(model, str) and model else None


def _routed(response: Any) -> tuple[str, float] | None:
    """(request id, cost) of an answer from ``RouterLLM`` (its ``raw`` reports both)."""
    raw = getattr(response, "raw", None)
    if not isinstance(raw, Mapping):
        return None
    rid, cost = raw.get("request_id"), raw.get("cost_usd")
    if isinstance(rid, str) and rid and isinstance(cost, int | float) and "deployment" in raw:
        return rid, float(cost)
    return None


def _response_id(response: Any) -> str | None:
    raw = getattr(response, "raw", None)
    rid = raw.get("id") if isinstance(raw, Mapping) else getattr(raw, "id", None)
    return str(rid) if isinstance(rid, str) and rid else None


def _finish_reasons(response: Any) -> list[str]:
    raw = getattr(response, "raw", None)
    choices = raw.get("choices") if isinstance(raw, Mapping) else getattr(raw, "choices", None)
    reasons = []
    for choice in choices or ():
        reason = (
            choice.get("finish_reason")
            if isinstance(choice, Mapping)
            else getattr(choice, "finish_reason", None)
        )
        if reason:
            reasons.append(str(reason))
    return reasons


def _text(response: Any) -> str:
    message = getattr(response, "message", None)
    if message is not None:
        return str(getattr(message, "content", "") or "")
    return str(getattr(response, "text", "") or "")


def _messages(messages: Any) -> list[dict[str, Any]]:
    out = []
    for m in messages or ():
        role = getattr(m, "role", "user")
        out.append(
            {"role": str(getattr(role, "value", role)), "content": str(getattr(m, "content", ""))}
        )
    return out


def _model_and_provider(model_dict: Mapping[str, Any]) -> tuple[str | None, str | None]:
    model = model_dict.get("model") or model_dict.get("model_name")
    provider = provider_name(model_dict.get("class_name"), model_dict.get("api_base"))
    return (str(model) if model else None), provider


class _Core:
    """State shared by the event and span handlers of one :func:`instrument` call."""

    def __init__(
        self,
        tracker: Any,
        logger: StructuredLogger | None,
        tracer_provider: Any,
        spans: bool,
        user: str | None,
        session: str | None,
        task: str | None,
        tags: tuple[str, ...],
        monitor: Any = None,
    ) -> None:
        check_tracker(tracker, "instrument(tracker=...)", optional=True)
        self.tracker = tracker
        self.monitor = monitor
        self.logger = logger
        self.tracer = get_tracer(tracer_provider) if spans else None
        self.user, self.session, self.task, self.tags = user, session, task, tags
        self.runs = Runs()
        self._lock = threading.Lock()
        # LlamaIndex span id -> OpenTelemetry span (or the parent span for LLM method spans,
        # whose GenAI span is opened from the LLM events instead).
        self.spans: dict[str, tuple[Span | None, bool]] = {}

    def otel_parent(self, llama_span_id: str | None) -> Span | None:
        if llama_span_id is None:
            return None
        entry = self.spans.get(llama_span_id)
        return entry[0] if entry else None

    # LLM calls --------------------------------------------------------------------------
    def llm_start(
        self,
        key: str,
        operation: str,
        prompt: Any,
        model_dict: Mapping[str, Any],
        params: Mapping[str, Any],
        llama_span_id: str | None,
    ) -> None:
        model, provider = _model_and_provider(model_dict)
        parent = self.otel_parent(llama_span_id)
        span = None
        if self.tracer is not None:
            merged = {**model_dict, **params}
            span = start_span(
                self.tracer,
                f"{operation} {model}" if model else operation,
                parent,
                llm_request_attributes(operation, model, provider, merged),
                client=True,
            )
        state = self.runs.start(
            RunState(
                run_id=key,
                kind="chat_model" if operation == "chat" else "llm",
                name=model or operation,
                started=time.perf_counter(),
                parent_run_id=llama_span_id,
                model=model,
                provider=provider,
                span=span,
                prompt=prompt,
            )
        )
        if self.logger is not None:
            fields: dict[str, Any] = {
                "run_id": key,
                "parent_run_id": llama_span_id,
                "model": model,
                "provider": provider,
            }
            if self.logger.log_content:
                fields["messages" if operation == "chat" else "prompt"] = (
                    _messages(prompt) if operation == "chat" else prompt
                )
            event = "chat_model_start" if operation == "chat" else "llm_start"
            log_event(self.logger, "info", event, fields, state.span)

    def llm_token(self, key: str) -> None:
        state = self.runs.get(key)
        if state is not None and state.first_token is None:
            state.first_token = time.perf_counter()

    def llm_end(self, key: str, response: Any) -> None:
        state = self.runs.pop(key)
        if state is None:
            return
        usage = _usage(response)
        estimated = usage is None
        text = _text(response)
        response_model = _response_model(response)
        if usage is None:
            prompt = _messages(state.prompt) if state.kind == "chat_model" else state.prompt
            try:
                usage = estimate_usage(prompt, text, response_model or state.model)
            except Exception:
                _log.warning("could not count tokens for run %s", key, exc_info=True)
                usage = Tokens()
        reasons = _finish_reasons(response)
        if self.tracker is not None:
            try:
                # A routed answer keeps the router's request id and cost: a router and this
                # handler sharing one tracker write one record, at one price.
                routed = _routed(response)
                record_call(
                    self.tracker,
                    state,
                    request_id=routed[0] if routed else f"llamaindex:{key}",
                    cost_usd=routed[1] if routed else None,
                    usage=usage,
                    model=response_model or state.model,
                    estimated=estimated,
                    user=self.user,
                    session=self.session,
                    task=self.task,
                    tags=self.tags,
                    trace_id=_trace_of(state.span) or state.parent_run_id,
                )
            except Exception:
                _log.warning("could not record LlamaIndex run %s", key, exc_info=True)
        try:
            monitor_ok(self.monitor, state, usage, response_model or state.model)
        except Exception:
            _log.warning("could not feed the provider monitor", exc_info=True)
        if self.logger is not None:
            ttft = state.ttft_ms()
            fields: dict[str, Any] = {
                "run_id": key,
                "parent_run_id": state.parent_run_id,
                "model": state.model,
                "response_model": response_model,
                "provider": state.provider,
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "usage_estimated": estimated,
                "finish_reasons": reasons or None,
                "duration_ms": round(state.duration_ms(), 3),
                "ttft_ms": round(ttft, 3) if ttft is not None else None,
                "streamed": state.first_token is not None,
            }
            if self.logger.log_content:
                fields["completion"] = text
            event = "chat_model_end" if state.kind == "chat_model" else "llm_end"
            log_event(self.logger, "info", event, fields, state.span)
        end_span(
            state.span,
            llm_response_attributes(
                response_model,
                _response_id(response),
                None if estimated else usage.input_tokens,
                None if estimated else usage.output_tokens,
                reasons,
            ),
            None,
        )

    def llm_error(self, key: str, error: BaseException | str) -> None:
        state = self.runs.pop(key)
        if state is None:
            return
        exc = error if isinstance(error, BaseException) else RuntimeError(error)
        try:
            monitor_error(self.monitor, state, exc)
        except Exception:
            _log.warning("could not feed the provider monitor", exc_info=True)
        if self.logger is not None:
            event = "chat_model_error" if state.kind == "chat_model" else "llm_error"
            log_event(
                self.logger,
                "error",
                event,
                {
                    "run_id": key,
                    "model": state.model,
                    "error": exc,
                    "duration_ms": round(state.duration_ms(), 3),
                },
                state.span,
            )
        end_span(state.span, {}, exc)


def _trace_of(span: Span | None) -> str | None:
    from aipowertools.callbacks._genai import span_ids

    return span_ids(span)[0]


_LLM_EVENTS = {
    "LLMChatStartEvent": "chat",
    "LLMCompletionStartEvent": "text_completion",
}


class ObservabilityEventHandler(BaseEventHandler):
    """Instrumentation event handler: cost, structured events and GenAI spans for LLM calls.

    Usually created by :func:`instrument`; add it yourself with
    ``get_dispatcher().add_event_handler(handler)`` (together with
    :class:`ObservabilitySpanHandler` for parenting).
    """

    _core: Any = PrivateAttr()

    def __init__(self, core: _Core) -> None:
        super().__init__()
        self._core = core

    @classmethod
    def class_name(cls) -> str:
        """Class name."""
        return "AIPowerToolsObservabilityEventHandler"

    def span_for(self, llama_span_id: str) -> Any:
        """The GenAI span opened for the LLM call of a LlamaIndex span still in progress.

        An LLM that makes calls of its own (``RouterLLM``) runs them under this span, so their
        spans are its children.
        """
        state = self._core.runs.get(str(llama_span_id))
        return state.span if state is not None else None

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        """Dispatch one instrumentation event."""
        core: _Core = self._core
        name = type(event).__name__
        key = str(event.span_id) if event.span_id else f"event:{event.id_}"
        try:
            if name in _LLM_EVENTS:
                prompt = getattr(event, "messages", None)
                if prompt is None:
                    prompt = getattr(event, "prompt", None)
                core.llm_start(
                    key,
                    _LLM_EVENTS[name],
                    prompt,
                    dict(getattr(event, "model_dict", {}) or {}),
                    dict(getattr(event, "additional_kwargs", {}) or {}),
                    event.span_id,
                )
            elif name in ("LLMChatInProgressEvent", "LLMCompletionInProgressEvent"):
                core.llm_token(key)
            elif name in ("LLMChatEndEvent", "LLMCompletionEndEvent"):
                core.llm_end(key, getattr(event, "response", None))
            elif name == "SpanDropEvent":
                core.llm_error(key, str(getattr(event, "err_str", "error")))
            elif core.logger is not None and name in _LOGGED:
                fields = _LOGGED[name](event)
                fields["span"] = event.span_id
                log_event(core.logger, "info", _snake(name), fields, core.otel_parent(key))
        except Exception:
            _log.warning("LlamaIndex handler failed on %s", name, exc_info=True)


def _snake(name: str) -> str:
    base = name[:-5] if name.endswith("Event") else name
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in base).lstrip("_")


_LOGGED: dict[str, Any] = {
    "QueryStartEvent": lambda e: {},
    "QueryEndEvent": lambda e: {},
    "RetrievalStartEvent": lambda e: {},
    "RetrievalEndEvent": lambda e: {"nodes": len(getattr(e, "nodes", []) or [])},
    "EmbeddingStartEvent": lambda e: {},
    "EmbeddingEndEvent": lambda e: {"chunks": len(getattr(e, "chunks", []) or [])},
    "SynthesizeStartEvent": lambda e: {},
    "SynthesizeEndEvent": lambda e: {},
    "ReRankStartEvent": lambda e: {"top_n": getattr(e, "top_n", None)},
    "ReRankEndEvent": lambda e: {"nodes": len(getattr(e, "nodes", []) or [])},
}


def _span_name(id_: str) -> str:
    # "ClassName.method-<uuid4>": drop the 37-character "-<uuid>" tail.
    return id_[:-37] if len(id_) > 37 and id_[-37] == "-" else id_


class ObservabilitySpanHandler(BaseSpanHandler[Any]):
    """Instrumentation span handler: one OpenTelemetry span per LlamaIndex span.

    LLM method spans are not duplicated: their GenAI span (``chat {model}``) is opened by
    :class:`ObservabilityEventHandler` under the same parent.
    """

    _core: Any = PrivateAttr()

    def __init__(self, core: _Core) -> None:
        super().__init__()
        self._core = core

    @classmethod
    def class_name(cls) -> str:
        """Class name."""
        return "AIPowerToolsObservabilitySpanHandler"

    def new_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        parent_span_id: str | None = None,
        tags: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Open an OpenTelemetry span (or remember the parent of an LLM method span)."""
        core: _Core = self._core
        from llama_index.core.base.llms.base import BaseLLM

        parent = core.otel_parent(parent_span_id)
        if parent is None:
            from opentelemetry import trace

            current = trace.get_current_span()
            parent = current if current.get_span_context().is_valid else None
        if isinstance(instance, BaseLLM) or core.tracer is None:
            core.spans[id_] = (parent, False)
            return None
        span = start_span(core.tracer, _span_name(id_), parent, {"llama_index.span_id": id_})
        core.spans[id_] = (span, True)
        return None

    def prepare_to_exit_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        result: Any | None = None,
        **kwargs: Any,
    ) -> None:
        """End the span."""
        entry = self._core.spans.pop(id_, None)
        if entry is not None and entry[1]:
            end_span(entry[0], {}, None)
        return None

    def prepare_to_drop_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        err: BaseException | None = None,
        **kwargs: Any,
    ) -> None:
        """End the span with an error."""
        entry = self._core.spans.pop(id_, None)
        if entry is not None and entry[1]:
            end_span(entry[0], {}, err)
        return None


class Instrumentation:
    """What :func:`instrument` installed; call :meth:`uninstrument` to remove it."""

    def __init__(
        self,
        dispatcher: Any,
        event_handler: ObservabilityEventHandler,
        span_handler: ObservabilitySpanHandler,
    ) -> None:
        self.dispatcher = dispatcher
        self.event_handler = event_handler
        self.span_handler = span_handler

    def uninstrument(self) -> None:
        """Remove the handlers from the dispatcher."""
        d = self.dispatcher
        if self.event_handler in d.event_handlers:
            d.event_handlers.remove(self.event_handler)
        if self.span_handler in d.span_handlers:
            d.span_handlers.remove(self.span_handler)


def instrument(
    tracker: Any = None,
    logger: StructuredLogger | None = None,
    *,
    tracer_provider: Any = None,
    spans: bool = True,
    user: str | None = None,
    session: str | None = None,
    task: str | None = None,
    tags: tuple[str, ...] = (),
    monitor: Any = None,
    dispatcher: Any = None,
) -> Instrumentation:
    """Record cost, events and spans for every LlamaIndex call, in one line.

    Args:
        tracker: ``CostTracker`` to record each LLM call into (request id
            ``llamaindex:<span id>``; a ``RouterLLM`` answer keeps the router's request id
            and cost); ``None`` to skip cost.
        logger: ``StructuredLogger`` for events; ``None`` to skip events.
        tracer_provider: OpenTelemetry tracer provider (the global one by default).
        spans: Whether to create spans.
        user: User recorded with each call.
        session: Session recorded with each call.
        task: Task recorded with each call.
        tags: Tags recorded with each call.
        monitor: ``ProviderMonitor`` fed with each call's latency, TTFT and outcome.
        dispatcher: Dispatcher to attach to (the root dispatcher by default).

    Returns:
        A handle whose ``uninstrument()`` removes the handlers.
    """
    core = _Core(tracker, logger, tracer_provider, spans, user, session, task, tuple(tags), monitor)
    d = dispatcher or get_dispatcher()
    events = ObservabilityEventHandler(core)
    span_handler = ObservabilitySpanHandler(core)
    d.add_event_handler(events)
    d.add_span_handler(span_handler)
    return Instrumentation(d, events, span_handler)


class LegacyCostCallbackHandler(BaseCallbackHandler):
    """Cost and events through the legacy ``Settings.callback_manager`` API.

    Prefer :func:`instrument`; use this where an application already wires a
    ``CallbackManager``. Do not use both with one tracker (each records under its own ids).

    Args:
        tracker: ``CostTracker`` to record into (request id ``llamaindex:cb:<event id>``).
        logger: ``StructuredLogger`` for events.
        user: User recorded with each call.
        session: Session recorded with each call.
        task: Task recorded with each call.
        tags: Tags recorded with each call.

    Example:
        >>> from llama_index.core import Settings
        >>> from llama_index.core.callbacks import CallbackManager
        >>> from aipowertools.core import CostTracker
        >>> handler = LegacyCostCallbackHandler(CostTracker(store="memory://"))
        >>> Settings.callback_manager = CallbackManager([handler])
    """

    def __init__(
        self,
        tracker: Any = None,
        logger: StructuredLogger | None = None,
        *,
        user: str | None = None,
        session: str | None = None,
        task: str | None = None,
        tags: tuple[str, ...] = (),
    ) -> None:
        super().__init__(event_starts_to_ignore=[], event_ends_to_ignore=[])
        self._core = _Core(tracker, logger, None, False, user, session, task, tuple(tags))

    def on_event_start(
        self,
        event_type: CBEventType,
        payload: dict[str, Any] | None = None,
        event_id: str = "",
        parent_id: str = "",
        **kwargs: Any,
    ) -> str:
        """Remember an LLM call's prompt and model."""
        if event_type == CBEventType.LLM and payload is not None:
            try:
                messages = payload.get(EventPayload.MESSAGES)
                prompt = messages if messages is not None else payload.get(EventPayload.PROMPT)
                model_dict = payload.get(EventPayload.SERIALIZED) or {}
                self._core.llm_start(
                    f"cb:{event_id}",
                    "chat" if messages is not None else "text_completion",
                    prompt,
                    dict(model_dict),
                    {},
                    parent_id or None,
                )
            except Exception:
                _log.warning("LlamaIndex legacy handler failed to start", exc_info=True)
        return event_id

    def on_event_end(
        self,
        event_type: CBEventType,
        payload: dict[str, Any] | None = None,
        event_id: str = "",
        **kwargs: Any,
    ) -> None:
        """Record a finished LLM call (or its error)."""
        if event_type != CBEventType.LLM or payload is None:
            return
        try:
            error = payload.get(EventPayload.EXCEPTION)
            if error is not None:
                self._core.llm_error(f"cb:{event_id}", error)
                return
            response = payload.get(EventPayload.RESPONSE) or payload.get(EventPayload.COMPLETION)
            self._core.llm_end(f"cb:{event_id}", response)
        except Exception:
            _log.warning("LlamaIndex legacy handler failed to record", exc_info=True)

    def start_trace(self, trace_id: str | None = None) -> None:
        """Nothing to do at trace start."""

    def end_trace(
        self, trace_id: str | None = None, trace_map: dict[str, list[str]] | None = None
    ) -> None:
        """Nothing to do at trace end."""

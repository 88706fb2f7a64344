"""LangChain callback handlers: cost into a ``CostTracker``, structured events and GenAI spans.

Attach them to a model (``ChatOpenAI(callbacks=[...])``), to a run's config
(``chain.invoke(x, config={"callbacks": [...]})``) or to an agent built with
``langchain.agents.create_agent``; they work in sync, async and streaming runs.

Example:
    >>> from aipowertools.core import CostTracker
    >>> from aipowertools.callbacks.langchain import CostCallbackHandler
    >>> handler = CostCallbackHandler(CostTracker(store="memory://"))
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal, NamedTuple
from uuid import UUID

from langchain.agents.middleware import (
    AgentMiddleware,
    AgentState,
    ModelRequest,
    ModelResponse,
)
from langchain.agents.middleware.types import PrivateStateAttr, ToolCallRequest
from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler
from langchain_core.messages import AIMessage, ToolMessage
from langgraph.channels.untracked_value import UntrackedValue
from langgraph.types import Command
from typing_extensions import NotRequired

from aipowertools.callbacks._genai import (
    Runs,
    RunState,
    Tokens,
    _trace_api,
    check_tracker,
    end_span,
    estimate_usage,
    get_tracer,
    has_hard_limits,
    llm_request_attributes,
    llm_response_attributes,
    log_event,
    monitor_error,
    monitor_ok,
    provider_name,
    record_kwargs,
    span_ids,
    start_span,
)
from aipowertools.core.errors import BudgetExceededError, ConfigurationError, UnknownModelError

if TYPE_CHECKING:
    from langchain_core.messages import BaseMessage
    from langchain_core.outputs import LLMResult

    from aipowertools.callbacks._logger import StructuredLogger

__all__ = [
    "AgentLogMiddleware",
    "AsyncCostCallbackHandler",
    "BudgetMiddleware",
    "CostCallbackHandler",
    "LoggingCallbackHandler",
]

_log = logging.getLogger("aipowertools.callbacks")
_USER_KEYS = ("user", "user_id")
_SESSION_KEYS = ("session", "session_id", "thread_id", "conversation_id")
_TASK_KEYS = ("task", "task_name")


def _first(metadata: Mapping[str, Any], keys: Sequence[str]) -> str | None:
    for key in keys:
        value = metadata.get(key)
        if value is not None:
            return str(value)
    return None


_NO_PARAMS: Mapping[str, Any] = {}


def _params(kwargs: Mapping[str, Any]) -> Mapping[str, Any]:
    """The run's ``invocation_params`` (read only: not copied)."""
    params = kwargs.get("invocation_params")
    return params if isinstance(params, Mapping) else _NO_PARAMS


def _model_and_provider(
    serialized: Mapping[str, Any] | None, metadata: Mapping[str, Any], params: Mapping[str, Any]
) -> tuple[str | None, str | None]:
    model = (
        params.get("model")
        or params.get("model_name")
        or metadata.get("ls_model_name")
        or params.get("model_id")
    )
    provider = provider_name(metadata.get("ls_provider"))
    if provider is None:  # the class path and type only when LangChain names no provider
        ident = (serialized or {}).get("id")
        class_path = ".".join(ident) if isinstance(ident, list) else None
        provider = provider_name(class_path, params.get("_type"))
    return (str(model) if model else None), provider


def _run_name(serialized: Mapping[str, Any] | None, kwargs: Mapping[str, Any], default: str) -> str:
    name = kwargs.get("name")
    if name:
        return str(name)
    if serialized:
        if serialized.get("name"):
            return str(serialized["name"])
        ident = serialized.get("id")
        if isinstance(ident, list) and ident:
            return str(ident[-1])
    return default


class _ResultInfo(NamedTuple):
    """What the handlers read from an ``LLMResult`` (read once, shared by both handlers)."""

    usage: Tokens | None
    model: str | None
    response_id: str | None
    text: str
    reasons: tuple[str, ...]
    ledger_key: str | None  # the request id a RouterChatModel recorded the call under
    cost_usd: float | None  # a cost the response reports itself


# The last result read, by weak reference: with a cost and a logging handler on one run, the
# second handler reuses what the first one read from the same LLMResult object.
_last_result: tuple[weakref.ref[Any], _ResultInfo] | None = None


def _result_info(response: LLMResult) -> _ResultInfo:
    global _last_result
    last = _last_result
    if last is not None and last[0]() is response:
        return last[1]
    info = _read_result(response)
    with contextlib.suppress(TypeError):  # an LLMResult look-alike without weak references
        _last_result = (weakref.ref(response), info)
    return info


def _usage_from_result(
    response: LLMResult,
) -> tuple[Tokens | None, str | None, str | None, str, list[str]]:
    """Usage, response model, response id, completion text and finish reasons of a result."""
    info = _result_info(response)
    return info.usage, info.model, info.response_id, info.text, list(info.reasons)


def _read_result(response: LLMResult) -> _ResultInfo:
    usage: Tokens | None = None
    model: str | None = None
    response_id: str | None = None
    ledger_key: str | None = None
    cost_usd: float | None = None
    texts: list[str] = []
    reasons: list[str] = []
    for generations in response.generations:
        counted = False
        for gen in generations:
            texts.append(gen.text or "")
            info = gen.generation_info or {}
            message = getattr(gen, "message", None)
            meta: Mapping[str, Any] = getattr(message, "response_metadata", None) or {}
            reason = (
                info.get("finish_reason") or meta.get("finish_reason") or meta.get("stop_reason")
            )
            if reason:
                reasons.append(str(reason))
            model = model or meta.get("model_name") or meta.get("model")
            response_id = response_id or meta.get("id") or getattr(message, "id", None)
            if meta:
                if (
                    ledger_key is None
                    and meta.get("model_provider") == "aipowertools-router"
                    and meta.get("request_id")
                ):
                    ledger_key = str(meta["request_id"])
                cost = meta.get("cost_usd")
                if cost_usd is None and isinstance(cost, (int, float)):
                    cost_usd = float(cost)
            um = getattr(message, "usage_metadata", None)
            if um and not counted:  # n > 1 choices carry the same usage: count it once
                counted = True
                tokens = _usage_from_metadata(um)
                usage = tokens if usage is None else usage + tokens
    if usage is None:
        token_usage = (response.llm_output or {}).get("token_usage") or (
            response.llm_output or {}
        ).get("usage")
        if isinstance(token_usage, Mapping) and (
            token_usage.get("prompt_tokens") or token_usage.get("completion_tokens")
        ):
            usage = Tokens(
                input_tokens=int(token_usage.get("prompt_tokens") or 0),
                output_tokens=int(token_usage.get("completion_tokens") or 0),
            )
        model = model or (response.llm_output or {}).get("model_name")
    return _ResultInfo(
        usage,
        str(model) if model else None,
        response_id,
        "".join(texts),
        tuple(reasons),
        ledger_key,
        cost_usd,
    )


def _usage_from_metadata(um: Mapping[str, Any]) -> Tokens:
    inp = um.get("input_token_details") or {}
    out = um.get("output_token_details") or {}
    return Tokens(
        input_tokens=int(um.get("input_tokens") or 0),
        output_tokens=int(um.get("output_tokens") or 0),
        cached_input_tokens=int(inp.get("cache_read") or 0),
        cache_creation_tokens=int(inp.get("cache_creation") or 0),
        reasoning_tokens=int(out.get("reasoning") or 0),
    )


def _openai_messages(messages: list[BaseMessage]) -> list[dict[str, Any]]:
    from langchain_core.messages import convert_to_openai_messages

    converted = convert_to_openai_messages(messages)
    return converted if isinstance(converted, list) else [converted]


class _CostLogic:
    """What the sync and async cost handlers share: reading runs, building ledger calls."""

    tracker: Any
    user: str | None
    session: str | None
    task: str | None
    tags: tuple[str, ...]
    monitor: Any
    _runs: Runs

    @property
    def ignore_chain(self) -> bool:
        return True

    @property
    def ignore_agent(self) -> bool:
        return True

    @property
    def ignore_retriever(self) -> bool:
        return True

    def _setup(
        self,
        tracker: Any,
        user: str | None,
        session: str | None,
        task: str | None,
        tags: Sequence[str],
        monitor: Any,
    ) -> None:
        check_tracker(tracker, type(self).__name__)
        self.tracker = tracker
        self.user = user
        self.session = session
        self.task = task
        self.tags = tuple(tags)
        self.monitor = monitor
        self._runs = Runs()

    def _begin(
        self,
        serialized: dict[str, Any] | None,
        prompt: Any,
        run_id: UUID,
        parent_run_id: UUID | None,
        tags: list[str] | None,
        metadata: dict[str, Any] | None,
        kwargs: Mapping[str, Any],
        kind: str,
    ) -> tuple[RunState, dict[str, Any] | None]:
        """The run's state, and the reservation to make when hard budgets apply."""
        meta = metadata or {}
        params = _params(kwargs)
        model, provider = _model_and_provider(serialized, meta, params)
        state = RunState(
            run_id=str(run_id),
            kind=kind,
            name=model or "llm",
            started=time.perf_counter(),
            parent_run_id=str(parent_run_id) if parent_run_id else None,
            model=model,
            provider=provider,
            prompt=prompt,
            tags=tuple(tags or ()),
            metadata=meta,
        )
        if not has_hard_limits(self.tracker):
            return state, None
        max_tokens = (
            params.get("max_tokens")
            or params.get("max_completion_tokens")
            or meta.get("ls_max_tokens")
        )
        user, _, task, ledger_tags = self._who(state)
        return state, {
            "model": model,
            "messages": _openai_messages(prompt[0]) if kind == "chat" else prompt[0],
            "max_tokens": int(max_tokens) if max_tokens else None,
            "user": user,
            "task": task,
            "tags": ledger_tags,
            "request_id": str(run_id),
        }

    def _first_token(self, run_id: UUID) -> None:
        state = self._runs.get(run_id)
        if state is not None and state.first_token is None:
            state.first_token = time.perf_counter()

    def _who(self, state: RunState) -> tuple[str | None, str | None, str | None, tuple[str, ...]]:
        meta = state.metadata
        user = _first(meta, _USER_KEYS) or self.user
        session = _first(meta, _SESSION_KEYS) or self.session
        task = _first(meta, _TASK_KEYS) or self.task
        tags = self.tags
        if state.tags:
            tags = tags + tuple(t for t in state.tags if ":" not in t and t not in self.tags)
        return user, session, task, tags

    def _finish(
        self, state: RunState, response: LLMResult, run_id: UUID
    ) -> tuple[dict[str, Any], Tokens, str | None]:
        """The ``record`` arguments of a finished run, its usage and the answering model."""
        info = _result_info(response)
        usage, response_model = info.usage, info.model
        estimated = usage is None
        if usage is None:
            prompt = state.prompt[0] if state.prompt else None
            if state.kind == "chat" and prompt is not None:
                prompt = _openai_messages(prompt)
            usage = estimate_usage(prompt, info.text, response_model or state.model)
        user, session, task, tags = self._who(state)
        trace_id, _ = span_ids(_current_span())
        record = record_kwargs(
            state,
            request_id=info.ledger_key or state.run_id,
            usage=usage,
            model=response_model or state.model,
            estimated=estimated,
            user=user,
            session=session,
            task=task,
            tags=tags,
            trace_id=trace_id or state.parent_run_id or state.run_id,
        )
        return record, usage, response_model or state.model


class CostCallbackHandler(_CostLogic, BaseCallbackHandler):
    """Records every chat model / LLM call into a ``CostTracker`` and enforces its budgets.

    * Usage comes from the final message's ``usage_metadata`` (streams included, when the
      provider reports usage; for ``ChatOpenAI`` set ``stream_usage=True``). When a call
      reports none, tokens are counted offline and the record is marked estimated
      (``cost_exact=False``).
    * A record's request id is the LangChain run id, so attaching the handler twice (to the
      model and to the config) or replaying callbacks never double counts. For a
      ``RouterChatModel`` answer it is the router's request id, so a router and this handler
      sharing one tracker write one record.
    * With hard budgets on the tracker, the worst-case cost is reserved in
      ``on_chat_model_start`` and a call that could pass a limit is refused with
      :class:`~aipowertools.core.errors.BudgetExceededError` before any provider is called.
    * ``metadata`` keys ``user``/``user_id``, ``session``/``session_id``/``thread_id`` and
      ``task`` and the run's tags (without LangChain's internal ``seq:step:N``-style tags)
      go into the ledger; ``trace_id`` is the current OpenTelemetry trace, else the parent
      run id.

    Args:
        tracker: The ``CostTracker`` to record into.
        user: Default user for the records.
        session: Default session.
        task: Default task name.
        tags: Tags added to every record.
        monitor: Optional ``ProviderMonitor`` fed with each call's latency, TTFT and outcome.

    Example:
        >>> from aipowertools.core import CostTracker
        >>> handler = CostCallbackHandler(CostTracker(store="memory://"), task="demo")
    """

    raise_error = True  # so that BudgetExceededError stops the call
    run_inline = True  # runs in the caller's context in async runs, no thread hop

    def __init__(
        self,
        tracker: Any,
        *,
        user: str | None = None,
        session: str | None = None,
        task: str | None = None,
        tags: Sequence[str] = (),
        monitor: Any = None,
    ) -> None:
        self._setup(tracker, user, session, task, tags, monitor)

    def _start(
        self,
        serialized: dict[str, Any] | None,
        prompt: Any,
        run_id: UUID,
        parent_run_id: UUID | None,
        tags: list[str] | None,
        metadata: dict[str, Any] | None,
        kwargs: Mapping[str, Any],
        kind: str,
    ) -> None:
        state, reserve = self._begin(
            serialized, prompt, run_id, parent_run_id, tags, metadata, kwargs, kind
        )
        if reserve is not None:
            # Raises BudgetExceededError before the provider is called (raise_error=True).
            state.reservation = self.tracker.reserve(**reserve)
        self._runs.start(state, run_id)

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Remember the call and reserve its worst-case cost against hard budgets."""
        try:
            self._start(serialized, messages, run_id, parent_run_id, tags, metadata, kwargs, "chat")
        except BudgetExceededError:
            raise
        except Exception:
            _log.warning("CostCallbackHandler: could not start run %s", run_id, exc_info=True)

    def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Remember a completion-style call and reserve against hard budgets."""
        try:
            self._start(serialized, prompts, run_id, parent_run_id, tags, metadata, kwargs, "llm")
        except BudgetExceededError:
            raise
        except Exception:
            _log.warning("CostCallbackHandler: could not start run %s", run_id, exc_info=True)

    def on_llm_new_token(self, token: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Note the time of the first streamed token."""
        self._first_token(run_id)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        """Record the call's usage and cost (estimated when the provider sent no usage)."""
        state = self._runs.pop(run_id)
        if state is None:
            return
        try:
            record, usage, model = self._finish(state, response, run_id)
            self.tracker.record(**record)
            monitor_ok(self.monitor, state, usage, model)
        except Exception:
            _log.warning("CostCallbackHandler: could not record run %s", run_id, exc_info=True)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Release the call's reservation; tell the monitor about the failure."""
        state = self._runs.pop(run_id)
        if state is None:
            return
        try:
            if state.reservation is not None:
                self.tracker.release(state.reservation)
            monitor_error(self.monitor, state, error)
        except Exception:
            _log.warning("CostCallbackHandler: could not release run %s", run_id, exc_info=True)


class AsyncCostCallbackHandler(_CostLogic, AsyncCallbackHandler):
    """:class:`CostCallbackHandler` for async applications on a networked ledger.

    Same behaviour, but the ledger is written with ``CostTracker.areserve`` / ``arecord`` /
    ``arelease`` (off the event loop), so a Redis or PostgreSQL store never blocks the loop.
    Use it with ``ainvoke`` / ``astream`` / ``abatch``; in sync code use
    :class:`CostCallbackHandler`.

    Args:
        tracker: The ``CostTracker`` to record into.
        user: Default user for the records.
        session: Default session.
        task: Default task name.
        tags: Tags added to every record.
        monitor: Optional ``ProviderMonitor`` fed with each call's latency, TTFT and outcome.
    """

    raise_error = True  # so that BudgetExceededError stops the call

    def __init__(
        self,
        tracker: Any,
        *,
        user: str | None = None,
        session: str | None = None,
        task: str | None = None,
        tags: Sequence[str] = (),
        monitor: Any = None,
    ) -> None:
        self._setup(tracker, user, session, task, tags, monitor)

    async def _astart(
        self,
        serialized: dict[str, Any] | None,
        prompt: Any,
        run_id: UUID,
        parent_run_id: UUID | None,
        tags: list[str] | None,
        metadata: dict[str, Any] | None,
        kwargs: Mapping[str, Any],
        kind: str,
    ) -> None:
        try:
            state, reserve = self._begin(
                serialized, prompt, run_id, parent_run_id, tags, metadata, kwargs, kind
            )
            if reserve is not None:
                state.reservation = await self.tracker.areserve(**reserve)
            self._runs.start(state, run_id)
        except BudgetExceededError:
            raise
        except Exception:
            _log.warning("AsyncCostCallbackHandler: could not start run %s", run_id, exc_info=True)

    async def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Remember the call and reserve its worst-case cost against hard budgets."""
        await self._astart(
            serialized, messages, run_id, parent_run_id, tags, metadata, kwargs, "chat"
        )

    async def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Remember a completion-style call and reserve against hard budgets."""
        await self._astart(
            serialized, prompts, run_id, parent_run_id, tags, metadata, kwargs, "llm"
        )

    async def on_llm_new_token(self, token: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Note the time of the first streamed token."""
        self._first_token(run_id)

    async def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        """Record the call's usage and cost (estimated when the provider sent no usage)."""
        state = self._runs.pop(run_id)
        if state is None:
            return
        try:
            record, usage, model = self._finish(state, response, run_id)
            await self.tracker.arecord(**record)
            monitor_ok(self.monitor, state, usage, model)
        except Exception:
            _log.warning("AsyncCostCallbackHandler: could not record run %s", run_id, exc_info=True)

    async def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Release the call's reservation; tell the monitor about the failure."""
        state = self._runs.pop(run_id)
        if state is None:
            return
        try:
            if state.reservation is not None:
                await self.tracker.arelease(state.reservation)
            monitor_error(self.monitor, state, error)
        except Exception:
            _log.warning("AsyncCostCallbackHandler: could not release %s", run_id, exc_info=True)


def _ledger_key(response: LLMResult) -> str | None:
    """The request id a RouterChatModel already recorded the call under, if any.

    Using it makes the handler and the router write the same ledger record (no double count).
    """
    return _result_info(response).ledger_key


def _current_span() -> Any:
    return _trace_api().get_current_span()


class LoggingCallbackHandler(BaseCallbackHandler):
    """Structured events and OpenTelemetry GenAI spans for every LangChain run.

    Events (through a :class:`~aipowertools.callbacks.StructuredLogger`):
    ``chain_start/end/error``, ``chat_model_start/end/error``, ``llm_start/end/error``,
    ``tool_start/end/error``, ``retriever_start/end/error``, ``agent_action`` and
    ``agent_finish``, each with ``run_id``, ``parent_run_id``, the run's name and tags, and on
    end ``duration_ms`` (plus ``ttft_ms``, token usage, finish reasons for model calls).
    Prompt and completion text is included only when the logger has ``log_content=True``.

    Spans follow the OpenTelemetry GenAI conventions: ``chat {model}`` with
    ``gen_ai.operation.name``, ``gen_ai.provider.name``, ``gen_ai.request.model``,
    ``gen_ai.response.model``, ``gen_ai.usage.input_tokens`` / ``output_tokens`` and
    ``gen_ai.response.finish_reasons``; ``execute_tool {name}`` for tools; chains and
    retrievers by name. Each span is the child of its parent run's span, or of the current
    span when the parent run is not seen by this handler.

    Args:
        logger: Where events go; ``None`` for spans only.
        tracer_provider: OpenTelemetry tracer provider (the global one by default).
        spans: Whether to create spans.
    """

    run_inline = True

    def __init__(
        self,
        logger: StructuredLogger | None = None,
        *,
        tracer_provider: Any = None,
        spans: bool = True,
    ) -> None:
        self.logger = logger
        self._tracer = get_tracer(tracer_provider) if spans else None
        self._runs = Runs()

    def span_for(self, run_id: UUID) -> Any:
        """The OpenTelemetry span this handler opened for a run still in progress, or None.

        A model that makes calls of its own (``RouterChatModel``) runs them under this span,
        so their spans are its children.
        """
        state = self._runs.get(run_id)
        return state.span if state is not None else None

    # helpers --------------------------------------------------------------------------
    def _open(
        self,
        kind: str,
        name: str,
        span_name: str,
        run_id: UUID,
        parent_run_id: UUID | None,
        tags: list[str] | None,
        attributes: Mapping[str, Any],
        *,
        client: bool = False,
    ) -> RunState:
        span = None
        if self._tracer is not None:
            parent = self._runs.get(parent_run_id) if parent_run_id is not None else None
            span = start_span(
                self._tracer, span_name, parent.span if parent else None, attributes, client=client
            )
        return self._runs.start(
            RunState(
                run_id=str(run_id),
                kind=kind,
                name=name,
                started=time.perf_counter(),
                parent_run_id=str(parent_run_id) if parent_run_id else None,
                span=span,
                tags=tuple(tags) if tags else (),
            ),
            run_id,
        )

    def _event(self, level: str, event: str, state: RunState, **fields: Any) -> None:
        if self.logger is None:
            return
        self._log(level, event, state, fields)

    def _log(self, level: str, event: str, state: RunState, fields: Mapping[str, Any]) -> None:
        assert self.logger is not None
        merged: dict[str, Any] = {
            "run_id": state.run_id,
            "parent_run_id": state.parent_run_id,
            "run_type": state.kind,
            "name": state.name,
        }
        if state.tags:
            merged["tags"] = list(state.tags)
        merged.update(fields)
        # Fields built here, for this event alone: assembled off the calling thread, unless
        # they carry an exception.
        log_event(self.logger, level, event, merged, state.span, defer="error" not in merged)

    def _close(
        self,
        run_id: UUID,
        event: str,
        error: BaseException | None = None,
        attributes: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> None:
        state = self._runs.pop(run_id)
        if state is None:
            return
        try:
            if error is not None:
                fields["error"] = error
            self._event(
                "error" if error is not None else "info",
                event,
                state,
                duration_ms=round(state.duration_ms(), 3),
                **fields,
            )
        finally:
            end_span(state.span, attributes or {}, error)

    def _content(self, value: Any) -> Any:
        return value if self.logger is not None and self.logger.log_content else None

    # chains ------------------------------------------------------------------------------
    def on_chain_start(
        self,
        serialized: dict[str, Any],
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Open a chain span and log ``chain_start``."""
        name = _run_name(serialized, kwargs, "chain")
        state = self._open(
            "chain", name, name, run_id, parent_run_id, tags, {"langchain.run.type": "chain"}
        )
        self._event("info", "chain_start", state)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Close the chain span and log ``chain_end``."""
        self._close(run_id, "chain_end")

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Close the chain span with an error and log ``chain_error``."""
        self._close(run_id, "chain_error", error)

    # models ------------------------------------------------------------------------------
    def _model_start(
        self,
        operation: str,
        event: str,
        serialized: dict[str, Any] | None,
        prompt: Any,
        run_id: UUID,
        parent_run_id: UUID | None,
        tags: list[str] | None,
        metadata: dict[str, Any] | None,
        kwargs: Mapping[str, Any],
    ) -> None:
        params = _params(kwargs)
        model, provider = _model_and_provider(serialized, metadata or _NO_PARAMS, params)
        kind = "chat_model" if operation == "chat" else "llm"
        state = self._open(
            kind,
            model or _run_name(serialized, kwargs, kind),
            f"{operation} {model}" if model else operation,
            run_id,
            parent_run_id,
            tags,
            llm_request_attributes(operation, model, provider, params)
            if self._tracer is not None
            else _NO_PARAMS,
            client=True,
        )
        state.model, state.provider = model, provider
        if self.logger is None:
            return
        fields: dict[str, Any] = {"model": model, "provider": provider}
        if self.logger.log_content:
            fields["messages" if operation == "chat" else "prompts"] = (
                [_openai_messages(m) for m in prompt] if operation == "chat" else list(prompt)
            )
        self._log("info", event, state, fields)

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Open a ``chat {model}`` span and log ``chat_model_start``."""
        self._model_start(
            "chat",
            "chat_model_start",
            serialized,
            messages,
            run_id,
            parent_run_id,
            tags,
            metadata,
            kwargs,
        )

    def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Open a ``text_completion {model}`` span and log ``llm_start``."""
        self._model_start(
            "text_completion",
            "llm_start",
            serialized,
            prompts,
            run_id,
            parent_run_id,
            tags,
            metadata,
            kwargs,
        )

    def on_llm_new_token(self, token: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Note the time of the first streamed token (TTFT)."""
        state = self._runs.get(run_id)
        if state is not None and state.first_token is None:
            state.first_token = time.perf_counter()

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        """Close the model span with usage and finish reasons and log ``*_end``."""
        state = self._runs.pop(run_id)
        if state is None:
            return
        info = _result_info(response)
        usage, response_model, reasons = info.usage, info.model, info.reasons
        inp = int(usage.input_tokens) if usage is not None else None
        out = int(usage.output_tokens) if usage is not None else None
        try:
            if self.logger is not None:
                ttft = state.ttft_ms()
                fields: dict[str, Any] = {
                    "duration_ms": round(state.duration_ms(), 3),
                    "model": state.model,
                    "response_model": response_model,
                    "provider": state.provider,
                    "input_tokens": inp,
                    "output_tokens": out,
                    "finish_reasons": list(reasons) if reasons else None,
                    "ttft_ms": round(ttft, 3) if ttft is not None else None,
                    "streamed": state.first_token is not None,
                }
                if info.cost_usd is not None:
                    fields["cost_usd"] = info.cost_usd
                if self.logger.log_content:
                    fields["completion"] = info.text
                event = "chat_model_end" if state.kind == "chat_model" else "llm_end"
                self._log("info", event, state, fields)
        finally:
            if state.span is not None:
                end_span(
                    state.span,
                    llm_response_attributes(response_model, info.response_id, inp, out, reasons),
                    None,
                )

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Close the model span with an error and log ``*_error``."""
        state = self._runs.get(run_id)
        kind = state.kind if state is not None else "llm"
        self._close(
            run_id,
            "chat_model_error" if kind == "chat_model" else "llm_error",
            error,
            error_kind=_error_kind(error),
        )

    # tools and retrievers -----------------------------------------------------------------
    def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Open an ``execute_tool {name}`` span and log ``tool_start``."""
        name = _run_name(serialized, kwargs, "tool")
        call_id = kwargs.get("tool_call_id")
        state = self._open(
            "tool",
            name,
            f"execute_tool {name}",
            run_id,
            parent_run_id,
            tags,
            {
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": name,
                "gen_ai.tool.call.id": call_id,
            },
        )
        self._event("info", "tool_start", state, tool=name, tool_call_id=call_id)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Close the tool span and log ``tool_end``."""
        self._close(run_id, "tool_end")

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Close the tool span with an error and log ``tool_error``."""
        self._close(run_id, "tool_error", error)

    def on_retriever_start(
        self,
        serialized: dict[str, Any],
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Open a retriever span and log ``retriever_start``."""
        name = _run_name(serialized, kwargs, "retriever")
        state = self._open(
            "retriever",
            name,
            f"retrieve {name}",
            run_id,
            parent_run_id,
            tags,
            {"langchain.run.type": "retriever"},
        )
        self._event(
            "info", "retriever_start", state, **({"prompt": query} if self._content(query) else {})
        )

    def on_retriever_end(self, documents: Sequence[Any], *, run_id: UUID, **kwargs: Any) -> None:
        """Close the retriever span and log ``retriever_end`` with the document count."""
        self._close(
            run_id,
            "retriever_end",
            None,
            {"langchain.retriever.documents": len(documents)},
            documents=len(documents),
        )

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Close the retriever span with an error and log ``retriever_error``."""
        self._close(run_id, "retriever_error", error)

    # legacy agents ----------------------------------------------------------------------
    def on_agent_action(self, action: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Log ``agent_action`` (tool chosen by a legacy agent)."""
        state = self._runs.get(run_id) or RunState(
            str(run_id), "agent", "agent", time.perf_counter()
        )
        self._event("info", "agent_action", state, tool=getattr(action, "tool", None))

    def on_agent_finish(self, finish: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Log ``agent_finish``."""
        state = self._runs.get(run_id) or RunState(
            str(run_id), "agent", "agent", time.perf_counter()
        )
        self._event("info", "agent_finish", state)


def _response_cost(response: LLMResult) -> float | None:
    return _result_info(response).cost_usd


def _error_kind(error: BaseException) -> str | None:
    try:
        from aipowertools.core.errors import classify

        return str(classify(error).value)
    except Exception:  # pragma: no cover - classification is best effort here
        return None


# ---------------------------------------------------------------------------------------
# create_agent middleware: a budget around each model call, and cost / log events per step.


class _AgentIdsState(AgentState[Any]):
    """The agent run id our middleware gives each invocation (not checkpointed)."""

    aipowertools_run_id: NotRequired[Annotated[str, UntrackedValue, PrivateStateAttr]]


def _thread_id(request_or_runtime: Any) -> str | None:
    runtime = getattr(request_or_runtime, "runtime", request_or_runtime)
    info = getattr(runtime, "execution_info", None)
    thread = getattr(info, "thread_id", None)
    return str(thread) if thread else None


def _run_id(state: Mapping[str, Any], runtime: Any) -> str:
    run_id = state.get("aipowertools_run_id")
    if run_id:
        return str(run_id)
    info = getattr(runtime, "execution_info", None)
    given = getattr(info, "run_id", None)
    return str(given) if given else uuid.uuid4().hex


def _step(runtime: Any) -> int | None:
    """The graph step of the current model call (LangGraph's ``langgraph_step``)."""
    try:
        from langgraph.config import get_config

        step = get_config().get("metadata", {}).get("langgraph_step")
    except RuntimeError:  # outside a graph run
        return None
    return int(step) if isinstance(step, int) else None


def _answer(response: Any) -> AIMessage | None:
    """The AIMessage of a model call's result (``ModelResponse`` or an ``AIMessage``)."""
    if isinstance(response, AIMessage):
        return response
    response = getattr(response, "model_response", response)
    for message in reversed(getattr(response, "result", None) or []):
        if isinstance(message, AIMessage):
            return message
    return None


def _model_name(model: Any) -> str:
    for attr in ("model_name", "model"):
        name = getattr(model, attr, None)
        if isinstance(name, str) and name:
            return name
    return type(model).__name__


def _ledger_id(message: AIMessage | None) -> str | None:
    """The ledger key of an answer: the router's request id, else the provider's response id."""
    if message is None:
        return None
    meta = message.response_metadata or {}
    key = meta.get("request_id") or meta.get("id") or message.id
    return str(key) if key else None


class BudgetMiddleware(AgentMiddleware[_AgentIdsState, Any]):
    """``create_agent`` middleware: reserve each model call's worst case, settle the real cost.

    Before each model call of the agent the worst-case cost (prompt tokens x input price +
    ``max_tokens`` x output price) is reserved in the :class:`~aipowertools.core.CostTracker`
    (atomically, across processes sharing its store); after the call the real cost is
    settled into the ledger, keyed like the router's and the cost handlers' records (so
    attaching those too never double counts), with the agent's thread id as the session.
    A failed call releases its reservation.

    A model the catalog cannot price (a ``RouterChatModel``, whose router prices and, given
    the same tracker, reserves each attempt itself; a custom model) reserves
    ``estimate_usd`` per call (0 by default: the call is then refused only once the budget is
    spent), and settles the cost its answer reports (``response_metadata["cost_usd"]``).

    When the budget cannot cover the next model call, the agent ends: the step answers with
    ``message`` (an ``AIMessage`` without tool calls, ``response_metadata["budget_exceeded"]``
    set), or, with ``on_exhausted="raise"``, the ``BudgetExceededError`` propagates.

    Args:
        tracker: The ``CostTracker`` that owns the budget.
        on_exhausted: ``"end"`` (default) or ``"raise"``.
        message: Text of the closing answer; ``{error}`` is replaced by the budget error.
        max_tokens: Output cap assumed for the estimate when the model sets none.
        estimate_usd: Worst-case cost reserved per call of a model the catalog cannot price.
        user: User the calls are for (``user:`` budgets).
        task: Task name (``task:`` budgets).
        tags: Project tags (``tag:`` budgets).

    Example:
        >>> from aipowertools.core import CostTracker
        >>> budget = BudgetMiddleware(CostTracker(budget_usd=5.0, store="memory://"))
        >>> agent = create_agent(model, tools, middleware=[budget])  # doctest: +SKIP
    """

    state_schema = _AgentIdsState

    def __init__(
        self,
        tracker: Any,
        *,
        on_exhausted: Literal["end", "raise"] = "end",
        message: str = "I stopped here: the budget for this agent is spent ({error})",
        max_tokens: int | None = None,
        estimate_usd: float = 0.0,
        user: str | None = None,
        task: str | None = None,
        tags: Sequence[str] = (),
    ) -> None:
        super().__init__()
        check_tracker(tracker, "BudgetMiddleware")
        if estimate_usd < 0:
            raise ConfigurationError(f"estimate_usd must be >= 0, got {estimate_usd!r}")
        self.estimate_usd = estimate_usd
        if on_exhausted not in ("end", "raise"):
            raise ConfigurationError(f"on_exhausted must be 'end' or 'raise', got {on_exhausted!r}")
        self.tracker = tracker
        self.on_exhausted = on_exhausted
        self.message = message
        self.max_tokens = max_tokens
        self.user = user
        self.task = task
        self.tags = tuple(tags)

    def _reserve_kwargs(self, request: ModelRequest[Any]) -> dict[str, Any]:
        messages: list[BaseMessage] = list(request.messages)
        if request.system_message is not None:
            messages.insert(0, request.system_message)
        max_tokens = (
            request.model_settings.get("max_tokens")
            or getattr(request.model, "max_tokens", None)
            or self.max_tokens
        )
        return {
            "model": _model_name(request.model),
            "messages": _openai_messages(messages),
            "max_tokens": int(max_tokens) if max_tokens else None,
            "user": self.user,
            "task": self.task,
            "tags": self.tags,
        }

    def _settle_kwargs(
        self, request: ModelRequest[Any], response: Any, started: float
    ) -> tuple[Any, dict[str, Any]]:
        message = _answer(response)
        kwargs: dict[str, Any] = {
            "session": _thread_id(request),
            "latency_ms": (time.perf_counter() - started) * 1000.0,
        }
        key = _ledger_id(message)
        if key is not None:
            kwargs["request_id"] = key
        meta = (message.response_metadata if message is not None else None) or {}
        if not meta.get("model_name"):
            kwargs["model"] = _model_name(request.model)
        if meta.get("cost_usd") is not None:  # priced by whoever answered (the router)
            kwargs["cost_usd"] = float(meta["cost_usd"])
        if message is None or message.usage_metadata is None:
            kwargs["model"] = _model_name(request.model)
            kwargs["usage"] = estimate_usage(None, message.text if message else "", None)
            kwargs["cost_exact"] = False
        return message, kwargs

    def _unpriced(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Reservation arguments for a model the catalog cannot price."""
        rest = {k: v for k, v in kwargs.items() if k not in ("model", "messages", "max_tokens")}
        return {**rest, "estimate_usd": self.estimate_usd}

    def _exhausted(self, error: BudgetExceededError) -> AIMessage:
        if self.on_exhausted == "raise":
            raise error
        return AIMessage(
            content=self.message.format(error=error),
            response_metadata={"budget_exceeded": True, "scope": error.scope},
        )

    def wrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], ModelResponse[Any]],
    ) -> ModelResponse[Any] | AIMessage:
        """Reserve, call the model, settle (or release on failure)."""
        kwargs = self._reserve_kwargs(request)
        try:
            try:
                reservation = self.tracker.reserve(**kwargs)
            except UnknownModelError:
                reservation = self.tracker.reserve(**self._unpriced(kwargs))
        except BudgetExceededError as exc:
            return self._exhausted(exc)
        started = time.perf_counter()
        try:
            response = handler(request)
        except BaseException:
            self.tracker.release(reservation)
            raise
        message, kwargs = self._settle_kwargs(request, response, started)
        self.tracker.settle(reservation, message, **kwargs)
        return response

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelResponse[Any] | AIMessage:
        """Async form of :meth:`wrap_model_call`."""
        kwargs = self._reserve_kwargs(request)
        try:
            try:
                reservation = await self.tracker.areserve(**kwargs)
            except UnknownModelError:
                reservation = await self.tracker.areserve(**self._unpriced(kwargs))
        except BudgetExceededError as exc:
            return self._exhausted(exc)
        started = time.perf_counter()
        try:
            response = await handler(request)
        except BaseException:
            await self.tracker.arelease(reservation)
            raise
        message, kwargs = self._settle_kwargs(request, response, started)
        await self.tracker.asettle(reservation, message, **kwargs)
        return response


class AgentLogMiddleware(AgentMiddleware[_AgentIdsState, Any]):
    """``create_agent`` middleware: a cost and a structured-log event for every agent step.

    Events (through a :class:`~aipowertools.callbacks.StructuredLogger`), each with the
    agent's ``agent_run_id`` (the ``run_id`` of the invocation's config, else one generated per
    invocation) and ``thread_id`` (the checkpointer thread), plus the graph ``step``:

    * ``agent_start`` / ``agent_end`` (with ``model_calls``, ``tool_calls`` and ``cost_usd``
      totals of the invocation);
    * ``agent_model_call`` per model call: ``model``, ``input_tokens``, ``output_tokens``,
      ``cost_usd``, ``latency_ms``, the names of the requested ``tools_called``, and the
      routing ``deployment`` when the model is a ``RouterChatModel``; ``agent_model_error``
      with ``error_type`` on failure;
    * ``agent_tool_call`` per tool call: ``tool``, ``tool_call_id``, ``latency_ms``,
      ``status``; ``agent_tool_error`` on failure.

    With a ``cost_tracker`` each model call is also written to the ledger (keyed like the
    router's and the cost handlers' records, so nothing is counted twice), with the thread
    id as the session and ``agent_run:<id>`` as a tag.

    Args:
        logger: Where events go (``None``: the ledger only).
        cost_tracker: A ``CostTracker`` to record each model call into.
        task: Task name for the ledger.
        tags: Extra ledger tags.

    Example:
        >>> from aipowertools.callbacks import StructuredLogger
        >>> events = AgentLogMiddleware(StructuredLogger("agent", store="memory://"))
        >>> agent = create_agent(model, tools, middleware=[events])  # doctest: +SKIP
    """

    state_schema = _AgentIdsState

    def __init__(
        self,
        logger: StructuredLogger | None = None,
        *,
        cost_tracker: Any = None,
        task: str | None = None,
        tags: Sequence[str] = (),
    ) -> None:
        super().__init__()
        if logger is None and cost_tracker is None:
            raise ConfigurationError("AgentLogMiddleware needs logger= and/or cost_tracker=")
        if cost_tracker is not None:
            check_tracker(cost_tracker, "AgentLogMiddleware")
        self.logger = logger
        self.cost_tracker = cost_tracker
        self.task = task
        self.tags = tuple(tags)
        self._totals: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    # -- ids and totals ---------------------------------------------------------------

    def _ids(self, state: Mapping[str, Any], runtime: Any) -> dict[str, Any]:
        return {"agent_run_id": _run_id(state, runtime), "thread_id": _thread_id(runtime)}

    def _add(self, run_id: str, model_calls: int, tool_calls: int, cost: float) -> None:
        with self._lock:
            totals = self._totals.setdefault(run_id, [0, 0, 0.0])
            totals[0] += model_calls
            totals[1] += tool_calls
            totals[2] += cost

    def _emit(self, level: str, event: str, **fields: Any) -> None:
        if self.logger is not None:
            self.logger.log(level, event, **fields)

    # -- agent --------------------------------------------------------------------------

    def before_agent(self, state: _AgentIdsState, runtime: Any) -> dict[str, Any] | None:
        """Give the invocation its run id and log ``agent_start``."""
        ids = self._ids({}, runtime)
        with self._lock:
            self._totals[ids["agent_run_id"]] = [0, 0, 0.0]
        self._emit("info", "agent_start", **ids, messages=len(state.get("messages", [])))
        return {"aipowertools_run_id": ids["agent_run_id"]}

    async def abefore_agent(self, state: _AgentIdsState, runtime: Any) -> dict[str, Any] | None:
        """Async form of :meth:`before_agent`."""
        return self.before_agent(state, runtime)

    def after_agent(self, state: _AgentIdsState, runtime: Any) -> dict[str, Any] | None:
        """Log ``agent_end`` with the invocation's totals."""
        ids = self._ids(state, runtime)
        with self._lock:
            model_calls, tool_calls, cost = self._totals.pop(ids["agent_run_id"], [0, 0, 0.0])
        self._emit(
            "info", "agent_end", **ids, model_calls=int(model_calls),
            tool_calls=int(tool_calls), cost_usd=cost,
        )  # fmt: skip
        return None

    async def aafter_agent(self, state: _AgentIdsState, runtime: Any) -> dict[str, Any] | None:
        """Async form of :meth:`after_agent`."""
        return self.after_agent(state, runtime)

    # -- model calls ----------------------------------------------------------------------

    def _model_fields(
        self, request: ModelRequest[Any], response: Any, started: float
    ) -> tuple[dict[str, Any], AIMessage | None]:
        message = _answer(response)
        ids = self._ids(request.state, request.runtime)
        fields: dict[str, Any] = {
            **ids,
            "step": _step(request.runtime),
            "latency_ms": (time.perf_counter() - started) * 1000.0,
        }
        meta = (message.response_metadata if message is not None else None) or {}
        model = meta.get("model_name") or _model_name(request.model)
        fields["model"] = model
        usage = message.usage_metadata if message is not None else None
        if usage:
            fields["input_tokens"] = usage.get("input_tokens", 0)
            fields["output_tokens"] = usage.get("output_tokens", 0)
        cost = meta.get("cost_usd")
        if cost is None and usage:
            try:
                from aipowertools.core import cost as price

                cost = price(usage, str(model))
            except Exception:  # a model the catalog does not know: no made-up price
                cost = None
        fields["cost_usd"] = cost
        if meta.get("deployment"):
            fields["deployment"] = meta["deployment"]
        if message is not None and message.tool_calls:
            fields["tools_called"] = [c["name"] for c in message.tool_calls]
        self._add(ids["agent_run_id"], 1, 0, float(cost or 0.0))
        return fields, message

    def _record_kwargs(
        self, fields: Mapping[str, Any], message: AIMessage | None
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": fields["model"],
            "session": fields["thread_id"],
            "task": self.task,
            "tags": (*self.tags, f"agent_run:{fields['agent_run_id']}"),
            "latency_ms": fields["latency_ms"],
        }
        key = _ledger_id(message)
        if key is not None:
            kwargs["request_id"] = key
        if fields.get("cost_usd") is not None:
            kwargs["cost_usd"] = fields["cost_usd"]
        return kwargs

    def _error(self, request: ModelRequest[Any], exc: BaseException, started: float) -> None:
        self._emit(
            "error", "agent_model_error", **self._ids(request.state, request.runtime),
            step=_step(request.runtime), model=_model_name(request.model),
            error_type=type(exc).__name__, error_kind=_error_kind(exc), error=str(exc),
            latency_ms=(time.perf_counter() - started) * 1000.0,
        )  # fmt: skip

    def wrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], ModelResponse[Any]],
    ) -> ModelResponse[Any]:
        """Time the model call; record its cost; log ``agent_model_call``."""
        started = time.perf_counter()
        try:
            response = handler(request)
        except Exception as exc:
            self._error(request, exc, started)
            raise
        fields, message = self._model_fields(request, response, started)
        if self.cost_tracker is not None and message is not None and message.usage_metadata:
            self.cost_tracker.record(message, **self._record_kwargs(fields, message))
        self._emit("info", "agent_model_call", **fields)
        return response

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelResponse[Any]:
        """Async form of :meth:`wrap_model_call`."""
        started = time.perf_counter()
        try:
            response = await handler(request)
        except Exception as exc:
            self._error(request, exc, started)
            raise
        fields, message = self._model_fields(request, response, started)
        if self.cost_tracker is not None and message is not None and message.usage_metadata:
            await self.cost_tracker.arecord(message, **self._record_kwargs(fields, message))
        self._emit("info", "agent_model_call", **fields)
        return response

    # -- tool calls -------------------------------------------------------------------

    def _tool_event(
        self, request: ToolCallRequest, started: float, error: BaseException | None, result: Any
    ) -> None:
        ids = self._ids(request.state or {}, request.runtime)
        self._add(ids["agent_run_id"], 0, 1, 0.0)
        fields: dict[str, Any] = {
            **ids,
            "tool": request.tool_call["name"],
            "tool_call_id": request.tool_call.get("id"),
            "latency_ms": (time.perf_counter() - started) * 1000.0,
        }
        if error is not None:
            self._emit("error", "agent_tool_error", **fields, error_type=type(error).__name__,
                       error=str(error))  # fmt: skip
            return
        status = getattr(result, "status", "success")
        self._emit("info", "agent_tool_call", **fields, status=status)

    def wrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], ToolMessage | Command[Any]],
    ) -> ToolMessage | Command[Any]:
        """Time the tool call; log ``agent_tool_call``."""
        started = time.perf_counter()
        try:
            result = handler(request)
        except Exception as exc:
            self._tool_event(request, started, exc, None)
            raise
        self._tool_event(request, started, None, result)
        return result

    async def awrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], Awaitable[ToolMessage | Command[Any]]],
    ) -> ToolMessage | Command[Any]:
        """Async form of :meth:`wrap_tool_call`."""
        started = time.perf_counter()
        try:
            result = await handler(request)
        except Exception as exc:
            self._tool_event(request, started, exc, None)
            raise
        self._tool_event(request, started, None, result)
        return result

"""CallSpan: the context manager behind ``CostTracker.track_call``."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
import time
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from aipowertools.core._budget import Reservation
from aipowertools.core._ledger import LedgerRecord

if TYPE_CHECKING:
    from aipowertools.core._tracker import CostTracker
    from aipowertools.core._usage import Usage

logger = logging.getLogger("aipowertools.core")

# A dated snapshot of the same model ("gpt-4o-2024-08-06", "claude-3-5-haiku-20241022"):
# priced under the name the caller asked for, so prices set for that name still apply.
_SNAPSHOT = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8}|\d{4}|latest|preview)$")


_CURRENT: contextvars.ContextVar[CallSpan | None] = contextvars.ContextVar(
    "aipowertools_current_call", default=None
)


def current_call() -> CallSpan | None:
    """The innermost ``track_call`` span open in this context (thread / task), or None.

    Code that makes and records calls itself (the router) reads it to attribute its ledger
    rows to the span's user, task, session and tags, and hands each finished call to it
    with :meth:`CallSpan.add_call`, so the span records it without ``span.record()``.
    """
    return _CURRENT.get()


def _bare(model: str) -> str:
    return _SNAPSHOT.sub("", model.rsplit("/", 1)[-1])


def answered_model(requested: str | None, answered: str | None) -> str | None:
    """The model a call is priced at: the one that answered when it is another model.

    A failover or a provider-side substitution means the response names a different model
    than the one tracked; pricing it at the requested model would be silently wrong. A
    dated snapshot of the requested model keeps the requested name.
    """
    if answered is None or requested is None:
        return requested or answered
    if _bare(answered) == _bare(requested):
        return requested
    from aipowertools.core import default_catalog

    try:
        default_catalog().get(answered)
    except KeyError:
        logger.warning(
            "the response names model %r, which the catalog does not know; pricing the call "
            "at the tracked model %r",
            answered,
            requested,
        )
        return requested
    return answered


class CallSpan:
    """One tracked call: reserve on enter, record on ``record()``, settle or release on exit.

    Use it as ``with`` or ``async with`` (from :meth:`CostTracker.track_call`).

    Attributes:
        reservation: the budget held for the call (None when no limit applies).
        result: the ledger record written on exit (None until then, or when nothing was
            recorded).
    """

    def __init__(
        self,
        tracker: CostTracker,
        *,
        model: str | None,
        provider: str | None,
        task: str | None,
        user: str | None,
        session: str | None,
        tags: tuple[str, ...],
        trace_id: str | None,
        request_id: str | None,
        estimate_usd: float | None,
        messages: str | Sequence[Any] | None,
        max_tokens: int | None,
    ) -> None:
        self._tracker = tracker
        self.model = model
        self.provider = provider
        self.task = task
        self.user = user
        self.session = session
        self.tags = tags
        self.trace_id = trace_id
        self.request_id = request_id
        self._estimate = estimate_usd
        self._messages = messages
        self._max_tokens = max_tokens
        self.reservation: Reservation | None = None
        self.result: LedgerRecord | None = None
        self._pending: dict[str, Any] | None = None
        self._calls: list[dict[str, Any]] = []
        self._covered = False
        self._token: contextvars.Token[CallSpan | None] | None = None
        self._ts = 0.0
        self._t0 = 0.0

    def add_call(self, tracker: Any, **fields: Any) -> None:
        """Hand the span a call made inside it, already recorded (or not) by ``tracker``.

        A call recorded in the span's own tracker is not written again (its row already
        carries the span's attribution); one recorded elsewhere, or not at all
        (``tracker=None``), is written by the span on exit, under the call's request id, with
        the span's user, task, session, tags and trace id. An explicit :meth:`record` wins
        over handed calls.

        Args:
            tracker: the ``CostTracker`` that recorded the call, or None.
            **fields: the call's :meth:`CostTracker.record` fields (``model``, ``usage``,
                ``cost_usd``, ``request_id``, ``provider``, ``latency_ms``, ``status``).
        """
        if tracker is self._tracker:
            self._covered = True
        else:
            self._calls.append(dict(fields))

    def record(
        self,
        response: object = None,
        *,
        usage: Usage | None = None,
        cost_usd: float | None = None,
        model: str | None = None,
        request_id: str | None = None,
        status: str = "ok",
    ) -> None:
        """Note what the call returned; the ledger record is written when the span exits.

        Args:
            response: a litellm ``ModelResponse``, a LangChain ``AIMessage``, a LlamaIndex
                ``ChatResponse``, a provider usage payload or a :class:`Usage`.
            usage: token usage, when not taken from ``response``.
            cost_usd: the cost, when known better than the catalog price (else computed).
            model: the model that answered, when not the span's or the response's.
            request_id: the provider's request id, when not the response's.
            status: ``"ok"`` unless the call failed in a way that still cost money.
        """
        latency_ms = (time.perf_counter() - self._t0) * 1000
        self._pending = {
            "response": response,
            "usage": usage,
            "cost_usd": cost_usd,
            "model": model,
            "request_id": request_id,
            "status": status,
            "latency_ms": latency_ms,
        }

    def _start(self) -> None:
        self._ts = time.time()
        self._t0 = time.perf_counter()

    def _write_kwargs(self, exc: BaseException | None) -> dict[str, Any] | None:
        common = {
            "provider": self.provider,
            "task": self.task,
            "user": self.user,
            "session": self.session,
            "tags": self.tags,
            "trace_id": self.trace_id,
            "ts": self._ts,
            "reservation": self.reservation,
        }
        if self._pending is not None:
            pending = dict(self._pending)
            if pending["model"] is None:
                from aipowertools.core._tracker import _meta

                pending["model"] = answered_model(self.model, _meta(pending["response"])[1])
            pending["request_id"] = pending["request_id"] or self.request_id
            return {**common, **pending}
        if self._calls or self._covered:
            return None
        if exc is None:
            logger.warning(
                "track_call(task_name=%r, model=%r) ended without span.record(); nothing "
                "was recorded",
                self.task,
                self.model,
            )
            return None
        return {
            **common,
            "model": self.model or "unknown",
            "request_id": self.request_id,
            "usage": None,
            "cost_usd": 0.0,
            "status": "cancelled" if isinstance(exc, asyncio.CancelledError) else "error",
            "latency_ms": (time.perf_counter() - self._t0) * 1000,
        }

    def _handed_kwargs(self) -> list[dict[str, Any]]:
        """``_write`` arguments of the calls handed in with :meth:`add_call`."""
        common = {
            "task": self.task,
            "user": self.user,
            "session": self.session,
            "tags": self.tags,
            "trace_id": self.trace_id,
        }
        out = []
        for i, call in enumerate(self._calls):
            kwargs = {**call, **common}
            kwargs["provider"] = call.get("provider") or self.provider
            kwargs["reservation"] = self.reservation if i == 0 else None
            out.append(kwargs)
        return out

    def _enter(self) -> None:
        self._token = _CURRENT.set(self)

    def _leave(self) -> None:
        token, self._token = self._token, None
        if token is not None:
            try:
                _CURRENT.reset(token)
            except ValueError:  # exited in another context than entered: just clear it
                _CURRENT.set(None)

    def __enter__(self) -> CallSpan:
        self._start()
        self.reservation = self._tracker._span_reserve(self)
        self._enter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._leave()
        kwargs = self._write_kwargs(exc)
        writes = [kwargs] if kwargs is not None else self._handed_kwargs()
        if not writes:
            if self.reservation is not None:
                self._tracker.release(self.reservation)
            return
        try:
            for one in writes:
                self.result = self._tracker._write(**one)[0]
        except Exception:
            if exc is None:
                raise
            _log_masked(exc)

    async def __aenter__(self) -> CallSpan:
        self._start()
        self.reservation = await self._tracker._span_reserve_async(self)
        self._enter()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._leave()
        kwargs = self._write_kwargs(exc)
        writes = [kwargs] if kwargs is not None else self._handed_kwargs()
        if not writes:
            if self.reservation is not None:
                await self._tracker.arelease(self.reservation)
            return
        tracker = self._tracker
        try:
            written = await tracker._off_loop(lambda: [tracker._write(**w)[0] for w in writes])
        except Exception:
            if exc is None:
                raise
            _log_masked(exc)
        else:
            self.result = written[-1]


def _log_masked(exc: BaseException) -> None:
    # Recording a failed call must never replace the caller's own exception.
    logger.exception("could not record the failed call (%s: %s)", type(exc).__name__, exc)

"""Logging context kept in ``contextvars`` and trace/correlation ids.

The context is shared by every ``StructuredLogger`` in the process: it follows the code that
runs (asyncio tasks copy it, ``contextvars.copy_context().run`` carries it into threads), not
the logger object.
"""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# The default is never mutated: every change stores a new dict.
_CONTEXT: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar(
    "aipowertools_log_context",
    default={},  # noqa: B039
)
_CORRELATION: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "aipowertools_correlation_id", default=None
)


def get_context() -> dict[str, Any]:
    """Return a copy of the current logging context."""
    return dict(_CONTEXT.get())


def set_context(**fields: Any) -> None:
    """Merge ``fields`` into the current context (a ``None`` value removes a key)."""
    merged = dict(_CONTEXT.get())
    for key, value in fields.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    _CONTEXT.set(merged)


def clear_context() -> None:
    """Remove every field from the current context, and forget the correlation id."""
    _CONTEXT.set({})
    _CORRELATION.set(None)


@contextmanager
def bound_context(**fields: Any) -> Iterator[None]:
    """Add ``fields`` to the context inside a ``with`` block, restoring it afterwards."""
    token = _CONTEXT.set({**_CONTEXT.get(), **fields})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def correlation_id() -> str:
    """Return this context's correlation id, creating one on first use."""
    current = _CORRELATION.get()
    if current is None:
        current = uuid.uuid4().hex
        _CORRELATION.set(current)
    return current


_trace: Any = None


def trace_ids() -> tuple[str | None, str | None]:
    """Return ``(trace_id, span_id)`` of the current OpenTelemetry span, as hex, if any."""
    global _trace
    if _trace is None:
        from opentelemetry import trace

        _trace = trace
    ctx = _trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None, None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")

"""``StructuredLogger``: structured events on top of the standard ``logging`` module."""

from __future__ import annotations

import atexit
import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from aipowertools.callbacks import _context
from aipowertools.callbacks._audit import AuditReport
from aipowertools.callbacks._export import check_format, format_events
from aipowertools.callbacks._pump import Deferred, Pump, SinkStats
from aipowertools.callbacks._redact import Redactor
from aipowertools.callbacks._sinks import BASE_KEYS, QueryableSink, Sink, dumps
from aipowertools.callbacks._sql import PostgresSink, SQLiteSink
from aipowertools.callbacks._timeparse import to_epoch
from aipowertools.core.errors import ConfigurationError

LOG_STORE_ENV = "AIPOWERTOOLS_LOG_STORE"
CONTENT_FIELDS = frozenset(
    {"prompt", "prompts", "completion", "completions", "messages", "response_text", "input_text"}
)
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
_MARK = "aipowertools_event"
_BASE = frozenset(BASE_KEYS)
_UTC = dt.timezone.utc
_second: tuple[int, str] = (-1, "")


def iso_time(ts: float) -> str:
    """``datetime.fromtimestamp(ts, utc).isoformat()``, with the seconds part cached.

    Events arrive many per second: only the microseconds change between most of them.
    """
    global _second
    sec = int(ts)
    if sec != ts and ts > 0:
        micros = round((ts - sec) * 1e6)  # half-even, as datetime rounds
        if micros >= 1_000_000:
            sec, micros = sec + 1, micros - 1_000_000
    else:
        micros = 0
        if sec != ts:  # negative times: leave them to datetime
            return dt.datetime.fromtimestamp(ts, _UTC).isoformat()
    cached = _second
    if cached[0] == sec:
        head = cached[1]
    else:
        head = dt.datetime.fromtimestamp(sec, _UTC).isoformat()[:19]
        _second = (sec, head)
    return f"{head}.{micros:06d}+00:00" if micros else f"{head}+00:00"


class _Default:
    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT: Any = _Default()

_shared_lock = threading.Lock()
_shared: dict[tuple[str, bytes | None], Pump] = {}
_atexit_registered = False


def default_store_url() -> str:
    """The log store used when none is given: ``$AIPOWERTOOLS_LOG_STORE`` or SQLite in the
    data directory."""
    env = os.environ.get(LOG_STORE_ENV)
    if env:
        return env
    from aipowertools.core.stores import data_dir

    return f"sqlite:///{data_dir() / 'events.db'}"


def open_store(url: str, *, audit_key: bytes | None = None) -> QueryableSink:
    """Open the queryable sink a store URL names (``sqlite:///``, ``memory://``, ``postgresql://``)."""
    if url.startswith("memory://") or url in ("sqlite://", "sqlite:///:memory:"):
        return SQLiteSink(":memory:", audit_key=audit_key)
    if url.startswith("sqlite:///"):
        return SQLiteSink(url[len("sqlite:///") :], audit_key=audit_key)
    if url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        return PostgresSink(
            url.replace("postgresql+psycopg://", "postgresql://"), audit_key=audit_key
        )
    raise ConfigurationError(
        f"log store URL {url.split('@')[-1]!r} is not queryable: use sqlite:///path, memory:// "
        "or postgresql://...; send events elsewhere with sinks=[...]"
    )


def _shared_pump(url: str, audit_key: bytes | None, max_buffer: int) -> Pump:
    global _atexit_registered
    with _shared_lock:
        pump = _shared.get((url, audit_key))
        if pump is None:
            pump = Pump(open_store(url, audit_key=audit_key), max_buffer=max_buffer)
            _shared[(url, audit_key)] = pump
            if not _atexit_registered:
                atexit.register(_close_shared)
                _atexit_registered = True
        return pump


def _close_shared() -> None:
    with _shared_lock:
        pumps = list(_shared.values())
        _shared.clear()
    for pump in pumps:
        pump.close(timeout=2.0)


class _Message:
    """Lazy text of an event for stdlib handlers: ``event key=value ...``."""

    __slots__ = ("record",)

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record

    def __str__(self) -> str:
        fields = " ".join(
            f"{k}={v if isinstance(v, (str, int, float)) else dumps(v)}"
            for k, v in self.record.items()
            if k not in BASE_KEYS
        )
        return f"{self.record['event']} {fields}".rstrip()


def _check_count(what: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{what} must be a whole number >= {minimum}, got {value!r}")


class StructuredLogger:
    """Structured events with context, sinks, audit chain and queries.

    Events are dictionaries: the event name, the time, the level, the logger name, the trace
    and span ids of the current OpenTelemetry span (or a correlation id), the context set with
    :meth:`set_context`, and the keyword fields. Secrets are redacted before any sink sees
    them. Each event also goes through the standard ``logging`` logger of the same name, so
    existing logging configuration keeps working.

    Args:
        name: Logger name (also the name of the standard ``logging`` logger used).
        store: Where events are kept for :meth:`query` and :meth:`verify`: a URL
            (``sqlite:///path``, ``memory://``, ``postgresql://...``), a queryable sink, or
            ``None`` for no store. Default: ``$AIPOWERTOOLS_LOG_STORE`` or ``events.db`` in
            the data directory.
        sinks: More sinks (``ConsoleSink``, ``FileSink``, ``RedisStreamSink``, ``OTLPSink``...).
        level: Lowest level sent to the sinks.
        redactor: A :class:`Redactor`; by default the built-in rules plus ``redact_patterns``.
        redact_patterns: Extra regular expressions to redact.
        log_content: Whether prompt and completion text (fields such as ``prompt``,
            ``messages``, ``completion``) is kept; off by default.
        max_content_chars: Longest prompt/completion text kept when ``log_content`` is on.
        audit_key: HMAC key for the audit chain (recommended: without it a writer with
            database access could rebuild the whole chain).
        max_buffer: Events buffered per sink while it is failing before new ones are dropped.

    Example:
        >>> log = StructuredLogger("my_module", store="memory://")
        >>> log.set_context(user_id="user123")
        >>> log.info("llm_call_started", model="gpt-4o", tokens=1500)
        >>> len(log.query(event_type="llm_call_started", filters={"user_id": "user123"}))
        1
    """

    def __init__(
        self,
        name: str,
        *,
        store: str | QueryableSink | None = DEFAULT,
        sinks: Sequence[Sink] = (),
        level: int | str = logging.INFO,
        redactor: Redactor | None = None,
        redact_patterns: Sequence[str] = (),
        log_content: bool = False,
        max_content_chars: int = 2000,
        audit_key: bytes | None = None,
        max_buffer: int = 10_000,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigurationError(
                f"a logger name is a non-empty string such as __name__, got {name!r}"
            )
        _check_count("max_content_chars", max_content_chars, 0)
        _check_count("max_buffer", max_buffer, 1)
        self.name = name
        self.level = _level(level)
        self.log_content = log_content
        self.max_content_chars = max_content_chars
        self.redactor = redactor or Redactor(redact_patterns)
        self._stdlib = logging.getLogger(name)
        self._own: list[Pump] = []
        self._store_pump: Pump | None = None
        if store is DEFAULT:
            store = default_store_url()
        if isinstance(store, str):
            if store.startswith("memory://") or ":memory:" in store:
                self._store_pump = Pump(
                    open_store(store, audit_key=audit_key), max_buffer=max_buffer
                )
                self._own.append(self._store_pump)
            else:
                self._store_pump = _shared_pump(store, audit_key, max_buffer)
        elif isinstance(store, QueryableSink):
            self._store_pump = Pump(store, max_buffer=max_buffer)
            self._own.append(self._store_pump)
        elif store is not None:
            raise ConfigurationError(
                f"store must be a URL, a queryable sink or None, not {type(store).__name__}"
            )
        for sink in sinks:
            if not isinstance(sink, Sink):
                raise ConfigurationError(
                    f"sinks must be Sink instances (ConsoleSink, FileSink ...), not {sink!r}"
                )
            self._own.append(Pump(sink, max_buffer=max_buffer))
        self._pumps = ([self._store_pump] if self._store_pump else []) + [
            p for p in self._own if p is not self._store_pump
        ]

    # context -----------------------------------------------------------------------------
    def set_context(self, **fields: Any) -> None:
        """Add fields to every following event in this context (``None`` removes a field).

        The context lives in a ``contextvars.ContextVar`` shared by all loggers: it follows
        asyncio tasks and threads started with ``contextvars.copy_context()``.
        """
        _context.set_context(**fields)

    def get_context(self) -> dict[str, Any]:
        """Return the current context fields."""
        return _context.get_context()

    def clear_context(self) -> None:
        """Remove all context fields."""
        _context.clear_context()

    @contextmanager
    def context(self, **fields: Any) -> Iterator[None]:
        """Add fields for the duration of a ``with`` block."""
        with _context.bound_context(**fields):
            yield

    # events ------------------------------------------------------------------------------
    def debug(self, event: str, /, **fields: Any) -> None:
        """Log an event at DEBUG level."""
        self.log("debug", event, **fields)

    def info(self, event: str, /, **fields: Any) -> None:
        """Log an event at INFO level."""
        self.log("info", event, **fields)

    def warning(self, event: str, /, **fields: Any) -> None:
        """Log an event at WARNING level."""
        self.log("warning", event, **fields)

    def error(self, event: str, /, *, exc: BaseException | None = None, **fields: Any) -> None:
        """Log an event at ERROR level, with an exception's type, message and traceback."""
        if exc is not None:
            fields["error"] = exc
        self.log("error", event, **fields)

    def critical(self, event: str, /, **fields: Any) -> None:
        """Log an event at CRITICAL level."""
        self.log("critical", event, **fields)

    def log(self, level: str, event: str, /, **fields: Any) -> None:
        """Log an event at ``level`` (``"debug"`` ... ``"critical"``)."""
        self._emit(level, "log", event, fields)

    def metric(
        self,
        name: str,
        /,
        value: float,
        *,
        tags: dict[str, Any] | None = None,
        unit: str | None = None,
        **fields: Any,
    ) -> None:
        """Record a measurement (``kind="metric"``): a value with tags and an optional unit."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigurationError(f"metric {name!r}: value must be a number, not {value!r}")
        fields["value"] = value
        if tags is not None and not isinstance(tags, Mapping):
            raise ConfigurationError(
                f"metric {name!r}: tags must be a mapping such as {{'model': 'gpt-4o'}}, "
                f"got {type(tags).__name__}"
            )
        fields["tags"] = dict(tags or {})
        if unit is not None:
            fields["unit"] = unit
        self._emit("info", "metric", name, fields)

    def audit(self, event: str, /, **fields: Any) -> None:
        """Record an audit event; it joins the tamper-evident hash chain of the store.

        Conventional fields are ``action``, ``resource``, ``actor`` and ``result``. Audit
        events are recorded whatever the logger's level.
        """
        self._emit("info", "audit", event, fields, force=True)

    def _emit(
        self,
        level: str,
        kind: str,
        event: str,
        fields: dict[str, Any],
        *,
        force: bool = False,
    ) -> None:
        levelno = _LEVELS.get(level)
        if levelno is None:
            raise ConfigurationError(f"unknown level {level!r}: use one of {sorted(_LEVELS)}")
        if not isinstance(event, str) or not event:
            raise ConfigurationError(f"event name must be a non-empty string, not {event!r}")
        to_sinks = force or levelno >= self.level
        to_stdlib = self._stdlib.isEnabledFor(levelno)
        if not (to_sinks or to_stdlib):
            return
        record = self.build(level, kind, event, fields)
        if to_sinks:
            for pump in self._pumps:
                pump.put(record)
        if to_stdlib:
            self._stdlib.log(levelno, _Message(record), extra={_MARK: record})

    def build(
        self,
        level: str,
        kind: str,
        event: str,
        fields: dict[str, Any],
        *,
        ids: tuple[str | None, str | None] | None = None,
    ) -> dict[str, Any]:
        """Assemble and redact one event (used by the callback handlers).

        ``ids`` are the trace and span ids to use instead of the current span's (a handler
        passes its run's span).
        """
        return self._assemble(*self._capture(level, kind, event, fields, ids))

    def submit(
        self,
        level: str,
        event: str,
        fields: dict[str, Any],
        *,
        ids: tuple[str | None, str | None] | None = None,
    ) -> None:
        """Log an event whose ``fields`` nobody changes afterwards (the callback handlers').

        What belongs to the moment of the call (time, context, trace and correlation ids) is
        taken now; the event is assembled and redacted on the sinks' writer thread, before
        any sink sees it. When a standard ``logging`` handler wants the event, it is built
        here, as :meth:`log` does.
        """
        levelno = _LEVELS.get(level)
        if levelno is None:
            raise ConfigurationError(f"unknown level {level!r}: use one of {sorted(_LEVELS)}")
        if self._stdlib.isEnabledFor(levelno):
            self.emit(self.build(level, "log", event, fields, ids=ids))
        elif levelno >= self.level and self._pumps:
            deferred = Deferred(self._assemble, self._capture(level, "log", event, fields, ids))
            for pump in self._pumps:
                pump.put(deferred)

    def _capture(
        self,
        level: str,
        kind: str,
        event: str,
        fields: dict[str, Any],
        ids: tuple[str | None, str | None] | None,
    ) -> tuple[Any, ...]:
        """What an event takes from the moment and context of the call."""
        ts = time.time()
        ctx = _context._CONTEXT.get()  # never mutated: a change stores a new dict
        trace_id, span_id = ids if ids is not None else _context.trace_ids()
        correlation = None
        if ctx:
            redactor = self.redactor
            trace_id = trace_id or _context_str(ctx, "trace_id", redactor)
            span_id = span_id or _context_str(ctx, "span_id", redactor)
            correlation = _context_str(ctx, "correlation_id", redactor)
        correlation = correlation or _context.correlation_id()
        return level, kind, event, fields, ts, ctx, trace_id, span_id, correlation

    def _assemble(
        self,
        level: str,
        kind: str,
        event: str,
        fields: dict[str, Any],
        ts: float,
        ctx: dict[str, Any],
        trace_id: str | None,
        span_id: str | None,
        correlation: str,
    ) -> dict[str, Any]:
        redactor = self.redactor
        payload: dict[str, Any] = {k: v for k, v in ctx.items() if k not in _BASE} if ctx else {}
        content = CONTENT_FIELDS
        for key, value in fields.items():
            if key in _BASE:
                key = f"field_{key}"
            if key in content:
                if not self.log_content:
                    continue
                value = self.truncate(value)
            payload[key] = value
        # The base fields are made here (times, ids); only the rest can carry secrets.
        record: dict[str, Any] = {
            "ts": ts,
            "time": iso_time(ts),
            "level": level,
            "logger": self.name,
            "event": redactor.redact_text(event),
            "kind": kind,
            "trace_id": trace_id,
            "span_id": span_id,
            "correlation_id": correlation,
        }
        record.update(redactor.redact(payload))
        return record

    def truncate(self, value: Any) -> Any:
        """Cut prompt/completion text to ``max_content_chars`` (strings, lists of strings)."""
        limit = self.max_content_chars
        if isinstance(value, str):
            return value if len(value) <= limit else value[:limit] + "…"
        if isinstance(value, (list, tuple)):
            return [self.truncate(v) for v in value]
        if isinstance(value, dict):
            return {k: self.truncate(v) for k, v in value.items()}
        return value

    def emit(self, record: dict[str, Any]) -> None:
        """Send an already built event to the sinks (and the standard logger)."""
        levelno = _LEVELS.get(str(record.get("level")), logging.INFO)
        if levelno >= self.level or record.get("kind") == "audit":
            for pump in self._pumps:
                pump.put(record)
        if self._stdlib.isEnabledFor(levelno):
            self._stdlib.log(levelno, _Message(record), extra={_MARK: record})

    # query, audit, lifecycle -----------------------------------------------------------
    def _store(self) -> QueryableSink:
        if self._store_pump is None:
            raise ConfigurationError(
                f"logger {self.name!r} has no store to query: create it with "
                "store='sqlite:///path' or 'postgresql://...'"
            )
        sink = self._store_pump.sink
        assert isinstance(sink, QueryableSink)
        return sink

    def query(
        self,
        event_type: str | None = None,
        start_time: str | float | dt.datetime | dt.date | None = None,
        end_time: str | float | dt.datetime | dt.date | None = None,
        filters: dict[str, Any] | None = None,
        *,
        kind: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Return stored events matching a type, a time range and field filters, oldest first.

        Args:
            event_type: Event name to match.
            start_time: Inclusive lower bound (ISO string, date, datetime or epoch seconds;
                UTC when no zone is given).
            end_time: Inclusive upper bound; a bare date means the end of that day.
            filters: Field equality filters; a list value matches any of its items; nested
                fields with dots (``"tags.model"``).
            kind: ``"log"``, ``"metric"`` or ``"audit"``.
            limit: Return at most this many events.

        Returns:
            The events as dictionaries.
        """
        if filters is not None and not isinstance(filters, Mapping):
            raise ConfigurationError(
                f"filters must be a mapping of field to value such as {{'model': 'gpt-4o'}}, "
                f"got {type(filters).__name__}"
            )
        if limit is not None:
            _check_count("limit", limit, 0)
        store = self._store()
        assert self._store_pump is not None
        self._store_pump.flush()
        return store.query(
            event_type=event_type,
            start=to_epoch(start_time),
            end=to_epoch(end_time, end=True),
            filters=filters,
            kind=kind,
            limit=limit,
        )

    def export(
        self,
        format: str = "json",
        *,
        event_type: str | None = None,
        start_time: str | float | dt.datetime | dt.date | None = None,
        end_time: str | float | dt.datetime | dt.date | None = None,
        filters: dict[str, Any] | None = None,
        kind: str | None = None,
        limit: int | None = None,
    ) -> str:
        """Stored events as JSON lines or CSV text (the roadmap's ``exportLogs``).

        The selection arguments are those of :meth:`query`; the layout is the one of
        ``aipowertools logs export`` (see :func:`~aipowertools.callbacks.write_events`).

        Args:
            format: ``"json"`` (one object per line) or ``"csv"``.
            event_type: Event name to match.
            start_time: Inclusive lower bound.
            end_time: Inclusive upper bound.
            filters: Field equality filters.
            kind: ``"log"``, ``"metric"`` or ``"audit"``.
            limit: Export at most this many events.

        Raises:
            ConfigurationError: ``format`` is neither ``"json"`` nor ``"csv"``.
        """
        check_format(format)
        events = self.query(event_type, start_time, end_time, filters, kind=kind, limit=limit)
        return format_events(events, format)

    def metric_summary(
        self,
        name: str,
        start_time: str | float | dt.datetime | dt.date | None = None,
        end_time: str | float | dt.datetime | dt.date | None = None,
        filters: dict[str, Any] | None = None,
    ) -> dict[str, float | int | None]:
        """Aggregate a stored metric: count, sum, mean, min, max, p50 and p95 of its values.

        Arguments are those of :meth:`query` (``filters`` may use ``"tags.<key>"``).
        """
        values = sorted(
            float(e["value"])
            for e in self.query(name, start_time, end_time, filters, kind="metric")
            if isinstance(e.get("value"), (int, float))
        )
        if not values:
            return {"count": 0, "sum": 0.0, "mean": None, "min": None, "max": None,
                    "p50": None, "p95": None}  # fmt: skip

        def rank(q: float) -> float:
            return values[min(len(values) - 1, round(q * (len(values) - 1)))]

        total = sum(values)
        return {
            "count": len(values),
            "sum": total,
            "mean": total / len(values),
            "min": values[0],
            "max": values[-1],
            "p50": rank(0.5),
            "p95": rank(0.95),
        }

    def verify(self, *, expected_head: str | None = None) -> AuditReport:
        """Check the audit hash chain in the store and name the first bad record.

        Args:
            expected_head: A head hash saved earlier (``AuditReport.head_hash``); when given,
                records deleted from the end of the chain are detected too.
        """
        store = self._store()
        assert self._store_pump is not None
        self._store_pump.flush()
        if isinstance(store, (SQLiteSink, PostgresSink)):
            return store.verify_audit(expected_head=expected_head)
        return store.verify_audit()

    def search(
        self,
        text: str | None = None,
        *,
        level: str | None = None,
        event_type: str | None = None,
        start_time: str | float | dt.datetime | dt.date | None = None,
        end_time: str | float | dt.datetime | dt.date | None = None,
        filters: dict[str, Any] | None = None,
        kind: str | None = None,
        limit: int | None = 100,
        newest_first: bool = True,
        after_id: int | None = None,
    ) -> list[tuple[int, dict[str, Any]]]:
        """Search stored events by words (the store's full-text index) and filters.

        Args:
            text: Words that must all occur in the event (its name or any string field).
            level: Lowest level to return (``"warning"`` returns warnings, errors, critical).
            event_type: Event name to match.
            start_time: Inclusive lower bound (as in :meth:`query`).
            end_time: Inclusive upper bound (as in :meth:`query`).
            filters: Field equality filters (as in :meth:`query`).
            kind: ``"log"``, ``"metric"`` or ``"audit"``.
            limit: Return at most this many events (``None``: all).
            newest_first: Newest events first (default) or oldest first.
            after_id: Only events stored after the one with this id (for following a store).

        Returns:
            ``(id, event)`` pairs; ids grow with every stored event.
        """
        from aipowertools.callbacks._search import levels_from

        if limit is not None:
            _check_count("limit", limit, 0)
        store = self._store()
        assert self._store_pump is not None
        self._store_pump.flush()
        if not isinstance(store, (SQLiteSink, PostgresSink)):
            raise ConfigurationError(
                f"the {store.name!r} store cannot search text: use sqlite:/// or postgresql://"
            )
        return store.search(
            text=text,
            levels=levels_from(level),
            event_type=event_type,
            kind=kind,
            start=to_epoch(start_time),
            end=to_epoch(end_time, end=True),
            filters=filters,
            after_id=after_id,
            limit=limit,
            newest_first=newest_first,
        )

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every sink has written its buffered events (or ``timeout`` passes)."""
        deadline = time.monotonic() + timeout
        ok = True
        for pump in self._pumps:
            ok = pump.flush(max(0.0, deadline - time.monotonic())) and ok
        return ok

    def stats(self) -> list[SinkStats]:
        """Delivery figures per sink: delivered, dropped, pending, failures, last error."""
        return [p.stats() for p in self._pumps]

    def close(self, timeout: float = 5.0) -> None:
        """Flush and close this logger's own sinks (a shared default store stays open)."""
        for pump in self._own:
            pump.close(timeout)

    def handler(self, level: int = logging.NOTSET) -> logging.Handler:
        """A ``logging.Handler`` feeding plain ``logging`` records into this logger's sinks.

        Example:
            >>> import logging
            >>> log = StructuredLogger("app", store="memory://")
            >>> logging.getLogger("thirdparty").addHandler(log.handler())
        """
        return _StdlibBridge(self, level)

    def __repr__(self) -> str:
        return f"StructuredLogger({self.name!r}, sinks={[p.sink.name for p in self._pumps]})"


_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys() | {"message", "asctime"}
)


class _StdlibBridge(logging.Handler):
    def __init__(self, target: StructuredLogger, level: int) -> None:
        super().__init__(level)
        self.target = target

    def emit(self, record: logging.LogRecord) -> None:
        if hasattr(record, _MARK):  # already a structured event: avoid a loop
            return
        try:
            fields: dict[str, Any] = {
                k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS
            }
            fields["message"] = record.getMessage()
            fields["source_logger"] = record.name
            if record.exc_info and record.exc_info[1] is not None:
                fields["error"] = record.exc_info[1]
            level = record.levelname.lower()
            level = level if level in _LEVELS else "info"
            built = self.target.build(level, "log", str(record.msg), fields)
            for pump in self.target._pumps:
                pump.put(built)
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


def _context_str(ctx: dict[str, Any], key: str, redactor: Redactor) -> Any:
    value = ctx.get(key)
    return redactor.redact(value) if value is not None else None


def _level(level: int | str) -> int:
    if isinstance(level, str):
        value = _LEVELS.get(level.lower())
        if value is None:
            raise ConfigurationError(f"unknown level {level!r}: use one of {sorted(_LEVELS)}")
        return value
    return int(level)

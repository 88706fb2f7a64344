"""Sinks: where events go. Console, rotating file, Redis Streams and OTLP live here; the
queryable SQL sinks are in ``_sql``.

A sink only has to write a batch of event dicts (raising on failure); buffering, retrying and
drop counting are done for it by the logger's pump.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from aipowertools.core.errors import ConfigurationError

if TYPE_CHECKING:
    from aipowertools.callbacks._audit import AuditReport

# Keys every event carries; they are shown first and never repeated as fields.
BASE_KEYS = (
    "ts",
    "time",
    "level",
    "logger",
    "event",
    "kind",
    "trace_id",
    "span_id",
    "correlation_id",
)


def dumps(event: dict[str, Any]) -> str:
    """Serialise an event as compact JSON (unknown objects become strings)."""
    return json.dumps(event, separators=(",", ":"), default=str, ensure_ascii=False)


class Sink:
    """Base class of every sink: subclasses implement ``write`` (and ``close`` if needed).

    ``write`` may raise; the logger retries and counts drops, the caller never sees the error.
    """

    name = "sink"
    queryable = False

    def write(self, events: Sequence[dict[str, Any]]) -> None:
        """Write a batch of events, raising on failure."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the sink's resources."""


class QueryableSink(Sink):
    """A sink that can answer ``query`` and ``verify`` (SQLite and PostgreSQL)."""

    queryable = True

    def query(
        self,
        *,
        event_type: str | None = None,
        start: float | None = None,
        end: float | None = None,
        filters: dict[str, Any] | None = None,
        kind: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Return matching events, oldest first."""
        raise NotImplementedError

    def verify_audit(self, key: bytes | None = None) -> AuditReport:
        """Check the audit hash chain."""
        raise NotImplementedError


class ConsoleSink(Sink):
    """Writes one JSON line per event, or a short human line when the stream is a terminal.

    Args:
        stream: Where to write; ``sys.stderr`` by default.
        pretty: Force human-readable (``True``) or JSON (``False``) output; by default
            human-readable exactly when ``stream`` is a TTY.
    """

    name = "console"

    def __init__(self, stream: IO[str] | None = None, *, pretty: bool | None = None) -> None:
        self._stream = stream
        self._pretty = pretty
        self._lock = threading.Lock()

    def _target(self) -> IO[str]:
        return self._stream if self._stream is not None else sys.stderr

    def write(self, events: Sequence[dict[str, Any]]) -> None:
        """Write the events to the stream."""
        stream = self._target()
        pretty = self._pretty
        if pretty is None:
            isatty = getattr(stream, "isatty", None)
            pretty = bool(isatty and isatty())
        lines = [format_human(e) if pretty else dumps(e) for e in events]
        with self._lock:
            stream.write("\n".join(lines) + "\n")
            stream.flush()


def format_human(event: dict[str, Any]) -> str:
    """Render an event as ``HH:MM:SS LEVEL logger event key=value ...``."""
    moment = dt.datetime.fromtimestamp(float(event.get("ts", 0.0)))
    fields = " ".join(
        f"{k}={v if isinstance(v, (str, int, float)) else dumps(v)}"
        for k, v in event.items()
        if k not in BASE_KEYS
    )
    return (
        f"{moment:%H:%M:%S} {str(event.get('level', '')).upper():<7} {event.get('logger', '')} "
        f"{event.get('event', '')} {fields}"
    ).rstrip()


class FileSink(Sink):
    """Appends JSON lines to a file, rotating it at ``max_bytes`` (``path.1`` ... ``path.N``).

    Args:
        path: The log file.
        max_bytes: Size after which the file is rotated; 0 never rotates.
        backup_count: How many rotated files to keep.
    """

    name = "file"

    def __init__(
        self, path: str | os.PathLike[str], *, max_bytes: int = 10_000_000, backup_count: int = 5
    ) -> None:
        if max_bytes < 0 or backup_count < 0:
            raise ConfigurationError("max_bytes and backup_count must be >= 0")
        self.path = Path(path)
        self._max_bytes = max_bytes
        self._backup_count = backup_count
        self._lock = threading.Lock()

    def _rotate(self) -> None:
        if self._backup_count == 0:
            self.path.unlink(missing_ok=True)
            return
        for i in range(self._backup_count - 1, 0, -1):
            src = self.path.with_name(f"{self.path.name}.{i}")
            if src.exists():
                os.replace(src, self.path.with_name(f"{self.path.name}.{i + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))

    def write(self, events: Sequence[dict[str, Any]]) -> None:
        """Append the events, rotating first when the file is full."""
        data = "".join(dumps(e) + "\n" for e in events)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if (
                self._max_bytes
                and self.path.exists()
                and self.path.stat().st_size + len(data.encode()) > self._max_bytes
                and self.path.stat().st_size > 0
            ):
                self._rotate()
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(data)


class RedisStreamSink(Sink):
    """Appends events to a Redis Stream (``XADD``), capped at about ``maxlen`` entries.

    Consumers read it with ``XREAD`` / consumer groups; each entry has one field, ``event``,
    holding the JSON event.

    Args:
        url: ``redis://`` URL.
        stream: Stream key.
        maxlen: Approximate cap on the stream length.
    """

    name = "redis"

    def __init__(self, url: str, *, stream: str = "aipowertools:events", maxlen: int = 100_000):
        self.url = url
        self.stream = stream
        self._maxlen = maxlen
        self._client: Any = None

    def _redis(self) -> Any:
        if self._client is None:
            import redis

            self._client = redis.Redis.from_url(
                self.url, socket_connect_timeout=2, socket_timeout=5
            )
        return self._client

    def write(self, events: Sequence[dict[str, Any]]) -> None:
        """Add the events to the stream in one pipeline."""
        pipe = self._redis().pipeline(transaction=False)
        for event in events:
            pipe.xadd(self.stream, {"event": dumps(event)}, maxlen=self._maxlen, approximate=True)
        pipe.execute()

    def close(self) -> None:
        """Close the connection pool."""
        if self._client is not None:
            self._client.close()
            self._client = None


_SEVERITY = {"debug": 5, "info": 9, "warning": 13, "error": 17, "critical": 21}


class OTLPSink(Sink):
    """Sends events as OpenTelemetry log records through the OTel SDK.

    With no arguments it exports over OTLP/HTTP (``opentelemetry-exporter-otlp-proto-http``,
    configured by the usual ``OTEL_EXPORTER_OTLP_*`` variables), which also reaches Datadog,
    CloudWatch and others through their collectors.

    Args:
        exporter: A ``LogRecordExporter`` to use instead of OTLP/HTTP.
        logger_provider: An SDK ``LoggerProvider`` you already configured; ``exporter`` is
            then ignored.
    """

    name = "otlp"

    def __init__(self, exporter: Any = None, *, logger_provider: Any = None) -> None:
        try:
            from opentelemetry.sdk._logs import LoggerProvider
            from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ConfigurationError(
                "OTLPSink needs the OpenTelemetry SDK: pip install 'aipowertools-callbacks[otel]'"
            ) from exc
        self._owns_provider = logger_provider is None
        self._checked: _CheckedExporter | None = None
        if logger_provider is None:
            if exporter is None:
                try:
                    from opentelemetry.exporter.otlp.proto.http._log_exporter import (
                        OTLPLogExporter,
                    )
                except ImportError as exc:  # pragma: no cover - depends on the environment
                    raise ConfigurationError(
                        "OTLPSink needs an exporter: pip install "
                        "'aipowertools-callbacks[otel]' or pass exporter=..."
                    ) from exc
                exporter = OTLPLogExporter()
            logger_provider = LoggerProvider()
            # The pump already batches on its own thread. A simple processor exports at once;
            # the wrapper notes failures (which the processor swallows) so write() can raise
            # and the pump retries and counts drops.
            self._checked = _CheckedExporter(exporter)
            checked: Any = self._checked  # duck-typed LogRecordExporter
            logger_provider.add_log_record_processor(SimpleLogRecordProcessor(checked))
        self._provider = logger_provider
        self._logger = logger_provider.get_logger("aipowertools.callbacks")

    def write(self, events: Sequence[dict[str, Any]]) -> None:
        """Emit each event as a log record (body = event name, attributes = fields)."""
        from opentelemetry import trace
        from opentelemetry._logs import LogRecord, SeverityNumber

        for event in events:
            attributes: dict[str, Any] = {}
            for key, value in event.items():
                if key in ("ts", "time", "trace_id", "span_id"):
                    continue
                if isinstance(value, (str, bool, int, float)):
                    attributes[key] = value
                elif value is not None:
                    attributes[key] = dumps(value)
            level = str(event.get("level", "info"))
            context = None
            if _is_hex(event.get("trace_id"), 32) and _is_hex(event.get("span_id"), 16):
                span_context = trace.SpanContext(
                    int(event["trace_id"], 16),
                    int(event["span_id"], 16),
                    is_remote=False,
                    trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
                )
                context = trace.set_span_in_context(trace.NonRecordingSpan(span_context))
            record = LogRecord(
                timestamp=int(float(event.get("ts", 0.0)) * 1e9),
                context=context,
                severity_text=level.upper(),
                severity_number=SeverityNumber(_SEVERITY.get(level, 9)),
                body=str(event.get("event", "")),
                attributes=attributes,
                event_name=str(event.get("event", "")),
            )
            self._logger.emit(record)
        self._provider.force_flush()
        if self._checked is not None:
            error = self._checked.take_error()
            if error is not None:
                raise ConnectionError(f"OTLP export failed: {error}")

    def close(self) -> None:
        """Shut the provider down if this sink created it."""
        if self._owns_provider:
            self._provider.shutdown()


class _CheckedExporter:
    """Forwards to a log exporter and remembers whether an export failed."""

    def __init__(self, exporter: Any) -> None:
        self._exporter = exporter
        self._error: str | None = None
        self._lock = threading.Lock()

    def export(self, batch: Any) -> Any:
        try:
            result = self._exporter.export(batch)
        except Exception as exc:
            with self._lock:
                self._error = f"{type(exc).__name__}: {exc}"
            raise
        if getattr(result, "name", "SUCCESS") != "SUCCESS":
            with self._lock:
                self._error = f"exporter returned {result.name}"
        return result

    def take_error(self) -> str | None:
        with self._lock:
            error, self._error = self._error, None
        return error

    def __getattr__(self, name: str) -> Any:  # shutdown, force_flush ...
        return getattr(self._exporter, name)


def _is_hex(value: Any, length: int) -> bool:
    if not isinstance(value, str) or len(value) != length:
        return False
    try:
        int(value, 16)
    except ValueError:
        return False
    return True

"""aipowertools.callbacks: structured logging with sinks, audit and query, and callback
handlers for LangChain (``aipowertools.callbacks.langchain``) and LlamaIndex
(``aipowertools.callbacks.llama_index``).
"""

from importlib.metadata import version as _version

from aipowertools.callbacks._audit import AuditReport
from aipowertools.callbacks._context import bound_context, clear_context, get_context, set_context
from aipowertools.callbacks._export import write_events
from aipowertools.callbacks._logger import StructuredLogger
from aipowertools.callbacks._pump import SinkStats
from aipowertools.callbacks._redact import Redactor
from aipowertools.callbacks._sinks import (
    ConsoleSink,
    FileSink,
    OTLPSink,
    QueryableSink,
    RedisStreamSink,
    Sink,
)
from aipowertools.callbacks._sql import PostgresSink, SQLiteSink

__version__ = _version("aipowertools-callbacks")

__all__ = [
    "AuditReport",
    "ConsoleSink",
    "FileSink",
    "OTLPSink",
    "PostgresSink",
    "QueryableSink",
    "Redactor",
    "RedisStreamSink",
    "SQLiteSink",
    "Sink",
    "SinkStats",
    "StructuredLogger",
    "__version__",
    "bound_context",
    "clear_context",
    "get_context",
    "set_context",
    "write_events",
]

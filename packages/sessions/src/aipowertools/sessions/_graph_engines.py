"""The storage engine behind the LangGraph checkpointer and store, chosen by store URL.

================================  =========================================================
URL                               engine
================================  =========================================================
``diskcache:///dir``              SQLite file ``dir/langgraph.sqlite3`` (next to the sessions'
                                  diskcache data; diskcache offers no ordered range reads)
``sqlite:///file.db``             that SQLite file
``memory://name``                 an SQLite database in this process's memory
``redis://...``                   plain Redis (no modules), scripts and sorted sets
``postgresql://...``              PostgreSQL tables on the shared pool
================================  =========================================================

Engines are opened once per (URL, prefix) per process and shared.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from aipowertools.core.errors import StoreURLError

_T = TypeVar("_T")


class GraphEngine(Protocol):
    """What the LangGraph adapters run their plans on."""

    url: str
    plans: Any
    statements: int

    def run(self, plan: Any, *, atomic: bool = False) -> Any:
        """Run a plan of the engine's ``plans``."""
        ...

    async def arun(self, plan: Any, *, atomic: bool = False) -> Any:
        """Async :meth:`run`."""
        ...

    def close(self) -> None:
        """Release what the engine holds for itself."""
        ...


def _sqlite(raw: str, path: Any, prefix: str) -> GraphEngine:
    from aipowertools.sessions._graph_sql import SqliteGraphEngine

    return SqliteGraphEngine(raw, path, prefix)


def _diskcache(raw: str, path: Any, prefix: str) -> GraphEngine:
    if path is None or not str(path):
        raise StoreURLError(raw, "diskcache needs a directory: diskcache:///absolute/path")
    return _sqlite(raw, path / "langgraph.sqlite3", prefix)


def _memory(raw: str, path: Any, prefix: str) -> GraphEngine:
    return _sqlite(raw, None, prefix)


def _redis(raw: str, path: Any, prefix: str) -> GraphEngine:
    from aipowertools.sessions._graph_redis import RedisGraphEngine

    return RedisGraphEngine(raw, prefix)


def _postgres(raw: str, path: Any, prefix: str) -> GraphEngine:
    from aipowertools.sessions._graph_sql import PostgresGraphEngine

    return PostgresGraphEngine(raw, prefix)


_FACTORIES: dict[str, Callable[[str, Any, str], GraphEngine]] = {
    "diskcache": _diskcache,
    "sqlite": _sqlite,
    "memory": _memory,
    "redis": _redis,
    "postgresql": _postgres,
}
_opened: dict[tuple[str, str], GraphEngine] = {}
_mutex = threading.Lock()


def open_graph_engine(url: str | None, prefix: str) -> GraphEngine:
    """The shared engine for ``url`` (None: ``AIPOWERTOOLS_STORE``, then the embedded default).

    Raises:
        StoreURLError: the URL is malformed or names a store LangGraph persistence cannot use.
    """
    from aipowertools.core.stores import parse_store_url
    from aipowertools.sessions._stores import default_store_url

    parsed = parse_store_url(url, default=default_store_url())
    factory = _FACTORIES.get(parsed.scheme)
    if factory is None:
        raise StoreURLError(
            parsed.raw,
            f"LangGraph persistence cannot use {parsed.scheme}://; use one of "
            + ", ".join(f"{s}://" for s in _FACTORIES),
        )
    with _mutex:
        engine = _opened.get((parsed.raw, prefix))
        if engine is None:
            engine = factory(parsed.raw, parsed.path, prefix)
            _opened[(parsed.raw, prefix)] = engine
        return engine

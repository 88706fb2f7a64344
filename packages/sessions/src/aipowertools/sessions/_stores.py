"""Backends chosen by store URL, opened once per URL per process."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from aipowertools.core.errors import StoreURLError
from aipowertools.sessions._backend import MemoryBackend, SessionBackend

_opened: dict[str, SessionBackend] = {}
_mutex = threading.Lock()


def _memory(raw: str, path: str) -> SessionBackend:
    return MemoryBackend(raw)


def _diskcache(raw: str, path: str) -> SessionBackend:
    from aipowertools.sessions._diskcache import DiskCacheBackend

    if not path:
        raise StoreURLError(raw, "diskcache needs a directory: diskcache:///absolute/path")
    return DiskCacheBackend(Path(path), url=raw)


def _redis(raw: str, path: str) -> SessionBackend:
    from aipowertools.sessions._redis import RedisBackend

    return RedisBackend(raw)


def _postgres(raw: str, path: str) -> SessionBackend:
    from aipowertools.sessions._postgres import PostgresBackend

    return PostgresBackend(raw)


def _s3(raw: str, path: str) -> SessionBackend:
    from aipowertools.sessions._s3 import S3Backend

    return S3Backend(raw)


# Dispatch table: scheme -> factory(raw URL, filesystem path).
_FACTORIES: dict[str, Callable[[str, str], SessionBackend]] = {
    "memory": _memory,
    "diskcache": _diskcache,
    "redis": _redis,
    "postgresql": _postgres,
    "s3": _s3,
}


def default_store_url() -> str:
    """The embedded default: a diskcache directory ``sessions`` under the data directory."""
    from aipowertools.core.stores import data_dir

    return f"diskcache://{data_dir() / 'sessions'}"


def open_store(url: str | None = None) -> SessionBackend:
    """The backend for ``url`` (None: ``AIPOWERTOOLS_STORE``, then the embedded default).

    Backends are opened once per URL and shared by every session of the process.

    Raises:
        StoreURLError: the URL is malformed or names a scheme sessions cannot use (``sqlite``).
    """
    from aipowertools.core.stores import parse_store_url

    parsed = parse_store_url(url, default=default_store_url())
    with _mutex:
        backend = _opened.get(parsed.raw)
        if backend is None:
            factory = _FACTORIES.get(parsed.scheme)
            if factory is None:
                raise StoreURLError(
                    parsed.raw,
                    f"sessions cannot use {parsed.scheme!r}; use one of "
                    + ", ".join(f"{s}://" for s in _FACTORIES),
                )
            backend = factory(parsed.raw, str(parsed.path or ""))
            _opened[parsed.raw] = backend
        return backend

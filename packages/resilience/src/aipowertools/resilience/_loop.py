"""One background event loop thread per process, for the blocking (sync) API."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None


def background_loop() -> asyncio.AbstractEventLoop:
    """The shared background loop, started on first use (a daemon thread)."""
    global _loop, _thread
    with _lock:
        if _loop is None or _thread is None or not _thread.is_alive():
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            thread = threading.Thread(target=run, name="aipowertools-resilience", daemon=True)
            thread.start()
            ready.wait()
            _loop, _thread = loop, thread
        return _loop


def run_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the background loop and block this thread until it finishes."""
    loop = background_loop()
    if threading.current_thread() is _thread:  # pragma: no cover - programming error guard
        coro.close()
        raise RuntimeError("the blocking limiter API was called from its own background loop")
    return asyncio.run_coroutine_threadsafe(coro, loop).result()

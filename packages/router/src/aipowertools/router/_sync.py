"""Run the router's coroutines from synchronous code on one background event loop.

Sync callers (``invoke``, ``chat``) must not spin a new event loop per call: async HTTP
clients cached by litellm and the frameworks are bound to the loop that created them. One
daemon thread per process owns one loop for every sync call; at interpreter exit it closes
its async generators (the transports' connection pools) and stops, so no session is left for
the garbage collector to complain about.

The caller's context variables (the active OpenTelemetry span, LangChain's run context) are
carried over to the background loop, so spans opened there are children of the caller's.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import contextvars
import threading
from collections.abc import AsyncIterator, Awaitable, Coroutine, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop
    loop = _loop
    if loop is not None and not loop.is_closed():
        return loop
    with _lock:
        if _loop is None or _loop.is_closed():
            new = asyncio.new_event_loop()
            thread = threading.Thread(
                target=new.run_forever, name="aipowertools-router-sync", daemon=True
            )
            thread.start()
            if _loop is None:
                atexit.register(_shutdown)
            _loop = new
        return _loop


def _shutdown(timeout: float = 5.0) -> None:
    """Close the background loop's async generators, then stop it (registered with atexit)."""
    loop = _loop
    if loop is None or loop.is_closed() or not loop.is_running():
        return
    with contextlib.suppress(Exception):  # exiting: a stuck or broken loop must not block it
        asyncio.run_coroutine_threadsafe(loop.shutdown_asyncgens(), loop).result(timeout)
    loop.call_soon_threadsafe(loop.stop)


async def _in_context(context: contextvars.Context, awaitable: Awaitable[T]) -> T:
    """Await ``awaitable`` with the values of ``context``'s variables (in this task only)."""
    for var, value in context.items():
        var.set(value)
    return await awaitable


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the background loop and wait for its result in this thread."""
    wrapped = _in_context(contextvars.copy_context(), coro)
    return asyncio.run_coroutine_threadsafe(wrapped, _background_loop()).result()


def iterate_sync(agen: AsyncIterator[T]) -> Iterator[T]:
    """Iterate an async iterator from synchronous code, one item at a time."""
    loop = _background_loop()
    context = contextvars.copy_context()

    async def step() -> tuple[bool, T | None]:
        try:
            return True, await agen.__anext__()
        except StopAsyncIteration:
            return False, None

    try:
        while True:
            more, item = asyncio.run_coroutine_threadsafe(
                _in_context(context, step()), loop
            ).result()
            if not more:
                return
            yield item  # type: ignore[misc]
    finally:
        close = getattr(agen, "aclose", None)
        if close is not None:
            asyncio.run_coroutine_threadsafe(close(), loop).result()

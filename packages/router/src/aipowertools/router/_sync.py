"""Run the router's coroutines from synchronous code on one background event loop.

Sync callers (``invoke``, ``chat``) must not spin a new event loop per call: async HTTP
clients cached by litellm and the frameworks are bound to the loop that created them. One
daemon thread per process owns one loop for every sync call; at interpreter exit it closes
its async generators (the transports' connection pools) and stops, so no session is left for
the garbage collector to complain about.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import contextvars
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop, _thread
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
            _loop, _thread = new, thread
        return _loop


def _shutdown(timeout: float = 5.0) -> None:
    """Close the background loop's async generators, stop and close it (run at exit)."""
    loop = _loop
    if loop is None or loop.is_closed() or not loop.is_running():
        return
    with contextlib.suppress(Exception):  # exiting: a stuck or broken loop must not block it
        asyncio.run_coroutine_threadsafe(loop.shutdown_asyncgens(), loop).result(timeout)
    loop.call_soon_threadsafe(loop.stop)
    thread = _thread
    if thread is not None:
        thread.join(timeout)
    if not loop.is_running():  # stopped: close it, or it warns (ResourceWarning) when collected
        loop.close()


def _submit(coro: Coroutine[Any, Any, T], loop: asyncio.AbstractEventLoop) -> T:
    """Run ``coro`` on ``loop`` in a copy of the caller's context; wait for its result.

    The caller's context variables (an enclosing ``track_call`` span, OpenTelemetry's current
    span, LlamaIndex instrument tags) reach the coroutine, as they would under ``await``.
    """
    context = contextvars.copy_context()
    done: concurrent.futures.Future[T] = concurrent.futures.Future()

    def copy(task: asyncio.Task[T]) -> None:
        if task.cancelled():
            done.cancel()
        elif task.exception() is not None:
            done.set_exception(task.exception())
        else:
            done.set_result(task.result())

    def start() -> None:
        try:
            task = context.run(loop.create_task, coro)
        except BaseException as exc:  # the loop is closing: report it to the caller
            coro.close()
            done.set_exception(exc)
            return
        task.add_done_callback(copy)

    loop.call_soon_threadsafe(start)
    return done.result()


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the background loop and wait for its result in this thread."""
    return _submit(coro, _background_loop())


def iterate_sync(agen: AsyncIterator[T]) -> Iterator[T]:
    """Iterate an async iterator from synchronous code, one item at a time."""
    loop = _background_loop()

    async def step() -> tuple[bool, T | None]:
        try:
            return True, await agen.__anext__()
        except StopAsyncIteration:
            return False, None

    try:
        while True:
            more, item = _submit(step(), loop)
            if not more:
                return
            yield item  # type: ignore[misc]
    finally:
        close = getattr(agen, "aclose", None)
        if close is not None:
            _submit(close(), loop)

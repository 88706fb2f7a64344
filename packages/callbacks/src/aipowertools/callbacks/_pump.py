"""Delivery of events to one sink: bounded buffer, background thread, retry, drop counting.

A sink that fails (database down, disk full, collector unreachable) never raises into the code
that logs. Events wait in a bounded buffer while the background thread retries with backoff;
when the buffer is full new events are dropped and counted, and the count is reported through
``stats()`` and a warning on the ``aipowertools.callbacks`` logger.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aipowertools.callbacks._sinks import Sink

_log = logging.getLogger("aipowertools.callbacks")

# Pumps with a running writer thread: flushed (briefly) when the interpreter exits, so that
# events logged just before a normal exit are not lost with the daemon thread.
_running: weakref.WeakSet[Pump] = weakref.WeakSet()
_exit_hook = False
_exit_lock = threading.Lock()


def _flush_all_at_exit() -> None:
    deadline = time.monotonic() + 3.0
    for pump in list(_running):
        pump.flush(max(0.0, deadline - time.monotonic()))


class Deferred:
    """An event queued before it is assembled: the writer thread calls ``build(*args)``.

    The callback handlers queue their events this way, so that redaction and assembly run
    off the calling thread. The result is kept: every sink of a logger gets the same dict.
    """

    __slots__ = ("_args", "_build", "_record")

    def __init__(self, build: Callable[..., dict[str, Any]], args: tuple[Any, ...]) -> None:
        self._build = build
        self._args = args
        self._record: dict[str, Any] | None = None

    def resolve(self) -> dict[str, Any]:
        """The assembled event (built on first use)."""
        record = self._record
        if record is None:
            record = self._record = self._build(*self._args)
        return record


@dataclass(frozen=True)
class SinkStats:
    """Delivery figures of one sink.

    Attributes:
        sink: The sink's name.
        delivered: Events written successfully.
        dropped: Events lost because the buffer was full while the sink was failing.
        pending: Events waiting in the buffer.
        failures: Failed write attempts (each is retried).
        last_error: The most recent write error, redacted to its type and message.
    """

    sink: str
    delivered: int
    dropped: int
    pending: int
    failures: int
    last_error: str | None


class Pump:
    """Feeds events to a sink from a bounded buffer on a daemon thread."""

    def __init__(
        self,
        sink: Sink,
        *,
        max_buffer: int = 10_000,
        batch_size: int = 500,
        max_backoff: float = 5.0,
        idle_exit: float = 30.0,
        linger: float = 0.05,
    ) -> None:
        self.sink = sink
        # How long the writer waits after the first event of a batch for more to arrive: one
        # write (one transaction, one thread wake-up) per burst instead of one per event.
        self._linger = linger
        self._flushing = 0
        self._idle_exit = idle_exit
        self._max_buffer = max_buffer
        self._batch_size = batch_size
        self._max_backoff = max_backoff
        self._buffer: deque[dict[str, Any] | Deferred] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._in_flight = 0
        self._delivered = 0
        self._dropped = 0
        self._failures = 0
        self._last_error: str | None = None
        self._reported_drops = 0
        self._wake = threading.Event()

    def put(self, event: dict[str, Any] | Deferred) -> None:
        """Queue one event; never blocks and never raises."""
        with self._cond:
            if self._closed:
                self._dropped += 1
                return
            if len(self._buffer) >= self._max_buffer:
                self._dropped += 1
                return
            was_empty = not self._buffer
            self._buffer.append(event)
            if self._thread is None:
                self._start()
            if was_empty:  # the writer only ever waits on an empty buffer
                self._cond.notify()

    def _start(self) -> None:
        global _exit_hook
        with _exit_lock:
            _running.add(self)
            if not _exit_hook:
                atexit.register(_flush_all_at_exit)
                _exit_hook = True
        self._thread = threading.Thread(
            target=self._run, name=f"aipowertools-sink-{self.sink.name}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        backoff = 0.05
        while True:
            with self._cond:
                while not self._buffer and not self._closed:
                    if not self._cond.wait(self._idle_exit) and not self._buffer:
                        # Idle: let the thread end; the next put() starts a new one.
                        self._thread = None
                        return
                if not self._buffer and self._closed:
                    return
                if (
                    self._linger > 0
                    and len(self._buffer) < self._batch_size
                    and not (self._closed or self._flushing)
                ):
                    # flush() and close() notify: they never wait for the linger to pass.
                    self._cond.wait(self._linger)
                queued = [
                    self._buffer.popleft() for _ in range(min(self._batch_size, len(self._buffer)))
                ]
                self._in_flight = len(queued)
            batch = self._resolve(queued)
            try:
                self.sink.write(batch)
            except Exception as exc:  # a failing sink must never take the thread down
                with self._cond:
                    self._failures += 1
                    self._last_error = f"{type(exc).__name__}: {exc}"[:500]
                    # Put the batch back in front, dropping what no longer fits.
                    room = self._max_buffer - len(self._buffer)
                    keep = batch[: max(room, 0)]
                    self._dropped += len(batch) - len(keep)
                    self._buffer.extendleft(reversed(keep))
                    self._in_flight = 0
                    closed = self._closed
                    self._cond.notify_all()
                self._report_drops()
                if closed:
                    with self._cond:
                        self._dropped += len(self._buffer)
                        self._buffer.clear()
                        self._cond.notify_all()
                    self._report_drops()
                    return
                self._wake.wait(backoff)
                self._wake.clear()
                backoff = min(backoff * 2, self._max_backoff)
                continue
            backoff = 0.05
            with self._cond:
                self._delivered += len(batch)
                self._in_flight = 0
                self._cond.notify_all()

    def _resolve(self, queued: list[dict[str, Any] | Deferred]) -> list[dict[str, Any]]:
        """Assemble the deferred events of a batch (one that cannot be built is dropped)."""
        batch: list[dict[str, Any]] = []
        failed = 0
        for event in queued:
            if type(event) is Deferred:
                try:
                    event = event.resolve()
                except Exception:  # a bug in assembling one event must not stop the others
                    _log.warning("log sink %s: could not build an event", self.sink.name,
                                 exc_info=True)  # fmt: skip
                    failed += 1
                    continue
            batch.append(event)  # type: ignore[arg-type]
        if failed:
            with self._cond:
                self._dropped += failed
                self._in_flight -= failed
            self._report_drops()
        return batch

    def _report_drops(self) -> None:
        with self._cond:
            new = self._dropped - self._reported_drops
            self._reported_drops = self._dropped
            error = self._last_error
        if new:
            _log.warning(
                "log sink %s dropped %d event(s) (%d in total): %s",
                self.sink.name,
                new,
                self._reported_drops,
                error,
            )

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until the buffer is empty; return whether it emptied before ``timeout``."""
        deadline = time.monotonic() + timeout
        self._wake.set()  # skip any backoff wait: try now
        with self._cond:
            self._flushing += 1
            self._cond.notify_all()  # cut a lingering writer's wait short
            try:
                while self._buffer or self._in_flight:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._cond.wait(min(remaining, 0.05))
                    if self._buffer:
                        self._wake.set()
            finally:
                self._flushing -= 1
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Flush what can be flushed in ``timeout``, count the rest as dropped, close the sink."""
        self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join(timeout)
        with self._cond:
            self._dropped += len(self._buffer)
            self._buffer.clear()
        self._report_drops()
        try:
            self.sink.close()
        except Exception as exc:  # pragma: no cover - defensive
            _log.warning("closing log sink %s failed: %s", self.sink.name, exc)

    def stats(self) -> SinkStats:
        """Return this sink's delivery figures."""
        with self._cond:
            return SinkStats(
                sink=self.sink.name,
                delivered=self._delivered,
                dropped=self._dropped,
                pending=len(self._buffer) + self._in_flight,
                failures=self._failures,
                last_error=self._last_error,
            )

"""The backend protocol every store implements, and the in-process memory backend.

A backend stores opaque bytes (envelopes made by the codec) for a session identified by
``(namespace, session_id)``. Values are versioned for compare-and-set; lists are append-only
sequences read by index ranges. Everything above bytes (codec, limits, buffering) lives in
:class:`~aipowertools.sessions.Session`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import NamedTuple, Protocol, runtime_checkable

from aipowertools.core.errors import SessionConflictError
from aipowertools.sessions._errors import SessionLockError

#: ``expected`` value for :meth:`SessionBackend.set` meaning "the key must not exist yet".
ABSENT = 0


class Versioned(NamedTuple):
    """A stored value and its version (1 for the first write, +1 per write)."""

    data: bytes
    version: int


@runtime_checkable
class SessionBackend(Protocol):
    """What a session store implements. All methods are thread-safe and process-safe.

    ``ttl`` handling: :meth:`touch` records that a session exists and when it expires; reads of
    an expired session see nothing, :meth:`cleanup` deletes expired sessions for good.

    Optional: ``append_bounded(ns, sid, key, items, max_items, drop_oldest) -> (stored,
    length)`` (and ``aappend_bounded``) appends under a size limit in one round trip; a
    :class:`~aipowertools.sessions.Session` with ``max_items`` uses it when the backend has it,
    and otherwise :meth:`length`, :meth:`append` and :meth:`trim`.

    Optional: ``read_tail(ns, sid, key, count) -> list[bytes]`` (and ``aread_tail``) returns the
    newest ``count`` items, oldest first, in work independent of the list's length; ``items(key,
    -n)`` uses it when the backend has it, and otherwise :meth:`length` then :meth:`read`.
    """

    url: str

    def get(self, ns: str, sid: str, key: str) -> Versioned | None:
        """The value under ``key`` or None."""
        ...

    def get_values(self, ns: str, sid: str) -> dict[str, Versioned]:
        """Every value of the session."""
        ...

    def set(self, ns: str, sid: str, key: str, data: bytes, expected: int | None) -> int:
        """Store ``data``; with ``expected`` set, only if the version matches. Returns the version.

        Raises:
            SessionConflictError: the stored version is not ``expected``.
        """
        ...

    def delete(self, ns: str, sid: str, key: str) -> None:
        """Remove the value and the list stored under ``key``."""
        ...

    def append(self, ns: str, sid: str, key: str, items: Sequence[bytes]) -> int:
        """Append ``items`` atomically, in order.

        Returns the list length after the append, or -1 when the store cannot tell without
        another round trip (the session then asks :meth:`length` only if it needs it).
        """
        ...

    def length(self, ns: str, sid: str, key: str) -> int:
        """Number of items in the list ``key``."""
        ...

    def read(self, ns: str, sid: str, key: str, start: int, stop: int) -> list[bytes]:
        """Items ``start <= i < stop`` (0 is the oldest item still stored)."""
        ...

    def trim(self, ns: str, sid: str, key: str, keep_last: int) -> int:
        """Drop the oldest items so that at most ``keep_last`` remain; returns how many went."""
        ...

    def keys(self, ns: str, sid: str) -> list[str]:
        """Names of every value and every non-empty list."""
        ...

    def touch(self, ns: str, sid: str, ttl: float | None) -> None:
        """Record the session; with ``ttl`` it expires ``ttl`` seconds from now."""
        ...

    def sessions(self, ns: str) -> list[str]:
        """Ids of the live sessions of namespace ``ns``."""
        ...

    def drop(self, ns: str, sid: str) -> None:
        """Delete the whole session."""
        ...

    def cleanup(self, ns: str) -> int:
        """Delete expired sessions of ``ns``; returns how many."""
        ...

    def lock(
        self, ns: str, sid: str, name: str, timeout: float, ttl: float
    ) -> AbstractContextManager[None]:
        """An exclusive lock shared by every process using this store.

        ``ttl`` bounds how long a crashed holder can keep it (where the store supports it).
        """
        ...

    def close(self) -> None:
        """Release connections and files."""
        ...


def conflict(sid: str, key: str, expected: int | None, actual: int) -> SessionConflictError:
    """The error for a failed compare-and-set (version 0 means the key did not exist)."""
    return SessionConflictError(sid, key, f"version {expected}", f"version {actual}")


def poll_lock(
    try_acquire: object, release: object, sid: str, name: str, timeout: float
) -> AbstractContextManager[None]:
    """Poll ``try_acquire()`` until ``timeout``; ``release()`` on exit."""

    @contextmanager
    def _cm() -> Iterator[None]:
        deadline = time.monotonic() + timeout
        delay = 0.001
        while not try_acquire():  # type: ignore[operator]
            if time.monotonic() >= deadline:
                raise SessionLockError(sid, name, timeout)
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        try:
            yield
        finally:
            release()  # type: ignore[operator]

    return _cm()


class MemoryBackend:
    """Process-local store (``memory://``); for tests and single-process scripts."""

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._mutex = threading.RLock()
        self._values: dict[tuple[str, str], dict[str, Versioned]] = {}
        self._lists: dict[tuple[str, str], dict[str, list[bytes]]] = {}
        self._expires: dict[tuple[str, str], float | None] = {}
        self._locks: dict[tuple[str, str, str], threading.Lock] = {}

    def _live(self, ns: str, sid: str) -> tuple[str, str]:
        sk = (ns, sid)
        expires = self._expires.get(sk)
        if expires is not None and expires <= time.time():
            self._drop(sk)
        return sk

    def _drop(self, sk: tuple[str, str]) -> None:
        self._values.pop(sk, None)
        self._lists.pop(sk, None)
        self._expires.pop(sk, None)

    def get(self, ns: str, sid: str, key: str) -> Versioned | None:
        with self._mutex:
            return self._values.get(self._live(ns, sid), {}).get(key)

    def get_values(self, ns: str, sid: str) -> dict[str, Versioned]:
        with self._mutex:
            return dict(self._values.get(self._live(ns, sid), {}))

    def set(self, ns: str, sid: str, key: str, data: bytes, expected: int | None) -> int:
        with self._mutex:
            values = self._values.setdefault(self._live(ns, sid), {})
            current = values.get(key)
            actual = current.version if current else ABSENT
            if expected is not None and expected != actual:
                raise conflict(sid, key, expected, actual)
            values[key] = Versioned(data, actual + 1)
            return actual + 1

    def delete(self, ns: str, sid: str, key: str) -> None:
        with self._mutex:
            sk = self._live(ns, sid)
            self._values.get(sk, {}).pop(key, None)
            self._lists.get(sk, {}).pop(key, None)

    def append(self, ns: str, sid: str, key: str, items: Sequence[bytes]) -> int:
        with self._mutex:
            seq = self._lists.setdefault(self._live(ns, sid), {}).setdefault(key, [])
            seq.extend(items)
            return len(seq)

    def length(self, ns: str, sid: str, key: str) -> int:
        with self._mutex:
            return len(self._lists.get(self._live(ns, sid), {}).get(key, ()))

    def read(self, ns: str, sid: str, key: str, start: int, stop: int) -> list[bytes]:
        with self._mutex:
            return list(self._lists.get(self._live(ns, sid), {}).get(key, [])[start:stop])

    def read_tail(self, ns: str, sid: str, key: str, count: int) -> list[bytes]:
        with self._mutex:
            seq = self._lists.get(self._live(ns, sid), {}).get(key, [])
            return list(seq[max(len(seq) - count, 0) :]) if count > 0 else []

    def trim(self, ns: str, sid: str, key: str, keep_last: int) -> int:
        with self._mutex:
            seq = self._lists.get(self._live(ns, sid), {}).get(key)
            if not seq or len(seq) <= keep_last:
                return 0
            gone = len(seq) - keep_last
            del seq[:gone]
            return gone

    def keys(self, ns: str, sid: str) -> list[str]:
        with self._mutex:
            sk = self._live(ns, sid)
            names = set(self._values.get(sk, {}))
            names.update(k for k, v in self._lists.get(sk, {}).items() if v)
            return sorted(names)

    def touch(self, ns: str, sid: str, ttl: float | None) -> None:
        with self._mutex:
            self._live(ns, sid)  # an expired session's data goes before it is renewed
            self._expires[(ns, sid)] = None if ttl is None else time.time() + ttl

    def sessions(self, ns: str) -> list[str]:
        with self._mutex:
            now = time.time()
            return sorted(
                sid
                for (n, sid), exp in self._expires.items()
                if n == ns and (exp is None or exp > now)
            )

    def drop(self, ns: str, sid: str) -> None:
        with self._mutex:
            self._drop((ns, sid))

    def cleanup(self, ns: str) -> int:
        with self._mutex:
            now = time.time()
            dead = [
                sk
                for sk, exp in self._expires.items()
                if sk[0] == ns and exp is not None and exp <= now
            ]
            for sk in dead:
                self._drop(sk)
            return len(dead)

    def lock(
        self, ns: str, sid: str, name: str, timeout: float, ttl: float
    ) -> AbstractContextManager[None]:
        with self._mutex:
            lk = self._locks.setdefault((ns, sid, name), threading.Lock())
        return poll_lock(lambda: lk.acquire(blocking=False), lk.release, sid, name, timeout)

    def close(self) -> None:
        """Nothing to release."""

"""The Session: named values and append-only lists, on any store, safe under concurrency."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, Literal

from aipowertools.core._errors import mask_url
from aipowertools.core.errors import ConfigurationError, SessionConflictError
from aipowertools.sessions._backend import ABSENT, SessionBackend, Versioned
from aipowertools.sessions._codec import Codec
from aipowertools.sessions._errors import (
    SessionIntegrityError,
    SessionLimitError,
    SessionTypeError,
)
from aipowertools.sessions._ids import check_name
from aipowertools.sessions._stores import open_store

BACKUP_FORMAT = "aipowertools.sessions/backup/1"
_ALL = 2**62
_MISSING: Any = object()

Trim = Literal["oldest", "error"]


def _slice_tail(tail: list[bytes], stop: int | None) -> list[bytes]:
    """Items of a list's newest ``len(tail)`` items up to a negative ``stop`` (from the end)."""
    return tail if stop is None else tail[: max(len(tail) + stop, 0)]


def _check_int(name: str, value: object, minimum: int | None = None) -> None:
    """Raise a ConfigurationError unless ``value`` is an int (and at least ``minimum``)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"{name} must be an int, not {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigurationError(f"{name} must be at least {minimum}, not {value!r}")


class Session:
    """Named values and append-only lists for one conversation, user or job.

    Values (``set``/``get``) are versioned for optimistic concurrency; lists (``append``) are
    append-only on every backend, so many threads and processes can add to one list without
    losing an item, and an append costs the same at item 10 and at item 10,000.

    Args:
        session_id: letters, digits and ``_ . @ + = -`` (1-200 characters).
        store: a store URL (``memory://``, ``diskcache:///dir``, ``redis://...``,
            ``postgresql://...``, ``s3://bucket/prefix``) or a backend; None uses
            ``AIPOWERTOOLS_STORE`` or the embedded diskcache store under the data directory.
        auto_save: write through on every call (default). With False, writes are buffered in
            this object until :meth:`save` (or the end of a ``with`` block).
        namespace: tenant / application name; sessions of one namespace never see another's.
        ttl: seconds of inactivity after which the whole session expires (refreshed by writes).
        max_items: most items a list may hold; see ``trim``.
        max_value_bytes: largest encoded value or list item accepted.
        trim: what ``max_items`` does: ``"oldest"`` drops the oldest items after an append
            (a sliding window), ``"error"`` refuses the append with SessionLimitError.
        codec: serialization, compression, encryption (default: JSON).
        lock_timeout: default seconds :meth:`lock` waits.

    Example:
        >>> session = Session("project-abc", store="memory://")
        >>> session.set("user_context", {"id": 123, "role": "admin"})
        1
        >>> session.append("conversation_history", {"role": "user", "content": "hi"})
        >>> session.get("conversation_history")
        [{'role': 'user', 'content': 'hi'}]
    """

    def __init__(
        self,
        session_id: str,
        *,
        store: str | SessionBackend | None = None,
        auto_save: bool = True,
        namespace: str = "default",
        ttl: float | None = None,
        max_items: int | None = None,
        max_value_bytes: int | None = None,
        trim: Trim = "oldest",
        codec: Codec | None = None,
        lock_timeout: float = 10.0,
    ) -> None:
        self.session_id = check_name(session_id, "session id")
        self.namespace = check_name(namespace, "namespace")
        self.backend: SessionBackend = (
            store if isinstance(store, SessionBackend) else open_store(store)
        )
        # Optional: append with max_items in one round trip (Redis); see RedisBackend.
        self._bounded: Callable[..., tuple[bool, int]] | None = getattr(
            self.backend, "append_bounded", None
        )
        if ttl is not None and (
            isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not ttl > 0
        ):
            raise ConfigurationError(f"ttl must be positive seconds or None, not {ttl!r}")
        if max_items is not None:
            _check_int("max_items", max_items, 1)
        if max_value_bytes is not None:
            _check_int("max_value_bytes", max_value_bytes, 1)
        if trim not in ("oldest", "error"):
            raise ConfigurationError(f"trim must be 'oldest' or 'error', not {trim!r}")
        self.auto_save = auto_save
        self.ttl = ttl
        self.max_items = max_items
        self.max_value_bytes = max_value_bytes
        self.trim = trim
        self.codec = codec or Codec()
        if (
            isinstance(lock_timeout, bool)
            or not isinstance(lock_timeout, (int, float))
            or not 0 <= lock_timeout < float("inf")
        ):
            raise ConfigurationError(
                f"lock_timeout must be a number of seconds >= 0, got {lock_timeout!r}"
            )
        self.lock_timeout = lock_timeout
        self._touched: float | None = None
        self._checked: set[str] = set()
        # names this object appended to as native lists (no value under them): skip the check
        self._native_lists: set[str] = set()
        self._pending: list[tuple[str, str, Any, Any]] = []  # (op, key, value, extra)

    def __repr__(self) -> str:
        return (
            f"Session({self.session_id!r}, namespace={self.namespace!r}, "
            f"store={mask_url(str(self.backend.url))!r})"
        )

    # -- helpers ------------------------------------------------------------------------------

    def _key(self, key: str) -> None:
        if type(key) is not str or key not in self._checked:
            check_name(key, "key")
            if len(self._checked) < 1024:
                self._checked.add(key)

    def _encode(self, key: str, value: Any) -> bytes:
        try:
            data = self.codec.encode(value)
        except RecursionError:
            raise ConfigurationError(
                f"the value for {key!r} is nested too deeply to store as JSON"
            ) from None
        if self.max_value_bytes is not None and len(data) > self.max_value_bytes:
            raise SessionLimitError(
                self.session_id,
                key,
                f"encoded value is {len(data)} bytes, over max_value_bytes={self.max_value_bytes}",
            )
        return data

    def _decode(self, key: str, data: bytes) -> Any:
        return self.codec.decode(data, f"session {self.session_id!r} key {key!r}")

    def _touch(self) -> None:
        now = time.monotonic()
        if self._touched is None or (self.ttl is not None and now - self._touched > self.ttl / 10):
            self.backend.touch(self.namespace, self.session_id, self.ttl)
            self._touched = now

    def _write_value(self, key: str, data: bytes, expected: int | None) -> int:
        self._touch()
        return self.backend.set(self.namespace, self.session_id, key, data, expected)

    def _limit_error(self, key: str, have: int, adding: int) -> SessionLimitError:
        return SessionLimitError(
            self.session_id,
            key,
            f"list has {have} items; {adding} more exceed max_items={self.max_items}",
        )

    def _extended_value(self, key: str, found: Versioned, items: list[bytes]) -> bytes:
        """The list value under ``key`` with ``items`` appended (max_items applied)."""
        current = self._decode(key, found.data)
        if not isinstance(current, list):
            raise SessionTypeError(self.session_id, key, type(current).__name__)
        new = current + [self._decode(key, d) for d in items]
        if self.max_items is not None and len(new) > self.max_items:
            if self.trim != "oldest":
                raise self._limit_error(key, len(current), len(items))
            new = new[-self.max_items :]
        return self._encode(key, new)

    def _append_to_value(self, key: str, items: list[bytes], retries: int = 50) -> bool:
        """Append to a list stored as a *value* (``set(key, [])``), by compare-and-set.

        One name holds one thing: a list ``set`` as a value grows in place, atomically on
        every backend (a concurrent writer makes the compare-and-set retry). Returns False
        when ``key`` holds no value, so the caller appends to the native O(1) list.

        Raises:
            SessionTypeError: ``key`` holds a value that is not a list.
        """
        if key in self._native_lists:  # appended natively by this object: no value to check
            return False
        ns, sid = self.namespace, self.session_id
        for attempt in range(retries):
            found = self.backend.get(ns, sid, key)
            if found is None:
                self._native_lists.add(key)
                return False
            data = self._extended_value(key, found, items)
            try:
                self._write_value(key, data, found.version)
                return True
            except SessionConflictError:
                time.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempt)))
        raise SessionConflictError(self.session_id, key, "a stable list", "concurrent appends")

    def _write_items(self, key: str, items: list[bytes]) -> None:
        ns, sid = self.namespace, self.session_id
        if self._append_to_value(key, items):
            return
        if self.max_items is not None and self._bounded is not None:  # one round trip
            self._touch()
            ok, have = self._bounded(ns, sid, key, items, self.max_items, self.trim == "oldest")
            if not ok:
                raise self._limit_error(key, have, len(items))
            return
        if self.max_items is not None and self.trim == "error":
            have = self.backend.length(ns, sid, key)
            if have + len(items) > self.max_items:
                raise self._limit_error(key, have, len(items))
        self._touch()
        length = self.backend.append(ns, sid, key, items)
        if self.max_items is not None and self.trim == "oldest":
            if length < 0:
                length = self.backend.length(ns, sid, key)
            if length > self.max_items:
                self.backend.trim(ns, sid, key, self.max_items)

    # -- values -------------------------------------------------------------------------------

    def set(self, key: str, value: Any, *, expected_version: int | None = None) -> int:
        """Store ``value`` under ``key``; returns its new version (1 for the first write).

        Args:
            key: the name.
            value: anything JSON can hold, a pydantic model or a registered type.
            expected_version: compare-and-set: write only if the stored version is this one
                (0: only if ``key`` does not exist yet). Buffered sessions check at save time.

        Raises:
            SessionConflictError: another writer changed ``key`` since ``expected_version``.
        """
        self._key(key)
        self._native_lists.discard(key)
        data = self._encode(key, value)
        if not self.auto_save:
            self._pending.append(("set", key, value, (data, expected_version)))
            return -1
        return self._write_value(key, data, expected_version)

    def get(self, key: str, default: Any = None) -> Any:
        """The value or the complete list stored under ``key``, else ``default``."""
        self._key(key)
        value = self._stored(key)
        value = self._overlay(key, value)
        return default if value is _MISSING else value

    def _stored(self, key: str) -> Any:
        found = self.backend.get(self.namespace, self.session_id, key)
        if found is not None:
            return self._decode(key, found.data)
        items = self.backend.read(self.namespace, self.session_id, key, 0, _ALL)
        if items:
            return [self._decode(key, d) for d in items]
        return _MISSING

    def _overlay(self, key: str, value: Any) -> Any:
        for op, k, v, _ in self._pending:
            if k != key:
                continue
            if op == "set":
                value = v
            elif op == "delete":
                value = _MISSING
            else:
                value = (list(value) if isinstance(value, list) else []) + list(v)
        return value

    def get_versioned(self, key: str) -> tuple[Any, int]:
        """``(value, version)`` of a stored value; ``(None, 0)`` if there is none.

        Use the version with ``set(..., expected_version=version)`` for compare-and-set.
        """
        self._key(key)
        found = self.backend.get(self.namespace, self.session_id, key)
        if found is None:
            return None, ABSENT
        return self._decode(key, found.data), found.version

    def update(
        self, key: str, fn: Callable[[Any], Any], *, default: Any = None, retries: int = 20
    ) -> Any:
        """Apply ``fn`` to the value under ``key`` atomically (compare-and-set, retried).

        Returns the new value. ``fn`` may run more than once, so it must have no side effects.

        Raises:
            SessionConflictError: still conflicting after ``retries`` attempts.
        """
        self._key(key)
        if not callable(fn):
            raise ConfigurationError(
                f"update() takes a function of the current value, got {type(fn).__name__}"
            )
        for attempt in range(retries):
            current, version = self.get_versioned(key)
            new = fn(default if version == ABSENT else current)
            try:
                self._write_value(key, self._encode(key, new), version)
                return new
            except SessionConflictError:
                # jittered exponential backoff, so contending writers stop colliding
                time.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempt)))
        raise SessionConflictError(self.session_id, key, "a stable value", "concurrent updates")

    def delete(self, key: str) -> None:
        """Remove the value or list stored under ``key`` (no error if there is none)."""
        self._key(key)
        self._native_lists.discard(key)
        if not self.auto_save:
            self._pending.append(("delete", key, None, None))
            return
        self.backend.delete(self.namespace, self.session_id, key)

    def keys(self) -> list[str]:
        """Names of every value and non-empty list, sorted."""
        names = set(self.backend.keys(self.namespace, self.session_id))
        for op, key, _, _ in self._pending:
            names.discard(key) if op == "delete" else names.add(key)
        return sorted(names)

    def get_all(self) -> dict[str, Any]:
        """Every value and every complete list, by name."""
        ns, sid = self.namespace, self.session_id
        out: dict[str, Any] = {
            k: self._decode(k, v.data) for k, v in self.backend.get_values(ns, sid).items()
        }
        for key in self.backend.keys(ns, sid):
            if key not in out:
                items = self.backend.read(ns, sid, key, 0, _ALL)
                if items:
                    out[key] = [self._decode(key, d) for d in items]
        for key in {k for _, k, _, _ in self._pending}:
            value = self._overlay(key, out.get(key, _MISSING))
            if value is _MISSING:
                out.pop(key, None)
            else:
                out[key] = value
        return dict(sorted(out.items()))

    # -- lists --------------------------------------------------------------------------------

    def append(self, key: str, value: Any) -> None:
        """Append ``value`` to the list ``key``; O(1), never rewrites the list.

        A list stored with ``set(key, [...])`` grows in place (atomically, by
        compare-and-set: ``get`` and ``get_all`` see the item); appending to a name that
        holds a value of another type raises :class:`SessionTypeError`.
        """
        if type(key) is not str or key not in self._checked:
            self._key(key)
        data = self._encode(key, value)
        if not self.auto_save:
            self._pending.append(("append", key, [value], [data]))
            return
        self._write_items(key, [data])

    def extend(self, key: str, values: Iterable[Any]) -> None:
        """Append several values in one atomic round trip, keeping their order."""
        self._key(key)
        values = list(values)
        if not values:
            return
        items = [self._encode(key, v) for v in values]
        if not self.auto_save:
            self._pending.append(("append", key, values, items))
            return
        self._write_items(key, items)

    def length(self, key: str) -> int:
        """Number of stored items in the list ``key`` (pending appends not included)."""
        self._key(key)
        return self.backend.length(self.namespace, self.session_id, key)

    def items(self, key: str, start: int = 0, stop: int | None = None) -> list[Any]:
        """A page of the list ``key``: items ``start <= i < stop``, oldest first.

        Negative indices count from the end, as in Python slices: ``items(key, -20)`` is the
        20 newest items.
        """
        self._key(key)
        _check_int("start", start)
        if stop is not None:
            _check_int("stop", stop)
        ns, sid = self.namespace, self.session_id
        tail = getattr(self.backend, "read_tail", None)
        if start < 0 and (stop is None or stop < 0) and tail is not None:
            return [self._decode(key, d) for d in _slice_tail(tail(ns, sid, key, -start), stop)]
        if start < 0 or (stop is not None and stop < 0):
            n = self.backend.length(ns, sid, key)
            start = max(n + start, 0) if start < 0 else start
            stop = None if stop is None else (max(n + stop, 0) if stop < 0 else stop)
        end = _ALL if stop is None else stop
        return [self._decode(key, d) for d in self.backend.read(ns, sid, key, start, end)]

    def iter_items(self, key: str, *, page_size: int = 1000) -> Iterator[Any]:
        """Every item of the list ``key``, oldest first, read ``page_size`` at a time.

        Raises:
            ConfigurationError: ``page_size`` is not a positive int (checked at the call).
        """
        self._key(key)
        _check_int("page_size", page_size, 1)
        return self._pages(key, page_size)

    def _pages(self, key: str, page_size: int) -> Iterator[Any]:
        start = 0
        while True:
            page = self.items(key, start, start + page_size)
            yield from page
            if len(page) < page_size:
                return
            start += page_size

    # -- whole session ------------------------------------------------------------------------

    def save(self) -> None:
        """Write buffered changes (``auto_save=False``) in order; a no-op otherwise.

        Raises:
            SessionConflictError: a buffered compare-and-set lost; later changes stay buffered.
        """
        while self._pending:
            op, key, _, extra = self._pending[0]
            if op == "set":
                data, expected = extra
                self._write_value(key, data, expected)
                self._pending.pop(0)
            elif op == "delete":
                self.backend.delete(self.namespace, self.session_id, key)
                self._pending.pop(0)
            else:
                items: list[bytes] = []
                while (
                    self._pending and self._pending[0][0] == "append" and self._pending[0][1] == key
                ):
                    items.extend(self._pending.pop(0)[3])
                self._write_items(key, items)

    @property
    def dirty(self) -> bool:
        """Whether there are buffered changes not yet saved."""
        return bool(self._pending)

    def clear(self) -> None:
        """Delete the whole session from the store (and drop buffered changes)."""
        self._pending.clear()
        self.backend.drop(self.namespace, self.session_id)
        self._touched = None

    def touch(self) -> None:
        """Mark the session alive now, restarting its TTL."""
        self._touched = None
        self._touch()

    def lock(
        self, name: str = "session", *, timeout: float | None = None, ttl: float = 30.0
    ) -> AbstractContextManager[None]:
        """An exclusive lock shared through the store, for read-modify-write sequences.

        Backed by the store: a Redis lock with expiry, a PostgreSQL advisory lock (released if
        the holder dies), a diskcache entry with expiry, an S3 object with expiry.

        Args:
            name: lock name within the session.
            timeout: seconds to wait (default ``lock_timeout``).
            ttl: seconds after which a holder that died is presumed gone.

        The lock is reentrant for this ``Session`` object within a thread: ``create_backup()``
        (which takes ``"session"``) works inside ``with session.lock():``; another ``Session``
        object, even of the same id, waits as any other holder would.

        Raises:
            SessionLockError: not acquired within ``timeout``.
        """
        check_name(name, "lock name")
        wait = self.lock_timeout if timeout is None else timeout
        backend, ns, sid = self.backend, self.namespace, self.session_id
        return _reentrant((id(self), ns, sid, name), lambda: backend.lock(ns, sid, name, wait, ttl))

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.save()

    # -- class-level --------------------------------------------------------------------------

    @classmethod
    def recover(cls, session_id: str, **options: Any) -> Session:
        """Open a session after a crash, checking that every stored entry decodes.

        Every acknowledged write is in the store (writes are acknowledged only once the
        backend has them), so recovery is reading it back; this raises instead of returning
        a session with entries that cannot be read.

        Raises:
            SessionIntegrityError: an entry is corrupt or was not written by this codec.
        """
        session = cls(session_id, **options)
        session.get_all()
        return session

    @staticmethod
    def list_sessions(
        store: str | SessionBackend | None = None, *, namespace: str = "default"
    ) -> list[str]:
        """Ids of the live (not expired) sessions of ``namespace``, sorted."""
        backend = store if isinstance(store, SessionBackend) else open_store(store)
        return backend.sessions(check_name(namespace, "namespace"))

    @staticmethod
    def cleanup(store: str | SessionBackend | None = None, *, namespace: str = "default") -> int:
        """Delete the expired sessions of ``namespace`` for good; returns how many."""
        backend = store if isinstance(store, SessionBackend) else open_store(store)
        return backend.cleanup(check_name(namespace, "namespace"))

    # -- backups ------------------------------------------------------------------------------

    def create_backup(self, path: str | os.PathLike[str]) -> Path:
        """Write a consistent snapshot of the session to ``path`` (atomically); returns it.

        Taken under the session lock ``"session"``; values are read in one call and every list
        up to its length when the snapshot starts. Entries stay in their stored (possibly
        encrypted) form.
        """
        ns, sid = self.namespace, self.session_id
        target = Path(path)
        with self.lock("session"):
            values = self.backend.get_values(ns, sid)
            lists = {}
            for key in self.backend.keys(ns, sid):
                n = self.backend.length(ns, sid, key)
                if n:
                    lists[key] = self.backend.read(ns, sid, key, 0, n)
        payload = {
            "format": BACKUP_FORMAT,
            "session_id": sid,
            "namespace": ns,
            "created_at": time.time(),
            "ttl": self.ttl,
            "values": {
                k: {"version": v.version, "data": base64.b64encode(v.data).decode()}
                for k, v in values.items()
            },
            "lists": {k: [base64.b64encode(d).decode() for d in v] for k, v in lists.items()},
        }
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(payload, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    @classmethod
    def restore_backup(
        cls, path: str | os.PathLike[str], *, session_id: str | None = None, **options: Any
    ) -> Session:
        """Replace a session with the snapshot at ``path``; returns it.

        Args:
            path: a file written by :meth:`create_backup`.
            session_id: restore under another id (default: the backed-up id).
            **options: as for :class:`Session` (``store``, ``namespace``, ``codec``...).

        Raises:
            SessionIntegrityError: the file is not a session backup.
        """
        try:
            payload = json.loads(Path(path).read_text())
            ok = payload.get("format") == BACKUP_FORMAT
        except (ValueError, AttributeError):
            ok = False
        if not ok:
            raise SessionIntegrityError(str(path), "not a session backup file")
        options.setdefault("namespace", payload["namespace"])
        session = cls(session_id or payload["session_id"], **options)
        ns, sid = session.namespace, session.session_id
        with session.lock("session"):
            session.backend.drop(ns, sid)
            session._touched = None
            session._touch()
            for key, entry in payload["values"].items():
                session.backend.set(ns, sid, key, base64.b64decode(entry["data"]), None)
            for key, encoded in payload["lists"].items():
                items = [base64.b64decode(d) for d in encoded]
                for i in range(0, len(items), 1000):
                    session.backend.append(ns, sid, key, items[i : i + 1000])
        return session

    # -- async twins --------------------------------------------------------------------------

    # Backends with native async methods (``aappend``, ``aread``...: Redis, PostgreSQL) are awaited
    # directly; the others run in a worker thread.

    def _native(self) -> Any:
        return self.backend if hasattr(self.backend, "aappend") else None

    async def _atouch(self, native: Any) -> None:
        now = time.monotonic()
        if self._touched is None or (self.ttl is not None and now - self._touched > self.ttl / 10):
            await native.atouch(self.namespace, self.session_id, self.ttl)
            self._touched = now

    async def aset(self, key: str, value: Any, *, expected_version: int | None = None) -> int:
        """Async :meth:`set`."""
        native = self._native()
        if native is None or not self.auto_save:
            return await asyncio.to_thread(self.set, key, value, expected_version=expected_version)
        self._key(key)
        self._native_lists.discard(key)
        data = self._encode(key, value)
        await self._atouch(native)
        version: int = await native.aset(
            self.namespace, self.session_id, key, data, expected_version
        )
        return version

    async def aget(self, key: str, default: Any = None) -> Any:
        """Async :meth:`get`."""
        native = self._native()
        if native is None:
            return await asyncio.to_thread(self.get, key, default)
        self._key(key)
        ns, sid = self.namespace, self.session_id
        found = await native.aget(ns, sid, key)
        value: Any = _MISSING
        if found is not None:
            value = self._decode(key, found.data)
        else:
            items = await native.aread(ns, sid, key, 0, _ALL)
            if items:
                value = [self._decode(key, d) for d in items]
        value = self._overlay(key, value)
        return default if value is _MISSING else value

    async def aget_versioned(self, key: str) -> tuple[Any, int]:
        """Async :meth:`get_versioned`."""
        return await asyncio.to_thread(self.get_versioned, key)

    async def aupdate(self, key: str, fn: Callable[[Any], Any], *, default: Any = None) -> Any:
        """Async :meth:`update`."""
        return await asyncio.to_thread(self.update, key, fn, default=default)

    async def adelete(self, key: str) -> None:
        """Async :meth:`delete`."""
        await asyncio.to_thread(self.delete, key)

    async def akeys(self) -> list[str]:
        """Async :meth:`keys`."""
        return await asyncio.to_thread(self.keys)

    async def aget_all(self) -> dict[str, Any]:
        """Async :meth:`get_all`."""
        return await asyncio.to_thread(self.get_all)

    async def aappend(self, key: str, value: Any) -> None:
        """Async :meth:`append`."""
        await self.aextend(key, [value])

    async def aextend(self, key: str, values: Iterable[Any]) -> None:
        """Async :meth:`extend`."""
        native = self._native()
        if native is None or not self.auto_save:
            await asyncio.to_thread(self.extend, key, list(values))
            return
        self._key(key)
        items = [self._encode(key, v) for v in values]
        if not items:
            return
        ns, sid = self.namespace, self.session_id
        if key not in self._native_lists:
            if await native.aget(ns, sid, key) is not None:  # a list value: compare-and-set
                await asyncio.to_thread(self._write_items, key, items)
                return
            self._native_lists.add(key)
        bounded = getattr(native, "aappend_bounded", None)
        if self.max_items is not None and bounded is not None:  # one round trip
            await self._atouch(native)
            ok, have = await bounded(ns, sid, key, items, self.max_items, self.trim == "oldest")
            if not ok:
                raise self._limit_error(key, have, len(items))
            return
        if self.max_items is not None and self.trim == "error":
            have = await native.alength(ns, sid, key)
            if have + len(items) > self.max_items:
                raise self._limit_error(key, have, len(items))
        await self._atouch(native)
        length = await native.aappend(ns, sid, key, items)
        if self.max_items is not None and self.trim == "oldest":
            if length < 0:
                length = await native.alength(ns, sid, key)
            if length > self.max_items:
                await native.atrim(ns, sid, key, self.max_items)

    async def alength(self, key: str) -> int:
        """Async :meth:`length`."""
        native = self._native()
        if native is None:
            return await asyncio.to_thread(self.length, key)
        self._key(key)
        n: int = await native.alength(self.namespace, self.session_id, key)
        return n

    async def aitems(self, key: str, start: int = 0, stop: int | None = None) -> list[Any]:
        """Async :meth:`items`."""
        native = self._native()
        if native is None:
            return await asyncio.to_thread(self.items, key, start, stop)
        self._key(key)
        _check_int("start", start)
        if stop is not None:
            _check_int("stop", stop)
        ns, sid = self.namespace, self.session_id
        atail = getattr(native, "aread_tail", None)
        if start < 0 and (stop is None or stop < 0) and atail is not None:
            found = _slice_tail(await atail(ns, sid, key, -start), stop)
            return [self._decode(key, d) for d in found]
        if start < 0 or (stop is not None and stop < 0):
            n = await native.alength(ns, sid, key)
            start = max(n + start, 0) if start < 0 else start
            stop = None if stop is None else (max(n + stop, 0) if stop < 0 else stop)
        end = _ALL if stop is None else stop
        return [self._decode(key, d) for d in await native.aread(ns, sid, key, start, end)]

    async def asave(self) -> None:
        """Async :meth:`save`."""
        await asyncio.to_thread(self.save)

    async def aclear(self) -> None:
        """Async :meth:`clear`."""
        await asyncio.to_thread(self.clear)

    @asynccontextmanager
    async def alock(
        self, name: str = "session", *, timeout: float | None = None, ttl: float = 30.0
    ) -> AsyncIterator[None]:
        """Async :meth:`lock` (acquired and released on one worker thread)."""
        manager = self.lock(name, timeout=timeout, ttl=ttl)
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(1, thread_name_prefix="aipt-lock") as pool:
            await loop.run_in_executor(pool, manager.__enter__)
            try:
                yield
            finally:
                await loop.run_in_executor(pool, manager.__exit__, None, None, None)


_held = threading.local()


@contextmanager
def _reentrant(
    key: tuple[Any, ...], acquire: Callable[[], AbstractContextManager[None]]
) -> Iterator[None]:
    """Take a store lock once per thread and Session: nested ``lock()`` calls pass through.

    Store locks are not reentrant (a PostgreSQL advisory lock belongs to a connection, a Redis
    lock to a token), so without this a thread waiting for a lock it holds waits for ever.
    """
    held: dict[tuple[Any, ...], int] = _held.__dict__.setdefault("locks", {})
    if key in held:
        held[key] += 1
        try:
            yield
        finally:
            held[key] -= 1
        return
    with acquire():
        held[key] = 1
        try:
            yield
        finally:
            del held[key]

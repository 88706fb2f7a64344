"""The embedded backend (``diskcache:///path``): SQLite via diskcache, safe across processes.

Layout (one ``Cache`` for data, one for the session index)::

    v/{ns}/{sid}/{key}            8-byte big-endian version + envelope
    l/{ns}/{sid}/{key}/-{n:015d}  one list item, appended with ``Cache.push`` (one SQLite
                                  transaction that finds the tail and inserts: O(log n))
    index: s/{ns}/{sid} -> expiry (or "") ; k/{ns}/{sid} -> JSON list of key names

Every entry is tagged with ``{ns}/{sid}`` so dropping a session is one DELETE. Values are
stored as raw bytes; the disk class refuses to unpickle anything found in the database.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import diskcache

from aipowertools.sessions._backend import ABSENT, Versioned, conflict, poll_lock
from aipowertools.sessions._errors import SessionIntegrityError

_HEADER = 8


class _SafeDisk(diskcache.Disk):  # type: ignore[misc]
    """A diskcache Disk that never unpickles data read back from the database."""

    def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
        if mode == diskcache.core.MODE_PICKLE:
            raise SessionIntegrityError("diskcache store", "refusing to unpickle a stored entry")
        return super().fetch(mode, filename, value, read)


def _num(db_key: str) -> int:
    return int(db_key[db_key.rfind("-") + 1 :])


class DiskCacheBackend:
    """Sessions in a local directory; many threads and processes may share it."""

    def __init__(self, directory: str | os.PathLike[str], url: str | None = None) -> None:
        self.directory = Path(directory)
        self.url = url or f"diskcache://{self.directory}"
        self.directory.mkdir(parents=True, exist_ok=True)
        # eviction_policy="none": diskcache's default evicts the least recently stored entries
        # once the database passes size_limit (1 GiB), which would silently drop messages.
        # It also spares every write the size check that culling does.
        self._data = diskcache.Cache(
            str(self.directory / "data"),
            disk=_SafeDisk,
            tag_index=True,
            timeout=60,
            eviction_policy="none",
        )
        self._index = diskcache.Cache(
            str(self.directory / "index"), disk=_SafeDisk, timeout=60, eviction_policy="none"
        )
        self._known: set[tuple[str, str, str, int]] = set()
        self._known_lock = threading.Lock()

    # -- helpers ------------------------------------------------------------------------------

    def _expired(self, ns: str, sid: str) -> bool:
        expires = self._index.get(f"s/{ns}/{sid}", retry=True)
        if expires in (None, ""):
            return False
        return float(expires) <= time.time()

    def _remember_key(self, ns: str, sid: str, key: str) -> None:
        # The drop count of the session is part of the marker: after any process drops the
        # session (clear, expiry), the key is named in the index again.
        marker = (ns, sid, key, self._index.get(f"e/{ns}/{sid}", 0, retry=True))
        if marker in self._known:
            return
        ik = f"k/{ns}/{sid}"
        with self._index.transact(retry=True):
            names = json.loads(self._index.get(ik, "[]"))
            if key not in names:
                names.append(key)
                self._index.set(ik, json.dumps(names))
        with self._known_lock:
            self._known.add(marker)

    def _bounds(self, prefix: str) -> tuple[int, int]:
        """(first, last + 1) item numbers of a list, (0, 0) when empty."""
        front = self._data.peek(prefix=prefix, side="front", default=None, retry=True)
        if front is None:
            return 0, 0
        back = self._data.peek(prefix=prefix, side="back", default=None, retry=True)
        return _num(front[0]), _num(back[0]) + 1

    # -- values -------------------------------------------------------------------------------

    def get(self, ns: str, sid: str, key: str) -> Versioned | None:
        if self._expired(ns, sid):
            return None
        raw = self._data.get(f"v/{ns}/{sid}/{key}", retry=True)
        if raw is None:
            return None
        return Versioned(raw[_HEADER:], int.from_bytes(raw[:_HEADER], "big"))

    def get_values(self, ns: str, sid: str) -> dict[str, Versioned]:
        out = {}
        for key in self._names(ns, sid):
            found = self.get(ns, sid, key)
            if found is not None:
                out[key] = found
        return out

    def set(self, ns: str, sid: str, key: str, data: bytes, expected: int | None) -> int:
        dk = f"v/{ns}/{sid}/{key}"
        self._remember_key(ns, sid, key)
        with self._data.transact(retry=True):
            raw = self._data.get(dk)
            actual = int.from_bytes(raw[:_HEADER], "big") if raw is not None else ABSENT
            if expected is not None and expected != actual:
                raise conflict(sid, key, expected, actual)
            version = actual + 1
            self._data.set(dk, version.to_bytes(_HEADER, "big") + data, tag=f"{ns}/{sid}")
        return version

    def delete(self, ns: str, sid: str, key: str) -> None:
        with self._data.transact(retry=True):
            self._data.delete(f"v/{ns}/{sid}/{key}")
            prefix = f"l/{ns}/{sid}/{key}/"
            first, end = self._bounds(prefix)
            for n in range(first, end):
                self._data.delete(f"{prefix}-{n:015d}")

    # -- lists --------------------------------------------------------------------------------

    def append(self, ns: str, sid: str, key: str, items: Sequence[bytes]) -> int:
        self._remember_key(ns, sid, key)
        prefix = f"l/{ns}/{sid}/{key}/"
        tag = f"{ns}/{sid}"
        if len(items) == 1:
            self._data.push(items[0], prefix=prefix, tag=tag, retry=True)
        else:
            with self._data.transact(retry=True):
                for item in items:
                    self._data.push(item, prefix=prefix, tag=tag)
        return -1  # the length costs two more lookups; the Session asks when it needs it

    def length(self, ns: str, sid: str, key: str) -> int:
        if self._expired(ns, sid):
            return 0
        first, end = self._bounds(f"l/{ns}/{sid}/{key}/")
        return end - first

    def read(self, ns: str, sid: str, key: str, start: int, stop: int) -> list[bytes]:
        if self._expired(ns, sid):
            return []
        prefix = f"l/{ns}/{sid}/{key}/"
        first, end = self._bounds(prefix)
        out = []
        get = self._data.get
        for n in range(first + max(start, 0), min(first + stop, end)):
            item = get(f"{prefix}-{n:015d}", retry=True)
            if item is not None:  # trimmed concurrently
                out.append(item)
        return out

    def read_tail(self, ns: str, sid: str, key: str, count: int) -> list[bytes]:
        if count <= 0 or self._expired(ns, sid):
            return []
        first, end = self._bounds(f"l/{ns}/{sid}/{key}/")
        return self.read(ns, sid, key, max(end - first - count, 0), end - first)

    def trim(self, ns: str, sid: str, key: str, keep_last: int) -> int:
        prefix = f"l/{ns}/{sid}/{key}/"
        gone = 0
        with self._data.transact(retry=True):
            first, end = self._bounds(prefix)
            for n in range(first, end - keep_last):
                self._data.delete(f"{prefix}-{n:015d}")
                gone += 1
        return gone

    # -- sessions -----------------------------------------------------------------------------

    def _names(self, ns: str, sid: str) -> list[str]:
        names: list[str] = json.loads(self._index.get(f"k/{ns}/{sid}", "[]", retry=True))
        return names

    def keys(self, ns: str, sid: str) -> list[str]:
        if self._expired(ns, sid):
            return []
        return sorted(
            k
            for k in self._names(ns, sid)
            if f"v/{ns}/{sid}/{k}" in self._data or self.length(ns, sid, k) > 0
        )

    def touch(self, ns: str, sid: str, ttl: float | None) -> None:
        if self._expired(ns, sid):  # an expired session's data goes before it is renewed
            self.drop(ns, sid)
        self._index.set(f"s/{ns}/{sid}", "" if ttl is None else repr(time.time() + ttl), retry=True)

    def sessions(self, ns: str) -> list[str]:
        start = f"s/{ns}/"
        found = []
        for ik in self._index.iterkeys():
            if isinstance(ik, str) and ik.startswith(start):
                sid = ik[len(start) :]
                if not self._expired(ns, sid):
                    found.append(sid)
        return sorted(found)

    def drop(self, ns: str, sid: str) -> None:
        self._data.evict(f"{ns}/{sid}", retry=True)
        self._index.delete(f"k/{ns}/{sid}", retry=True)
        self._index.delete(f"s/{ns}/{sid}", retry=True)
        self._index.incr(f"e/{ns}/{sid}", retry=True)  # other processes' key caches are stale
        with self._known_lock:
            self._known = {m for m in self._known if m[:2] != (ns, sid)}

    def cleanup(self, ns: str) -> int:
        start = f"s/{ns}/"
        dead = [
            ik[len(start) :]
            for ik in list(self._index.iterkeys())
            if isinstance(ik, str) and ik.startswith(start) and self._expired(ns, ik[len(start) :])
        ]
        for sid in dead:
            self.drop(ns, sid)
        return len(dead)

    def lock(
        self, ns: str, sid: str, name: str, timeout: float, ttl: float
    ) -> AbstractContextManager[None]:
        lk = f"lock/{ns}/{sid}/{name}"
        token = secrets.token_hex(8)

        def acquire() -> bool:
            return bool(self._index.add(lk, token, expire=ttl, retry=True))

        def release() -> None:
            with self._index.transact(retry=True):
                if self._index.get(lk) == token:
                    self._index.delete(lk)

        return poll_lock(acquire, release, sid, name, timeout)

    def close(self) -> None:
        self._data.close()
        self._index.close()

"""Where entries live: the protocol every backend implements, and the two embedded ones.

A backend stores opaque entry bytes by key with an optional TTL, an optional embedding per
entry (float32 bytes, grouped by semantic partition), and short per-key locks for
single-flight. Decoding, expiry checks and statistics are the cache's job, not the backend's.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol


class Backend(Protocol):
    """Storage for cache entries (all methods may raise on a store failure)."""

    url: str

    def get(self, key: str) -> bytes | None:
        """The entry bytes stored under ``key``, if any (one round trip)."""

    def put(
        self,
        key: str,
        blob: bytes,
        *,
        ttl: float | None,
        partition: str | None = None,
        vector: bytes | None = None,
    ) -> None:
        """Store ``blob`` under ``key`` for ``ttl`` seconds (None: until evicted)."""

    def delete(self, keys: Sequence[str]) -> int:
        """Remove entries (and their vectors); return how many existed."""

    def items(self) -> Iterator[tuple[str, bytes]]:
        """Every stored entry (for invalidation by pattern)."""

    def clear(self) -> int:
        """Remove every entry of this cache; return how many."""

    def vectors(self, partition: str) -> list[tuple[str, bytes]]:
        """The (key, float32 embedding bytes) pairs stored in ``partition``."""

    def drop_vector(self, partition: str, key: str) -> None:
        """Forget the vector of an entry that is gone (evicted or expired)."""

    def acquire(self, key: str, token: str, ttl: float) -> bool:
        """Take the single-flight lock of ``key`` for ``ttl`` seconds unless someone holds it."""

    def release(self, key: str, token: str) -> None:
        """Give the lock of ``key`` back if ``token`` still holds it."""

    def close(self) -> None:
        """Release connections."""


class MemoryBackend:
    """Entries in this process; least recently used out first past the entry / byte bounds."""

    def __init__(
        self,
        max_entries: int | None = None,
        max_bytes: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = "memory://"
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self._data: OrderedDict[str, tuple[bytes, float | None, str | None]] = OrderedDict()
        self._vectors: dict[str, dict[str, bytes]] = {}
        self._locks: dict[str, tuple[str, float]] = {}
        self._bytes = 0

    def get(self, key: str) -> bytes | None:
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return None
            if item[1] is not None and self._clock() >= item[1]:
                self._drop(key)
                return None
            self._data.move_to_end(key)
            return item[0]

    def put(
        self,
        key: str,
        blob: bytes,
        *,
        ttl: float | None,
        partition: str | None = None,
        vector: bytes | None = None,
    ) -> None:
        expires = None if ttl is None else self._clock() + ttl
        with self._lock:
            self._drop(key)
            self._data[key] = (blob, expires, partition)
            self._bytes += len(blob)
            if partition is not None and vector is not None:
                self._vectors.setdefault(partition, {})[key] = vector
            while self._data and (
                (self.max_entries is not None and len(self._data) > self.max_entries)
                or (self.max_bytes is not None and self._bytes > self.max_bytes)
            ):
                self._drop(next(iter(self._data)))

    def _drop(self, key: str) -> bool:
        item = self._data.pop(key, None)
        if item is None:
            return False
        self._bytes -= len(item[0])
        if item[2] is not None:
            vectors = self._vectors.get(item[2])
            if vectors is not None:
                vectors.pop(key, None)
                if not vectors:
                    del self._vectors[item[2]]
        return True

    def delete(self, keys: Sequence[str]) -> int:
        with self._lock:
            return sum(self._drop(k) for k in keys)

    def items(self) -> Iterator[tuple[str, bytes]]:
        with self._lock:
            snapshot = [(k, v[0]) for k, v in self._data.items()]
        return iter(snapshot)

    def clear(self) -> int:
        with self._lock:
            count = len(self._data)
            self._data.clear()
            self._vectors.clear()
            self._bytes = 0
            return count

    def vectors(self, partition: str) -> list[tuple[str, bytes]]:
        with self._lock:
            return list(self._vectors.get(partition, {}).items())

    def drop_vector(self, partition: str, key: str) -> None:
        with self._lock:
            self._vectors.get(partition, {}).pop(key, None)

    def acquire(self, key: str, token: str, ttl: float) -> bool:
        now = self._clock()
        with self._lock:
            held = self._locks.get(key)
            if held is not None and held[1] > now:
                return False
            self._locks[key] = (token, now + ttl)
            return True

    def release(self, key: str, token: str) -> None:
        with self._lock:
            held = self._locks.get(key)
            if held is not None and held[0] == token:
                del self._locks[key]

    def close(self) -> None:
        return None

    def __len__(self) -> int:
        return len(self._data)


class DiskcacheBackend:
    """Entries in a diskcache directory shared by the processes of one machine.

    diskcache evicts least-recently-used entries past ``max_bytes`` on its own; past
    ``max_entries`` this class evicts the least recently read ones. Embeddings and locks live
    in a second, never-evicting diskcache under ``<directory>/index`` so eviction of entries
    cannot drop them (a vector whose entry was evicted is removed at its next lookup).
    """

    def __init__(
        self,
        directory: Path,
        max_entries: int | None = None,
        max_bytes: int | None = None,
    ) -> None:
        import diskcache

        self.url = f"diskcache://{directory}"
        self.max_entries = max_entries
        directory.mkdir(parents=True, exist_ok=True)
        options: dict[str, Any] = {"eviction_policy": "least-recently-used"}
        if max_bytes is not None:
            options["size_limit"] = max_bytes
        else:
            options["size_limit"] = 2**62  # no size bound unless asked: a cache of answers
        self._c = diskcache.Cache(str(directory / "entries"), **options)
        self._index = diskcache.Cache(str(directory / "index"), eviction_policy="none")

    def get(self, key: str) -> bytes | None:
        value = self._c.get(key)
        return value if isinstance(value, bytes) or value is None else bytes(value)

    def put(
        self,
        key: str,
        blob: bytes,
        *,
        ttl: float | None,
        partition: str | None = None,
        vector: bytes | None = None,
    ) -> None:
        self._c.set(key, blob, expire=ttl, tag=partition)
        if partition is not None and vector is not None:
            with self._index.transact():
                vectors = dict(self._index.get("v:" + partition) or {})
                vectors[key] = vector
                self._index.set("v:" + partition, vectors)
        if self.max_entries is not None and len(self._c) > self.max_entries:
            self._evict(len(self._c) - self.max_entries)

    def _evict(self, count: int) -> None:
        # diskcache culls by size only; by count we drop the least recently read rows.
        rows = self._c._sql(
            "SELECT key FROM Cache ORDER BY access_time LIMIT ?", (count,)
        ).fetchall()
        for (key,) in rows:
            self._c.delete(key)

    def delete(self, keys: Sequence[str]) -> int:
        removed = 0
        for key in keys:
            removed += bool(self._c.delete(key))
        return removed

    def items(self) -> Iterator[tuple[str, bytes]]:
        for key in list(self._c.iterkeys()):
            value = self._c.get(key)
            if value is not None:
                yield str(key), value

    def clear(self) -> int:
        count = int(self._c.clear())
        with self._index.transact():
            for key in list(self._index.iterkeys()):
                if str(key).startswith("v:"):
                    self._index.delete(key)
        return count

    def vectors(self, partition: str) -> list[tuple[str, bytes]]:
        return list((self._index.get("v:" + partition) or {}).items())

    def drop_vector(self, partition: str, key: str) -> None:
        """Forget a vector whose entry is gone."""
        with self._index.transact():
            vectors = dict(self._index.get("v:" + partition) or {})
            if vectors.pop(key, None) is not None:
                self._index.set("v:" + partition, vectors)

    def acquire(self, key: str, token: str, ttl: float) -> bool:
        return bool(self._index.add("l:" + key, token, expire=ttl))

    def release(self, key: str, token: str) -> None:
        with self._index.transact():
            if self._index.get("l:" + key) == token:
                self._index.delete("l:" + key)

    def close(self) -> None:
        self._c.close()
        self._index.close()


def new_token() -> str:
    """A lock token unique to one holder."""
    return uuid.uuid4().hex

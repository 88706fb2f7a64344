"""Redis backend: one string key per entry with its TTL, a hash of embeddings per partition.

Keys (``aipt:cache:<namespace>:...``) are ``maxmemory``-friendly: every entry key carries
the cache's TTL (``SET ... PX``), so ``volatile-lru`` / ``allkeys-lru`` evict them like any
other cache key. A lookup is one ``GET``; single-flight locks are ``SET NX PX``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisBackend:
    """Entries in Redis, shared by every process and machine that uses the URL."""

    def __init__(self, url: str, namespace: str) -> None:
        from aipowertools.core.stores import redis_client

        self.url = url
        self._r: Any = redis_client(url)
        self._p = f"aipt:cache:{namespace}:"
        self._release = self._r.register_script(_RELEASE)

    def get(self, key: str) -> bytes | None:
        value: bytes | None = self._r.get(self._p + "e:" + key)
        return value

    def put(
        self,
        key: str,
        blob: bytes,
        *,
        ttl: float | None,
        partition: str | None = None,
        vector: bytes | None = None,
    ) -> None:
        px = None if ttl is None else max(1, math.ceil(ttl * 1000))
        if partition is None or vector is None:
            self._r.set(self._p + "e:" + key, blob, px=px)
            return
        vkey = self._p + "v:" + partition
        pipe = self._r.pipeline(transaction=True)
        pipe.set(self._p + "e:" + key, blob, px=px)
        pipe.hset(vkey, key, vector)
        if px is None:
            pipe.persist(vkey)
        else:  # the index lives as long as its longest-lived entry
            pipe.pexpire(vkey, px, gt=True)
            pipe.pexpire(vkey, px, nx=True)
        pipe.execute()

    def delete(self, keys: Sequence[str]) -> int:
        if not keys:
            return 0
        return int(self._r.delete(*(self._p + "e:" + k for k in keys)))

    def items(self) -> Iterator[tuple[str, bytes]]:
        prefix = self._p + "e:"
        batch: list[bytes] = []
        for name in self._r.scan_iter(match=prefix + "*", count=500):
            batch.append(name)
            if len(batch) == 500:
                yield from self._mget(batch, len(prefix))
                batch = []
        if batch:
            yield from self._mget(batch, len(prefix))

    def _mget(self, names: list[bytes], cut: int) -> Iterator[tuple[str, bytes]]:
        for name, value in zip(names, self._r.mget(names), strict=True):
            if value is not None:
                yield name.decode()[cut:], value

    def clear(self) -> int:
        count = 0
        names = list(self._r.scan_iter(match=self._p + "*", count=1000))
        for i in range(0, len(names), 500):
            chunk = names[i : i + 500]
            count += sum(1 for n in chunk if n.startswith((self._p + "e:").encode()))
            self._r.unlink(*chunk)
        return count

    def vectors(self, partition: str) -> list[tuple[str, bytes]]:
        stored = self._r.hgetall(self._p + "v:" + partition)
        return [(k.decode(), v) for k, v in stored.items()]

    def drop_vector(self, partition: str, key: str) -> None:
        self._r.hdel(self._p + "v:" + partition, key)

    def acquire(self, key: str, token: str, ttl: float) -> bool:
        px = max(1, math.ceil(ttl * 1000))
        return bool(self._r.set(self._p + "l:" + key, token, nx=True, px=px))

    def release(self, key: str, token: str) -> None:
        self._release(keys=[self._p + "l:" + key], args=[token])

    def close(self) -> None:
        return None  # the client is shared by the process

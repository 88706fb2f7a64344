"""The Redis backend (``redis://``): a hash per session for values, a Redis list per list.

Keys share one hash tag so a session lives on one cluster slot::

    {prefix}:{ns/sid}:h        hash: "d:<key>" -> envelope, "v:<key>" -> version
    {prefix}:{ns/sid}:l:<key>  list items (RPUSH: O(1) per item, atomic)
    {prefix}:{ns/sid}:k        set of list names
    {prefix}:{ns/sid}:m        marker carrying the session TTL (every key gets the same PTTL)
    {prefix}:idx:{ns}          sorted set: sid -> expiry (inf when none), for listing

An append is one script call: RPUSH (O(1), atomic) guarded by the append's id, remembered for
5 minutes in ``{prefix}:{ns/sid}:a``, so a resend after a lost reply never stores it twice; the
call that creates a list also names it in the session's list set and copies the session TTL
onto it, so an idle session expires as a whole.
Value writes are Lua scripts (compare-and-set in one round trip).

The append's RPUSH goes through a lane of kept connections when the client allows it
(:mod:`aipowertools.sessions._redis_lane`), skipping redis-py's per-command machinery.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from aipowertools.sessions._backend import Versioned, conflict
from aipowertools.sessions._errors import SessionLockError
from aipowertools.sessions._redis_lane import FAILED, lane_for

# Run after an RPUSH that created a list: name it in the session's list set and give it the
# session's TTL. (A plain RPUSH is ~25 us cheaper than a script, and creation is rare.)
_REGISTER = """
redis.call('SADD', KEYS[2], ARGV[1])
local t = redis.call('PTTL', KEYS[3])
if t > 0 then
  redis.call('PEXPIRE', KEYS[1], t)
  redis.call('PEXPIRE', KEYS[2], t)
end
return 1
"""

_SET = """
local v = tonumber(redis.call('HGET', KEYS[1], 'v:' .. ARGV[1]) or '0')
if ARGV[3] ~= '' and tonumber(ARGV[3]) ~= v then
  return {0, v}
end
redis.call('HSET', KEYS[1], 'd:' .. ARGV[1], ARGV[2], 'v:' .. ARGV[1], v + 1)
local t = redis.call('PTTL', KEYS[2])
if t > 0 then redis.call('PEXPIRE', KEYS[1], t) end
return {1, v + 1}
"""

_TOUCH = """
local names = redis.call('SMEMBERS', KEYS[3])
local all = {KEYS[1], KEYS[2], KEYS[3]}
for _, name in ipairs(names) do table.insert(all, ARGV[3] .. name) end
if ARGV[1] == '' then
  redis.call('SET', KEYS[2], '1')
  for _, k in ipairs(all) do redis.call('PERSIST', k) end
  redis.call('ZADD', KEYS[4], 'inf', ARGV[2])
else
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
  for _, k in ipairs(all) do redis.call('PEXPIRE', k, ARGV[1]) end
  redis.call('ZADD', KEYS[4], ARGV[4], ARGV[2])
end
return 1
"""

_DROP = """
local names = redis.call('SMEMBERS', KEYS[3])
for _, name in ipairs(names) do redis.call('DEL', ARGV[2] .. name) end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], ARGV[3])
redis.call('ZREM', KEYS[4], ARGV[1])
return 1
"""

# trim="error": append only if the list stays within ARGV[1] items, atomically (one round trip
# instead of LLEN then RPUSH, and no window for two writers to pass the check together).
# Returns {1, new length} or {0, current length}; a list it creates is registered as _REGISTER.
_APPEND_WITHIN = """
local n = redis.call('LLEN', KEYS[1])
if n + #ARGV - 2 > tonumber(ARGV[1]) then return {0, n} end
n = redis.call('RPUSH', KEYS[1], unpack(ARGV, 3))
if n == #ARGV - 2 then
  redis.call('SADD', KEYS[2], ARGV[2])
  local t = redis.call('PTTL', KEYS[3])
  if t > 0 then
    redis.call('PEXPIRE', KEYS[1], t)
    redis.call('PEXPIRE', KEYS[2], t)
  end
end
return {1, n}
"""

_TRIM = """
local n = redis.call('LLEN', KEYS[1])
local gone = n - tonumber(ARGV[1])
if gone <= 0 then return 0 end
redis.call('LTRIM', KEYS[1], gone, -1)
return gone
"""

# An append that carries an id: stored at most once, however often it is sent (a retry after
# a reply lost to a timeout or a dropped connection). The ids of the last _ACK_S seconds live
# in a sorted set of the session ({base}a, scored by server time), so a resend finds its own.
# KEYS: list, list set, TTL marker, ack set. ARGV: list name, append id, items...
# Returns {1, new length} or, for an id seen before, {0, current length}.
_APPEND_ONCE = """
local t = redis.call('TIME')
local now = tonumber(t[1])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - tonumber(ARGV[3]))
if redis.call('ZADD', KEYS[4], 'NX', now, ARGV[2]) == 0 then
  return {0, redis.call('LLEN', KEYS[1])}
end
local n = redis.call('RPUSH', KEYS[1], unpack(ARGV, 4))
local ttl = redis.call('PTTL', KEYS[3])
if ttl > 0 then redis.call('PEXPIRE', KEYS[4], ttl) end
if n == #ARGV - 3 then
  redis.call('SADD', KEYS[2], ARGV[1])
  if ttl > 0 then
    redis.call('PEXPIRE', KEYS[1], ttl)
    redis.call('PEXPIRE', KEYS[2], ttl)
  end
end
return {1, n}
"""
_ACK_S = 300  # how long an append id is remembered (any retry happens well within it)

_MAX_ARGS = 4000  # items per RPUSH command in a huge batch


def _bounded_in_steps(
    backend: RedisBackend,
    ns: str,
    sid: str,
    key: str,
    items: Sequence[bytes],
    max_items: int,
    drop_oldest: bool,
) -> tuple[bool, int]:
    """``append_bounded`` for a batch too large for one command: check, append, trim."""
    if not drop_oldest:
        have = backend.length(ns, sid, key)
        if have + len(items) > max_items:
            return False, have
    length = backend.append(ns, sid, key, items)
    if drop_oldest and length > max_items:
        backend.trim(ns, sid, key, max_items)
    return True, min(length, max_items)


class RedisBackend:
    """Sessions on Redis, on the shared client of ``aipowertools.core.stores.redis_client``."""

    def __init__(self, url: str, *, prefix: str = "aipt:sess", client: Any = None) -> None:
        if client is None:
            from aipowertools.core.stores import redis_client

            client = redis_client(url)
        self._r = client
        self.url = url
        self._prefix = prefix
        self._lane = lane_for(client)
        self._register = self._r.register_script(_REGISTER)
        self._set = self._r.register_script(_SET)
        self._touch = self._r.register_script(_TOUCH)
        self._drop = self._r.register_script(_DROP)
        self._trim = self._r.register_script(_TRIM)
        self._within = self._r.register_script(_APPEND_WITHIN)
        self._once = self._r.register_script(_APPEND_ONCE)

    def _base(self, ns: str, sid: str) -> str:
        return f"{self._prefix}:{{{ns}/{sid}}}:"

    def get(self, ns: str, sid: str, key: str) -> Versioned | None:
        data, version = self._r.hmget(self._base(ns, sid) + "h", f"d:{key}", f"v:{key}")
        if data is None:
            return None
        return Versioned(bytes(data), int(version))

    def get_values(self, ns: str, sid: str) -> dict[str, Versioned]:
        raw = self._r.hgetall(self._base(ns, sid) + "h")
        out = {}
        for field, data in raw.items():
            name = field.decode()
            if name.startswith("d:"):
                key = name[2:]
                out[key] = Versioned(bytes(data), int(raw[f"v:{key}".encode()]))
        return out

    def set(self, ns: str, sid: str, key: str, data: bytes, expected: int | None) -> int:
        base = self._base(ns, sid)
        ok, version = self._set(
            keys=[base + "h", base + "m"], args=[key, data, "" if expected is None else expected]
        )
        if not ok:
            raise conflict(sid, key, expected, int(version))
        return int(version)

    def delete(self, ns: str, sid: str, key: str) -> None:
        base = self._base(ns, sid)
        with self._r.pipeline(transaction=True) as pipe:
            pipe.hdel(base + "h", f"d:{key}", f"v:{key}")
            pipe.delete(base + "l:" + key)
            pipe.srem(base + "k", key)
            pipe.execute()

    def _once_call(
        self, ns: str, sid: str, key: str, items: Sequence[bytes]
    ) -> tuple[list[str], list[Any]]:
        base = self._base(ns, sid)
        keys = [base + "l:" + key, base + "k", base + "m", base + "a"]
        return keys, [key, uuid.uuid4().hex, _ACK_S, *items]

    def append(self, ns: str, sid: str, key: str, items: Sequence[bytes]) -> int:
        """Append once: the items carry an id, so a resend after a lost reply stores nothing."""
        if len(items) > _MAX_ARGS:  # one MULTI/EXEC so a huge batch lands contiguously
            base = self._base(ns, sid)
            list_key = base + "l:" + key
            with self._r.pipeline(transaction=True) as pipe:
                for i in range(0, len(items), _MAX_ARGS):
                    pipe.rpush(list_key, *items[i : i + _MAX_ARGS])
                length = int(pipe.execute()[-1])
            if length == len(items):  # this call created the list
                self._register(keys=[list_key, base + "k", base + "m"], args=[key])
            return length
        keys, args = self._once_call(ns, sid, key, items)
        reply = FAILED
        if self._lane is not None:
            try:
                reply = self._lane.call("EVALSHA", self._once.sha, len(keys), *keys, *args)
            except self._lane.no_script:
                reply = FAILED  # not loaded on this server yet: the Script object loads it
        if reply is FAILED:  # same id: if the lane's command did land, this stores nothing
            reply = self._once(keys=keys, args=args)
        return int(reply[1])

    def append_bounded(
        self, ns: str, sid: str, key: str, items: Sequence[bytes], max_items: int, drop_oldest: bool
    ) -> tuple[bool, int]:
        """Append with a size limit in one round trip: ``(stored, length)``.

        ``drop_oldest``: RPUSH then ``LTRIM -max -1``, sent together (the newest ``max_items``
        stay, whatever other writers do in between). Otherwise a script appends only if the
        list stays within ``max_items``, else stores nothing and returns ``(False, length)``.
        """
        base = f"{self._prefix}:{{{ns}/{sid}}}:"
        list_key = base + "l:" + key
        if len(items) > _MAX_ARGS:  # a huge batch: the general path, in several steps
            return _bounded_in_steps(self, ns, sid, key, items, max_items, drop_oldest)
        if drop_oldest:
            push, trim = ("RPUSH", list_key, *items), ("LTRIM", list_key, -max_items, -1)
            replies = FAILED if self._lane is None else self._lane.call_many(push, trim)
            if replies is FAILED:
                with self._r.pipeline(transaction=False) as pipe:
                    pipe.rpush(list_key, *items)
                    pipe.ltrim(list_key, -max_items, -1)
                    replies = pipe.execute()
            length = int(replies[0])
            if length == len(items):
                self._register(keys=[list_key, base + "k", base + "m"], args=[key])
            return True, min(length, max_items)
        keys = [list_key, base + "k", base + "m"]
        args = [max_items, key, *items]
        reply = FAILED
        if self._lane is not None:
            try:
                reply = self._lane.call("EVALSHA", self._within.sha, len(keys), *keys, *args)
            except self._lane.no_script:
                reply = FAILED  # not loaded on this server yet: the Script object loads it
        if reply is FAILED:
            reply = self._within(keys=keys, args=args)
        ok, length = reply
        return bool(ok), int(length)

    async def aappend_bounded(
        self, ns: str, sid: str, key: str, items: Sequence[bytes], max_items: int, drop_oldest: bool
    ) -> tuple[bool, int]:
        """Async :meth:`append_bounded`."""
        if len(items) > _MAX_ARGS:
            import asyncio

            return await asyncio.to_thread(
                self.append_bounded, ns, sid, key, items, max_items, drop_oldest
            )
        base = self._base(ns, sid)
        keys = [base + "l:" + key, base + "k", base + "m"]
        if drop_oldest:
            async with self._ar().pipeline(transaction=False) as pipe:
                pipe.rpush(keys[0], *items)
                pipe.ltrim(keys[0], -max_items, -1)
                length = int((await pipe.execute())[0])
            if length == len(items):
                await self._aeval(self._register, keys, [key])
            return True, min(length, max_items)
        ok, n = await self._aeval(self._within, keys, [max_items, key, *items])
        return bool(ok), int(n)

    def length(self, ns: str, sid: str, key: str) -> int:
        return int(self._r.llen(self._base(ns, sid) + "l:" + key))

    def read(self, ns: str, sid: str, key: str, start: int, stop: int) -> list[bytes]:
        if stop <= start:
            return []
        return [bytes(x) for x in self._r.lrange(self._base(ns, sid) + "l:" + key, start, stop - 1)]

    def read_tail(self, ns: str, sid: str, key: str, count: int) -> list[bytes]:
        if count <= 0:
            return []
        return [bytes(x) for x in self._r.lrange(self._base(ns, sid) + "l:" + key, -count, -1)]

    def trim(self, ns: str, sid: str, key: str, keep_last: int) -> int:
        return int(self._trim(keys=[self._base(ns, sid) + "l:" + key], args=[keep_last]))

    def keys(self, ns: str, sid: str) -> list[str]:
        base = self._base(ns, sid)
        with self._r.pipeline(transaction=False) as pipe:
            pipe.hkeys(base + "h")
            pipe.smembers(base + "k")
            fields, lists = pipe.execute()
        names = {f.decode()[2:] for f in fields if f.startswith(b"d:")}
        lists = [n.decode() for n in lists]
        if lists:
            with self._r.pipeline(transaction=False) as pipe:
                for n in lists:
                    pipe.llen(base + "l:" + n)
                names.update(n for n, size in zip(lists, pipe.execute(), strict=True) if size)
        return sorted(names)

    def touch(self, ns: str, sid: str, ttl: float | None) -> None:
        base = self._base(ns, sid)
        ms = "" if ttl is None else str(max(1, int(ttl * 1000)))
        expiry = "inf" if ttl is None else repr(time.time() + ttl)
        self._touch(
            keys=[base + "h", base + "m", base + "k", f"{self._prefix}:idx:{ns}"],
            args=[ms, sid, base + "l:", expiry],
        )

    def sessions(self, ns: str) -> list[str]:
        found = self._r.zrangebyscore(f"{self._prefix}:idx:{ns}", f"({time.time()!r}", math.inf)
        return sorted(s.decode() for s in found)

    def drop(self, ns: str, sid: str) -> None:
        base = self._base(ns, sid)
        self._drop(
            keys=[base + "h", base + "m", base + "k", f"{self._prefix}:idx:{ns}"],
            args=[sid, base + "l:", base + "a"],
        )

    def cleanup(self, ns: str) -> int:
        # The keys themselves expire natively; this forgets them in the listing index.
        idx = f"{self._prefix}:idx:{ns}"
        dead = self._r.zrangebyscore(idx, "-inf", time.time())
        for sid in dead:
            self.drop(ns, sid.decode())
        return len(dead)

    def lock(
        self, ns: str, sid: str, name: str, timeout: float, ttl: float
    ) -> AbstractContextManager[None]:
        lk = self._r.lock(
            f"{self._base(ns, sid)}lock:{name}", timeout=ttl, blocking_timeout=timeout, sleep=0.005
        )

        @contextmanager
        def _cm() -> Iterator[None]:
            if not lk.acquire():
                raise SessionLockError(sid, name, timeout)
            try:
                yield
            finally:
                import redis.exceptions

                try:
                    lk.release()
                except redis.exceptions.LockError as exc:  # it expired while held
                    raise SessionLockError(sid, name, ttl) from exc

        return _cm()

    def close(self) -> None:
        """Give idle lane connections back; the client itself is shared (core.stores owns it)."""
        if self._lane is not None:
            self._lane.drain()

    # -- native async (redis.asyncio, one shared client per event loop) ------------------------

    def _ar(self) -> Any:
        from aipowertools.core.stores import async_redis_client

        return async_redis_client(self.url)

    async def _aeval(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        import redis.exceptions

        client = self._ar()
        try:
            return await client.evalsha(script.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            return await client.eval(script.script, len(keys), *keys, *args)

    async def aget(self, ns: str, sid: str, key: str) -> Versioned | None:
        """Async :meth:`get`."""
        base = self._base(ns, sid)
        data, version = await self._ar().hmget(base + "h", f"d:{key}", f"v:{key}")
        return None if data is None else Versioned(bytes(data), int(version))

    async def aset(self, ns: str, sid: str, key: str, data: bytes, expected: int | None) -> int:
        """Async :meth:`set`."""
        base = self._base(ns, sid)
        ok, version = await self._aeval(
            self._set, [base + "h", base + "m"], [key, data, "" if expected is None else expected]
        )
        if not ok:
            raise conflict(sid, key, expected, int(version))
        return int(version)

    async def aappend(self, ns: str, sid: str, key: str, items: Sequence[bytes]) -> int:
        """Async :meth:`append`."""
        if len(items) > _MAX_ARGS:
            import asyncio

            return await asyncio.to_thread(self.append, ns, sid, key, items)
        keys, args = self._once_call(ns, sid, key, items)
        reply = await self._aeval(self._once, keys, args)
        return int(reply[1])

    async def alength(self, ns: str, sid: str, key: str) -> int:
        """Async :meth:`length`."""
        return int(await self._ar().llen(self._base(ns, sid) + "l:" + key))

    async def aread(self, ns: str, sid: str, key: str, start: int, stop: int) -> list[bytes]:
        """Async :meth:`read`."""
        if stop <= start:
            return []
        found = await self._ar().lrange(self._base(ns, sid) + "l:" + key, start, stop - 1)
        return [bytes(x) for x in found]

    async def aread_tail(self, ns: str, sid: str, key: str, count: int) -> list[bytes]:
        """Async :meth:`read_tail`."""
        if count <= 0:
            return []
        found = await self._ar().lrange(self._base(ns, sid) + "l:" + key, -count, -1)
        return [bytes(x) for x in found]

    async def atrim(self, ns: str, sid: str, key: str, keep_last: int) -> int:
        """Async :meth:`trim`."""
        return int(await self._aeval(self._trim, [self._base(ns, sid) + "l:" + key], [keep_last]))

    async def atouch(self, ns: str, sid: str, ttl: float | None) -> None:
        """Async :meth:`touch`."""
        base = self._base(ns, sid)
        ms = "" if ttl is None else str(max(1, int(ttl * 1000)))
        expiry = "inf" if ttl is None else repr(time.time() + ttl)
        await self._aeval(
            self._touch,
            [base + "h", base + "m", base + "k", f"{self._prefix}:idx:{ns}"],
            [ms, sid, base + "l:", expiry],
        )

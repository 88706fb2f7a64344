"""Checkpoint and item storage on plain Redis (no modules). Framework-free: sealed bytes.

A thread's data lives in five keys sharing one hash tag (one cluster slot), so a TTL is five
``PEXPIREAT`` and a thread is deleted with one ``DEL``::

    {p}:{tid}:z   sorted set (all scores 0, ordered by bytes): "ns\\0checkpoint_id"
    {p}:{tid}:c   hash: "ns\\0checkpoint_id" -> sealed checkpoint record
    {p}:{tid}:m   hash: "ns\\0checkpoint_id" -> "parent_id\\0run_id\\0delta"
    {p}:{tid}:w   hash: "ns\\0checkpoint_id\\0task_id\\0idx" -> framed (task_path, sealed write)
    {p}:{tid}:wz  sorted set of the write fields, for a checkpoint's writes by range
    {p}:threads   sorted set: thread id -> expiry in ms (inf: none), for listing every thread
    {p}:run:{id}  set of "thread_id\\0ns\\0checkpoint_id" written by run ``id``
    {p}:items / {p}:items:z   the store's items (hash) and their names in order

Checkpoint ids are time-ordered (uuid6), so the latest checkpoint of a namespace is the last
member of its range: ``ZREVRANGEBYLEX ... LIMIT 0 1`` is O(log n), and one Lua script returns
it with its writes in a single round trip.

Operations are plans: generators yielding batches of commands, each batch sent as one
pipeline by the sync or the async runner.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any, TypeVar

from aipowertools.core.errors import StoreUnavailableError
from aipowertools.sessions._graph_sql import (
    StoredCheckpoint,
    StoredItem,
    StoredWrite,
    check_prefix,
)
from aipowertools.sessions._seal import frame, unframe

_T = TypeVar("_T")
Command = tuple[Any, ...]
Plan = Generator[list[Command], list[Any], _T]

_PUT = """
redis.call('ZADD', KEYS[1], 0, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
if ARGV[4] ~= '' then
  for i = 1, 5 do redis.call('PEXPIREAT', KEYS[i], ARGV[4]) end
end
return 1
"""

_PUT_WRITES = """
local t = redis.call('PTTL', KEYS[3])
local n = tonumber(ARGV[2])
for i = 0, n - 1 do
  local f = ARGV[1] .. '\\0' .. ARGV[3 + i * 3]
  if ARGV[5 + i * 3] == '1' then
    redis.call('HSET', KEYS[1], f, ARGV[4 + i * 3])
  else
    redis.call('HSETNX', KEYS[1], f, ARGV[4 + i * 3])
  end
  redis.call('ZADD', KEYS[2], 0, f)
end
if t > 0 then
  redis.call('PEXPIRE', KEYS[1], t)
  redis.call('PEXPIRE', KEYS[2], t)
end
return 1
"""

# KEYS z c m w wz; ARGV ns, checkpoint id or "" (the latest). Returns false or
# {member, record, meta, field1, value1, ...}.
_GET = """
local member
if ARGV[2] == '' then
  local r = redis.call('ZREVRANGEBYLEX', KEYS[1], '[' .. ARGV[1] .. '\\0\\255',
                       '[' .. ARGV[1] .. '\\0', 'LIMIT', 0, 1)
  if #r == 0 then return false end
  member = r[1]
else
  member = ARGV[1] .. '\\0' .. ARGV[2]
end
local rec = redis.call('HGET', KEYS[2], member)
if not rec then return false end
local out = {member, rec, redis.call('HGET', KEYS[3], member) or ''}
local names = redis.call('ZRANGEBYLEX', KEYS[5], '[' .. member .. '\\0', '(' .. member .. '\\1')
if #names > 0 then
  local vals = redis.call('HMGET', KEYS[4], unpack(names))
  for i, name in ipairs(names) do
    if vals[i] then
      out[#out + 1] = name
      out[#out + 1] = vals[i]
    end
  end
end
return out
"""

# KEYS z c m w wz; ARGV members. Returns per member: member, record, meta, n, n x (field, value).
_GET_MANY = """
local out = {}
for _, member in ipairs(ARGV) do
  local rec = redis.call('HGET', KEYS[2], member)
  if rec then
    out[#out + 1] = member
    out[#out + 1] = rec
    out[#out + 1] = redis.call('HGET', KEYS[3], member) or ''
    local names = redis.call('ZRANGEBYLEX', KEYS[5], '[' .. member .. '\\0',
                             '(' .. member .. '\\1')
    local vals = {}
    if #names > 0 then vals = redis.call('HMGET', KEYS[4], unpack(names)) end
    local pairs_at = #out + 1
    out[pairs_at] = 0
    local n = 0
    for i, name in ipairs(names) do
      if vals[i] then
        out[#out + 1] = name
        out[#out + 1] = vals[i]
        n = n + 1
      end
    end
    out[pairs_at] = n
  end
end
return out
"""

# KEYS z c m w wz; ARGV members to delete with their writes.
_DELETE = """
for _, member in ipairs(ARGV) do
  redis.call('ZREM', KEYS[1], member)
  redis.call('HDEL', KEYS[2], member)
  redis.call('HDEL', KEYS[3], member)
  local lo, hi = '[' .. member .. '\\0', '(' .. member .. '\\1'
  local names = redis.call('ZRANGEBYLEX', KEYS[5], lo, hi)
  if #names > 0 then
    redis.call('HDEL', KEYS[4], unpack(names))
    redis.call('ZREMRANGEBYLEX', KEYS[5], lo, hi)
  end
end
return #ARGV
"""

# KEYS z c m w wz: keep the newest checkpoint of each namespace (members are ordered by
# namespace, then id), forget the kept ones' parents. Returns the deleted members.
_KEEP_LATEST = """
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
local gone = {}
for i, member in ipairs(members) do
  local ns = string.sub(member, 1, string.find(member, '\\0', 1, true))
  local after = members[i + 1]
  if after and string.sub(after, 1, #ns) == ns then
    gone[#gone + 1] = member
  else
    local meta = redis.call('HGET', KEYS[3], member)
    if meta then
      redis.call('HSET', KEYS[3], member, string.sub(meta, string.find(meta, '\\0', 1, true)))
    end
  end
end
for _, member in ipairs(gone) do
  redis.call('ZREM', KEYS[1], member)
  redis.call('HDEL', KEYS[2], member)
  redis.call('HDEL', KEYS[3], member)
  local lo, hi = '[' .. member .. '\\0', '(' .. member .. '\\1'
  local names = redis.call('ZRANGEBYLEX', KEYS[5], lo, hi)
  if #names > 0 then
    redis.call('HDEL', KEYS[4], unpack(names))
    redis.call('ZREMRANGEBYLEX', KEYS[5], lo, hi)
  end
end
return gone
"""

_SCRIPTS = {
    "put": _PUT,
    "put_writes": _PUT_WRITES,
    "get": _GET,
    "get_many": _GET_MANY,
    "delete": _DELETE,
    "keep_latest": _KEEP_LATEST,
}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class GraphRedisPlans:
    """The command batches of every operation, for one key prefix."""

    def __init__(self, prefix: str) -> None:
        import hashlib

        self.p = check_prefix(prefix)
        self.sha = {
            name: hashlib.sha1(src.encode()).hexdigest()  # Redis names scripts by SHA-1
            for name, src in _SCRIPTS.items()
        }

    def _keys(self, tid: str) -> list[str]:
        base = f"{self.p}:{{{tid}}}:"
        return [base + "z", base + "c", base + "m", base + "w", base + "wz"]

    def _script(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Command:
        return ("EVALSHA", self.sha[name], len(keys), *keys, *args)

    # -- checkpoints --------------------------------------------------------------------------

    def put(
        self,
        tid: str,
        ns: str,
        cid: str,
        parent: str | None,
        run_id: str | None,
        delta: bool,
        record: bytes,
        expires_at: float | None,
        now: float,
    ) -> Plan[None]:
        member = f"{ns}\0{cid}"
        meta = f"{parent or ''}\0{run_id or ''}\0{int(delta)}"
        at = "" if expires_at is None else str(int(expires_at * 1000))
        batch: list[Command] = [
            # the indexes first: an acknowledged checkpoint is always listed
            ("ZADD", f"{self.p}:threads", at or "inf", tid)
        ]
        if run_id:
            batch.append(("SADD", f"{self.p}:run:{run_id}", f"{tid}\0{member}"))
            if at:
                batch.append(("PEXPIREAT", f"{self.p}:run:{run_id}", at))
        batch.append(self._script("put", self._keys(tid), [member, record, meta, at]))
        yield batch

    def put_writes(self, tid: str, ns: str, cid: str, writes: Sequence[StoredWrite]) -> Plan[None]:
        if not writes:
            return
        k = self._keys(tid)
        args: list[Any] = [f"{ns}\0{cid}", len(writes)]
        for w in writes:
            args += [
                f"{w.task_id}\0{w.idx}",
                frame([w.task_path.encode(), w.record]),
                "1" if w.idx < 0 else "0",
            ]
        yield [self._script("put_writes", [k[3], k[4], k[0]], args)]

    @staticmethod
    def _parse(tid: str, member: bytes, record: bytes, meta: bytes, pairs: Sequence[Any]) -> Any:
        ns, _, cid = member.decode().partition("\0")
        parent = meta.decode().split("\0", 1)[0] or None
        writes = []
        for i in range(0, len(pairs), 2):
            _, _, task_id, idx = pairs[i].decode().split("\0")
            task_path, rec = unframe(pairs[i + 1], "checkpoint write")
            writes.append(StoredWrite(task_id, int(idx), task_path.decode(), rec))
        return StoredCheckpoint(tid, ns, cid, parent, bytes(record), writes)

    def get(self, tid: str, ns: str, cid: str | None, now: float) -> Plan[StoredCheckpoint | None]:
        (reply,) = yield [self._script("get", self._keys(tid), [ns, cid or ""])]
        if not reply:
            return None
        return self._parse(tid, reply[0], reply[1], reply[2], reply[3:])  # type: ignore[no-any-return]

    def _parse_many(self, tid: str, reply: Sequence[Any]) -> list[StoredCheckpoint]:
        out, i = [], 0
        while i < len(reply):
            n = int(reply[i + 3])
            out.append(
                self._parse(tid, reply[i], reply[i + 1], reply[i + 2], reply[i + 4 : i + 4 + 2 * n])
            )
            i += 4 + 2 * n
        return out

    def list_page(
        self,
        tid: str | None,
        ns: str | None,
        cid: str | None,
        before: str | None,
        after: tuple[str, str, str] | None,
        page: int,
        now: float,
    ) -> Plan[list[StoredCheckpoint]]:
        """One page, newest first; ``after`` is the (checkpoint_id, thread_id, ns) cursor."""
        tids = [tid] if tid is not None else (yield from self.threads())
        if not tids:
            return []
        bounds = [b for b in (before, after[0] if after else None, cid) if b is not None]
        high = min(bounds) if bounds else None
        batch: list[Command] = []
        for t in tids:
            z = self._keys(t)[0]
            if ns is None:
                batch.append(("ZRANGE", z, 0, -1))
            else:  # inclusive bound: the cursor is a tuple, compared below
                top = f"[{ns}\0{high}" if high else f"[{ns}\0\xff"
                batch.append(("ZREVRANGEBYLEX", z, top, f"[{ns}\0", "LIMIT", 0, page + 1))
        replies = yield batch
        found: list[tuple[str, str, str]] = []
        for t, members in zip(tids, replies, strict=True):
            for m in members:
                n, _, c = _text(m).partition("\0")
                if cid is not None and c != cid:
                    continue
                if before is not None and c >= before:
                    continue
                if after is not None and (c, t, n) >= after:
                    continue
                found.append((c, t, n))
        found.sort(reverse=True)
        found = found[:page]
        if not found:
            return []
        wanted: dict[str, list[str]] = {}
        for c, t, n in found:
            wanted.setdefault(t, []).append(f"{n}\0{c}")
        replies = yield [self._script("get_many", self._keys(t), m) for t, m in wanted.items()]
        got = {}
        for t, reply in zip(wanted, replies, strict=True):
            for cp in self._parse_many(t, reply):
                got[(cp.checkpoint_id, t, cp.ns)] = cp
        return [got[k] for k in found if k in got]

    def threads(self) -> Plan[list[str]]:
        (found,) = yield [("ZRANGE", f"{self.p}:threads", 0, -1)]
        return sorted(_text(t) for t in found)

    def delete_threads(self, tids: Sequence[str]) -> Plan[None]:
        if not tids:
            return
        metas = yield [("HVALS", self._keys(t)[2]) for t in tids]
        batch: list[Command] = []
        for tid, values in zip(tids, metas, strict=True):
            for run_id in {v.decode().split("\0")[1] for v in values} - {""}:
                batch.append(("DEL", f"{self.p}:run:{run_id}"))  # re-created by later puts
            batch.append(("DEL", *self._keys(tid)))
            batch.append(("ZREM", f"{self.p}:threads", tid))
        yield batch

    def delete_runs(self, run_ids: Sequence[str]) -> Plan[None]:
        if not run_ids:
            return
        entries = yield [("SMEMBERS", f"{self.p}:run:{r}") for r in run_ids]
        by_thread: dict[str, list[str]] = {}
        for found in entries:
            for entry in found:
                tid, _, member = entry.decode().partition("\0")
                by_thread.setdefault(tid, []).append(member)
        batch = [self._script("delete", self._keys(t), m) for t, m in by_thread.items()]
        yield [*batch, ("DEL", *(f"{self.p}:run:{r}" for r in run_ids))]

    def copy_thread(self, src: str, dst: str, expires_at: float | None, now: float) -> Plan[None]:
        s, d = self._keys(src), self._keys(dst)
        members, records, metas, writes, wnames = yield [
            ("ZRANGE", s[0], 0, -1),
            ("HGETALL", s[1]),
            ("HGETALL", s[2]),
            ("HGETALL", s[3]),
            ("ZRANGE", s[4], 0, -1),
        ]
        if not members:
            return
        at = None if expires_at is None else str(int(expires_at * 1000))
        batch: list[Command] = [("ZADD", f"{self.p}:threads", at or "inf", dst)]
        for member, meta in metas.items():
            run_id = meta.decode().split("\0")[1]
            if run_id:
                batch.append(("SADD", f"{self.p}:run:{run_id}", f"{dst}\0{member.decode()}"))
        batch.append(("ZADD", d[0], *(x for m in members for x in (0, m))))
        batch.append(("HSET", d[1], *(x for kv in records.items() for x in kv)))
        batch.append(("HSET", d[2], *(x for kv in metas.items() for x in kv)))
        if writes:
            batch.append(("HSET", d[3], *(x for kv in writes.items() for x in kv)))
            batch.append(("ZADD", d[4], *(x for m in wnames for x in (0, m))))
        if at:
            batch += [("PEXPIREAT", key, at) for key in d]
        yield batch

    def delta_threads(self, tids: Sequence[str]) -> Plan[list[str]]:
        metas = yield [("HVALS", self._keys(t)[2]) for t in tids]
        return sorted(
            t
            for t, values in zip(tids, metas, strict=True)
            if any(v.endswith(b"\x001") for v in values)
        )

    def keep_latest(self, tids: Sequence[str]) -> Plan[None]:
        yield [self._script("keep_latest", self._keys(t), []) for t in tids]

    def expired_threads(self, now: float) -> Plan[int]:
        """Forget expired threads in the listing index (their keys expire by themselves)."""
        (gone,) = yield [("ZREMRANGEBYSCORE", f"{self.p}:threads", "-inf", int(now * 1000))]
        return int(gone)

    # -- store items --------------------------------------------------------------------------

    def _items(self) -> tuple[str, str]:
        return f"{self.p}:items", f"{self.p}:items:z"

    @staticmethod
    def _item_value(
        record: bytes, created: float, updated: float, ttl: float | None, exp: float | None
    ) -> bytes:
        times = f"{created!r} {updated!r} {ttl!r} {exp!r}".encode()
        return frame([record, times])

    @staticmethod
    def _item(field: bytes | str, value: bytes) -> StoredItem:
        prefix, _, key = _text(field).partition("\x1e")
        record, times = unframe(value, "store item")
        c, u, t, e = times.decode().split()
        return StoredItem(
            prefix,
            key,
            record,
            float(c),
            float(u),
            None if e == "None" else float(e),
            None if t == "None" else float(t),
        )

    def item_get(self, prefix: str, key: str, now: float) -> Plan[StoredItem | None]:
        h, _ = self._items()
        (value,) = yield [("HGET", h, f"{prefix}\x1e{key}")]
        if value is None:
            return None
        item = self._item(f"{prefix}\x1e{key}", value)
        return None if item.expires_at is not None and item.expires_at <= now else item

    def item_put(
        self, prefix: str, key: str, record: bytes, now: float, ttl: float | None
    ) -> Plan[None]:
        h, z = self._items()
        field = f"{prefix}\x1e{key}"
        (old,) = yield [("HGET", h, field)]
        created = now
        if old is not None:
            prev = self._item(field, old)
            if prev.expires_at is None or prev.expires_at > now:
                created = prev.created_at
        exp = None if ttl is None else now + ttl
        yield [
            ("HSET", h, field, self._item_value(record, created, now, ttl, exp)),
            ("ZADD", z, 0, field),
        ]

    def item_delete(self, prefix: str, key: str) -> Plan[None]:
        h, z = self._items()
        field = f"{prefix}\x1e{key}"
        yield [("HDEL", h, field), ("ZREM", z, field)]

    def item_scan(self, prefix: str, now: float) -> Plan[list[StoredItem]]:
        h, z = self._items()
        if prefix:
            low, high = f"[{prefix}\x1e", f"({prefix}\x20"
        else:
            low, high = "-", "+"
        (fields,) = yield [("ZRANGEBYLEX", z, low, high)]
        if not fields:
            return []
        (values,) = yield [("HMGET", h, *fields)]
        items = [self._item(f, v) for f, v in zip(fields, values, strict=True) if v is not None]
        return [i for i in items if i.expires_at is None or i.expires_at > now]

    def item_touch(self, keys: Sequence[tuple[str, str]], now: float) -> Plan[None]:
        h, _ = self._items()
        fields = [f"{p}\x1e{k}" for p, k in keys]
        if not fields:
            return
        (values,) = yield [("HMGET", h, *fields)]
        batch: list[Command] = []
        for field, value in zip(fields, values, strict=True):
            if value is None:
                continue
            i = self._item(field, value)
            if i.ttl is not None and i.expires_at is not None and i.expires_at > now:
                new = self._item_value(i.record, i.created_at, i.updated_at, i.ttl, now + i.ttl)
                batch.append(("HSET", h, field, new))
        if batch:
            yield batch

    def item_prefixes(self, now: float) -> Plan[list[str]]:
        items = yield from self.item_scan("", now)
        return sorted({i.prefix for i in items})

    def item_sweep(self, now: float) -> Plan[int]:
        h, z = self._items()
        (fields,) = yield [("ZRANGE", z, 0, -1)]
        if not fields:
            return 0
        (values,) = yield [("HMGET", h, *fields)]
        dead = [
            f
            for f, v in zip(fields, values, strict=True)
            if v is None
            or (lambda i: i.expires_at is not None and i.expires_at <= now)(self._item(f, v))
        ]
        if dead:
            yield [("HDEL", h, *dead), ("ZREM", z, *dead)]
        return len(dead)


class RedisGraphEngine:
    """Runs :class:`GraphRedisPlans` on the shared clients of ``aipowertools.core.stores``.

    Connection failures, in a pipeline too, raise
    :class:`~aipowertools.core.errors.StoreUnavailableError`; the next call reconnects.
    """

    def __init__(self, url: str, prefix: str, *, client: Any = None) -> None:
        self.url = url
        self.plans = GraphRedisPlans(prefix)
        self.statements = 0  # round trips, for tests
        self._client = client

    def _sync(self) -> Any:
        if self._client is None:
            from aipowertools.core.stores import redis_client

            self._client = redis_client(self.url)
        return self._client

    def _load(self, client: Any) -> None:
        for src in _SCRIPTS.values():
            client.execute_command("SCRIPT", "LOAD", src)

    def run(self, plan: Plan[_T], *, atomic: bool = False) -> _T:
        """Send each batch of ``plan`` as one pipeline."""
        import redis.exceptions

        client = self._sync()
        try:
            try:
                batch = next(plan)
                while True:
                    for attempt in (1, 2):
                        try:
                            self.statements += 1
                            with client.pipeline(transaction=atomic) as pipe:
                                for cmd in batch:
                                    pipe.execute_command(*cmd)
                                replies = pipe.execute()
                            break
                        except redis.exceptions.NoScriptError:
                            if attempt == 2:
                                raise
                            self._load(client)
                    batch = plan.send(replies)
            except StopIteration as done:
                result: _T = done.value
                return result
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            if isinstance(exc, StoreUnavailableError):
                raise
            raise StoreUnavailableError(self.url, str(exc) or type(exc).__name__) from exc

    async def arun(self, plan: Plan[_T], *, atomic: bool = False) -> _T:
        """Async :meth:`run` on the shared ``redis.asyncio`` client of the running loop."""
        import redis.exceptions

        from aipowertools.core.stores import async_redis_client

        client = async_redis_client(self.url) if self._client is None else None
        if client is None:  # an injected sync client (tests): run the plan in a thread
            import asyncio

            return await asyncio.to_thread(self.run, plan, atomic=atomic)
        try:
            try:
                batch = next(plan)
                while True:
                    for attempt in (1, 2):
                        try:
                            self.statements += 1
                            async with client.pipeline(transaction=atomic) as pipe:
                                for cmd in batch:
                                    pipe.execute_command(*cmd)
                                replies = await pipe.execute()
                            break
                        except redis.exceptions.NoScriptError:
                            if attempt == 2:
                                raise
                            for src in _SCRIPTS.values():
                                await client.execute_command("SCRIPT", "LOAD", src)  # type: ignore[no-untyped-call]
                    batch = plan.send(replies)
            except StopIteration as done:
                result: _T = done.value
                return result
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            if isinstance(exc, StoreUnavailableError):
                raise
            raise StoreUnavailableError(self.url, str(exc) or type(exc).__name__) from exc

    def close(self) -> None:
        """The clients are shared (owned by aipowertools.core.stores); nothing to release."""

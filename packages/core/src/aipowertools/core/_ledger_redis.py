"""Redis ledger backend: budgets shared by many processes, records kept alongside.

Every change is one Lua script, which Redis runs atomically, so a reservation's check and hold
cannot interleave with another's. Keys share one hash tag (``aipt:{<namespace>}:...``) so the
scripts also work on a Redis Cluster. Layout:

* ``...:rec:<request id>``: a record as JSON (``SET NX``: the second write is a no-op);
* ``...:idx``: sorted set of request ids by call time, for range queries;
* ``...:buckets``: hash with ``<bucket>|s`` (spent) and ``<bucket>|r`` (reserved), nano-dollars;
* ``...:holds`` / ``...:holdexp``: open reservations and their expiry times.

Range queries read the matching records and total them in Python: fine for reports over
days or months of one application; use PostgreSQL for heavy analytics over the ledger.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from typing import Any

from aipowertools.core._ledger import (
    Aggregate,
    Check,
    GroupBy,
    LedgerRecord,
    Query,
    ReserveResult,
    Threshold,
    WriteResult,
    aggregate_records,
    record_buckets,
    to_nanos,
)

_COMMON = """
local KB, KH, KE = KEYS[1], KEYS[2], KEYS[3]
local function drop(id)
  local h = redis.call('HGET', KH, id)
  if not h then return 0 end
  local d = cjson.decode(h)
  for _, b in ipairs(d.b) do redis.call('HINCRBY', KB, b .. '|r', '-' .. d.a) end
  redis.call('HDEL', KH, id)
  redis.call('ZREM', KE, id)
  return 1
end
local function sweep(now)
  local ids = redis.call('ZRANGEBYSCORE', KE, '-inf', '(' .. now)
  for _, id in ipairs(ids) do drop(id) end
  return #ids
end
local function num(b, suffix)
  return tonumber(redis.call('HGET', KB, b .. suffix) or '0')
end
"""

# ARGV: id, amount, expires_at, now, nb, buckets..., nc, (bucket, limit)...
_RESERVE = (
    _COMMON
    + """
sweep(ARGV[4])
local amount = tonumber(ARGV[2])
local nb = tonumber(ARGV[5])
local i = 6 + nb
local nc = tonumber(ARGV[i])
for j = 1, nc do
  local b = ARGV[i + 2 * j - 1]
  local s, r = num(b, '|s'), num(b, '|r')
  if s + r + amount > tonumber(ARGV[i + 2 * j]) then
    return {0, j, string.format('%.0f', s), string.format('%.0f', r)}
  end
end
local bs = {}
for j = 1, nb do
  bs[j] = ARGV[5 + j]
  redis.call('HINCRBY', KB, ARGV[5 + j] .. '|r', ARGV[2])
end
redis.call('HSET', KH, ARGV[1], cjson.encode({a = ARGV[2], b = bs}))
redis.call('ZADD', KE, ARGV[3], ARGV[1])
return {1}
"""
)

# KEYS: buckets, holds, holdexp, idx, record key
# ARGV: reservation id or '', record json, ts, request id, cost, nb, buckets..., nt, (b, n)...
_WRITE = (
    _COMMON
    + """
if ARGV[1] ~= '' then drop(ARGV[1]) end
if not redis.call('SET', KEYS[5], ARGV[2], 'NX') then return {0} end
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[4])
local nb = tonumber(ARGV[6])
local i = 7 + nb
local nt = tonumber(ARGV[i])
local before = {}
for j = 1, nt do before[j] = num(ARGV[i + 2 * j - 1], '|s') end
for j = 1, nb do redis.call('HINCRBY', KB, ARGV[6 + j] .. '|s', ARGV[5]) end
local out = {1}
for j = 1, nt do
  local t = tonumber(ARGV[i + 2 * j])
  if before[j] < t and t <= num(ARGV[i + 2 * j - 1], '|s') then out[#out + 1] = j end
end
return out
"""
)

_RELEASE = _COMMON + "return drop(ARGV[1])"
_SWEEP = _COMMON + "return sweep(ARGV[1])"
_CHUNK = 500


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisLedger:
    """Ledger, buckets and reservations under the ``aipt:{<namespace>}:`` key prefix."""

    def __init__(self, url: str, namespace: str = "default") -> None:
        from aipowertools.core.stores import redis_client

        self.url = url
        self._p = f"aipt:{{{namespace}}}:"
        self._client = redis_client(url)
        self._keys = [self._p + "buckets", self._p + "holds", self._p + "holdexp"]
        self._idx = self._p + "idx"
        self._reserve = self._client.register_script(_RESERVE)
        self._write = self._client.register_script(_WRITE)
        self._release = self._client.register_script(_RELEASE)
        self._sweep = self._client.register_script(_SWEEP)

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        # The shared client already raises StoreUnavailableError when Redis does not answer.
        return fn(*args, **kwargs)

    def write(
        self,
        record: LedgerRecord,
        *,
        reservation_id: str | None = None,
        thresholds: Sequence[Threshold] = (),
    ) -> WriteResult:
        buckets = record_buckets(record)
        args: list[Any] = [
            reservation_id or "",
            record.to_json(),
            repr(record.ts),
            record.request_id,
            str(to_nanos(record.cost_usd)),
            len(buckets),
            *buckets,
            len(thresholds),
        ]
        for th in thresholds:
            args += [th.bucket, str(th.nanos)]
        keys = [*self._keys, self._idx, self._p + "rec:" + record.request_id]
        out = self._call(self._write, keys=keys, args=args)
        if not int(out[0]):
            return WriteResult(inserted=False)
        return WriteResult(inserted=True, crossed=tuple(thresholds[int(j) - 1] for j in out[1:]))

    def reserve(
        self,
        reservation_id: str,
        amount_nanos: int,
        buckets: Sequence[str],
        checks: Sequence[Check],
        *,
        expires_at: float,
        now: float,
        optimistic: bool = False,
    ) -> ReserveResult:
        args: list[Any] = [
            reservation_id,
            str(amount_nanos),
            repr(expires_at),
            repr(now),
            len(buckets),
            *buckets,
            len(checks),
        ]
        for c in checks:
            args += [c.bucket, str(c.limit_nanos)]
        out = self._call(self._reserve, keys=self._keys, args=args)
        if int(out[0]):
            return ReserveResult(True)
        return ReserveResult(False, checks[int(out[1]) - 1], int(_text(out[2])), int(_text(out[3])))

    def release(self, reservation_id: str) -> bool:
        return bool(self._call(self._release, keys=self._keys, args=[reservation_id]))

    def sweep(self, now: float) -> int:
        return int(self._call(self._sweep, keys=self._keys, args=[repr(now)]))

    def buckets(self, keys: Sequence[str], now: float) -> dict[str, tuple[int, int]]:
        self.sweep(now)
        fields = [f"{k}|{s}" for k in keys for s in ("s", "r")]
        values = self._call(self._client.hmget, self._keys[0], fields) if fields else []
        nums = [int(_text(v)) if v is not None else 0 for v in values]
        return {k: (nums[2 * i], nums[2 * i + 1]) for i, k in enumerate(keys)}

    def aggregate(self, query: Query, by: GroupBy | None) -> list[Aggregate]:
        return aggregate_records(self.records(query), by)

    def records(self, query: Query) -> Iterator[LedgerRecord]:
        end = "+inf" if math.isinf(query.end) else f"({query.end!r}"
        ids = self._call(self._client.zrangebyscore, self._idx, repr(query.start), end)
        for i in range(0, len(ids), _CHUNK):
            keys = [self._p + "rec:" + _text(x) for x in ids[i : i + _CHUNK]]
            for raw in self._call(self._client.mget, keys):
                if raw is None:
                    continue
                record = LedgerRecord.from_dict(json.loads(_text(raw)))
                if query.matches(record):
                    yield record

    def get(self, request_id: str) -> LedgerRecord | None:
        raw = self._call(self._client.get, self._p + "rec:" + request_id)
        return None if raw is None else LedgerRecord.from_dict(json.loads(_text(raw)))

    def close(self) -> None:
        # The client is shared per URL by aipowertools.core.stores; it outlives this backend.
        return None

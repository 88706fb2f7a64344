"""Shared limiter state in Redis: atomic Lua scripts on the Redis server's clock.

Keys of one limiter key share a hash tag (``{key}``) so they live in one cluster slot. Per limit:
a sorted set of reservation ids scored by admission time, for tokens a hash id -> tokens and a
running total. The clock is ``TIME`` on the server, so hosts with skewed clocks agree.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from aipowertools.resilience._adaptive import AdaptiveConfig, Observation, plan_scales
from aipowertools.resilience._backend import Decision, WindowUsage
from aipowertools.resilience._limits import Limit

_PRELUDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
"""

# Expire old entries of limit i; leaves `used` for that limit. Shared by reserve and usage.
_EXPIRE = """
local function expire(z, a, s, unit, period)
  local horizon = now - period
  local old = redis.call('ZRANGEBYSCORE', z, '-inf', horizon)
  if #old > 0 then
    if unit == 'tokens' then
      for i = 1, #old, 500 do
        local chunk = {unpack(old, i, math.min(i + 499, #old))}
        local amounts = redis.call('HMGET', a, unpack(chunk))
        local sum = 0
        for _, v in ipairs(amounts) do sum = sum + (tonumber(v) or 0) end
        if sum ~= 0 then redis.call('INCRBYFLOAT', s, -sum) end
        redis.call('HDEL', a, unpack(chunk))
      end
    end
    redis.call('ZREMRANGEBYSCORE', z, '-inf', horizon)
  end
  if unit == 'tokens' then
    local used = tonumber(redis.call('GET', s)) or 0
    if used < 0.5 and redis.call('ZCARD', z) == 0 then used = 0 end
    return used
  end
  return redis.call('ZCARD', z)
end
local adapt = redis.call('HMGET', KEYS[1], 'paused_until',
  'scale_requests', 'set_requests', 'sticky_requests',
  'scale_tokens', 'set_tokens', 'sticky_tokens')
local function scale(unit, rec)
  local i = 2
  if unit == 'tokens' then i = 5 end
  local s = tonumber(adapt[i])
  if not s then return 1 end
  if adapt[i + 2] == '1' or s >= 1 then return math.min(s, 1) end
  local set = tonumber(adapt[i + 1]) or now
  return math.min(1, s + rec * math.max(0, now - set))
end
"""

# KEYS: adapt, then (z, a, s) per limit. ARGV: rid, tokens, recovery, n, (unit, amount, period)*n
RESERVE = (
    _PRELUDE
    + _EXPIRE
    + """
local rid, tokens, rec, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local wait = 0
local paused = tonumber(adapt[1]) or 0
if paused > now then wait = paused - now end
for i = 1, n do
  local unit, amount = ARGV[4 + (i - 1) * 3 + 1], tonumber(ARGV[4 + (i - 1) * 3 + 2])
  local period = tonumber(ARGV[4 + (i - 1) * 3 + 3])
  local z, a, s = KEYS[1 + (i - 1) * 3 + 1], KEYS[1 + (i - 1) * 3 + 2], KEYS[1 + (i - 1) * 3 + 3]
  local used = expire(z, a, s, unit, period)
  local cap = amount * scale(unit, rec)
  local cost = 1
  if unit == 'tokens' then cost = tokens end
  if used + cost > cap and used > 0 then
    local need = used + cost - cap
    local w = nil
    if unit == 'requests' then
      local idx = math.min(math.ceil(need - 1e-9), used) - 1
      local e = redis.call('ZRANGE', z, idx, idx, 'WITHSCORES')
      w = tonumber(e[2]) + period - now
    else
      local freed, start = 0, 0
      while w == nil do
        local e = redis.call('ZRANGE', z, start, start + 199, 'WITHSCORES')
        if #e == 0 then break end
        local ids = {}
        for j = 1, #e, 2 do ids[#ids + 1] = e[j] end
        local amounts = redis.call('HMGET', a, unpack(ids))
        for j = 1, #ids do
          freed = freed + (tonumber(amounts[j]) or 0)
          if freed >= need - 1e-9 then w = tonumber(e[2 * j]) + period - now break end
        end
        if w == nil and #e < 400 then w = tonumber(e[#e]) + period - now end
        start = start + 200
      end
      if w == nil then w = period end
    end
    if w > wait then wait = w end
  end
end
if wait > 0 then return {0, tostring(wait)} end
if rid == '' then return {1, '0'} end -- a dry run (peek) records nothing
for i = 1, n do
  local unit, period = ARGV[4 + (i - 1) * 3 + 1], tonumber(ARGV[4 + (i - 1) * 3 + 3])
  local z, a, s = KEYS[1 + (i - 1) * 3 + 1], KEYS[1 + (i - 1) * 3 + 2], KEYS[1 + (i - 1) * 3 + 3]
  local ttl = math.ceil(period * 1000) + 1000
  redis.call('ZADD', z, now, rid)
  redis.call('PEXPIRE', z, ttl)
  if unit == 'tokens' then
    redis.call('HSET', a, rid, tokens)
    redis.call('INCRBYFLOAT', s, tokens)
    redis.call('PEXPIRE', a, ttl)
    redis.call('PEXPIRE', s, ttl)
  end
end
return {1, '0'}
"""
)

# KEYS: (z, a, s) per limit. ARGV: rid, delta, restamp, then (unit, period) per limit.
ADJUST = (
    _PRELUDE
    + """
local rid, delta, restamp = ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1'
for i = 1, #KEYS, 3 do
  local j = 4 + (i - 1) / 3 * 2
  local unit, period = ARGV[j], tonumber(ARGV[j + 1])
  if redis.call('ZSCORE', KEYS[i], rid) then
    local ttl = math.ceil(period * 1000) + 1000
    if restamp then
      redis.call('ZADD', KEYS[i], 'XX', now, rid)
      redis.call('PEXPIRE', KEYS[i], ttl)
    end
    if unit == 'tokens' then
      local cur = tonumber(redis.call('HGET', KEYS[i + 1], rid))
      if cur and delta ~= 0 then
        local new = math.max(0, cur + delta)
        redis.call('HSET', KEYS[i + 1], rid, new)
        redis.call('INCRBYFLOAT', KEYS[i + 2], new - cur)
      end
      if restamp then
        redis.call('PEXPIRE', KEYS[i + 1], ttl)
        redis.call('PEXPIRE', KEYS[i + 2], ttl)
      end
    end
  end
end
return 1
"""
)

# KEYS: (z, a, s) per limit. ARGV: rid.
RELEASE = """
local rid = ARGV[1]
for i = 1, #KEYS, 3 do
  redis.call('ZREM', KEYS[i], rid)
  local cur = tonumber(redis.call('HGET', KEYS[i + 1], rid))
  if cur then
    redis.call('HDEL', KEYS[i + 1], rid)
    redis.call('INCRBYFLOAT', KEYS[i + 2], -cur)
  end
end
return 1
"""

# KEYS: adapt. ARGV: pause, recovery, decrease, min_scale, ttl, then (unit, scale|'', sticky)*.
OBSERVE = (
    _PRELUDE
    + """
local pause, rec, dec, mins = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]),
  tonumber(ARGV[4])
local ttl = tonumber(ARGV[5])
local adapt = redis.call('HMGET', KEYS[1], 'paused_until',
  'scale_requests', 'set_requests', 'sticky_requests',
  'scale_tokens', 'set_tokens', 'sticky_tokens')
if pause > 0 then
  local old = tonumber(adapt[1]) or 0
  if now + pause > old then redis.call('HSET', KEYS[1], 'paused_until', now + pause) end
end
for i = 6, #ARGV, 3 do
  local unit, value, sticky = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local new = tonumber(value)
  if not new then
    local j = 2
    if unit == 'tokens' then j = 5 end
    local cur = tonumber(adapt[j]) or 1
    if adapt[j + 2] ~= '1' and cur < 1 then
      cur = math.min(1, cur + rec * math.max(0, now - (tonumber(adapt[j + 1]) or now)))
    end
    new = math.max(mins, cur * dec)
  end
  redis.call('HSET', KEYS[1], 'scale_' .. unit, new, 'set_' .. unit, now, 'sticky_' .. unit, sticky)
end
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
"""
)

# KEYS: adapt, (z, a, s) per limit. ARGV: recovery, n, (unit, amount, period)*n.
USAGE = (
    _PRELUDE
    + _EXPIRE
    + """
local rec, n = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {}
local paused = (tonumber(adapt[1]) or 0) - now
if paused < 0 then paused = 0 end
out[1] = tostring(paused)
for i = 1, n do
  local unit, amount = ARGV[2 + (i - 1) * 3 + 1], tonumber(ARGV[2 + (i - 1) * 3 + 2])
  local period = tonumber(ARGV[2 + (i - 1) * 3 + 3])
  local z, a, s = KEYS[1 + (i - 1) * 3 + 1], KEYS[1 + (i - 1) * 3 + 2], KEYS[1 + (i - 1) * 3 + 3]
  out[#out + 1] = tostring(expire(z, a, s, unit, period))
  out[#out + 1] = tostring(amount * scale(unit, rec))
end
return out
"""
)


class RedisBackend:
    """Limiter state shared through Redis (``redis://`` / ``rediss://``)."""

    def __init__(self, url: str, adaptive: AdaptiveConfig, prefix: str) -> None:
        from aipowertools.core.stores import async_redis_client, redis_client

        self.url = url
        self.prefix = prefix
        self.adaptive_config = adaptive
        self._sync = redis_client(url)
        self._async_factory = async_redis_client
        self._scripts: dict[str, Any] = {
            name: self._sync.register_script(src)
            for name, src in (
                ("reserve", RESERVE),
                ("adjust", ADJUST),
                ("release", RELEASE),
                ("observe", OBSERVE),
                ("usage", USAGE),
            )
        }
        self._ascripts: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Any]] = (
            weakref.WeakKeyDictionary()
        )

    def _aclient_scripts(self) -> dict[str, Any]:
        # redis.asyncio clients are bound to the loop they first run on: one per loop.
        loop = asyncio.get_running_loop()
        scripts = self._ascripts.get(loop)
        if scripts is None:
            client = self._async_factory(self.url)
            scripts = {
                name: client.register_script(src)
                for name, src in (
                    ("reserve", RESERVE),
                    ("adjust", ADJUST),
                    ("release", RELEASE),
                    ("observe", OBSERVE),
                )
            }
            self._ascripts[loop] = scripts
        return scripts

    def _base(self, key: str) -> str:
        return f"{self.prefix}:{{{key}}}"

    def _limit_keys(self, key: str, limit: Limit) -> list[str]:
        base = f"{self._base(key)}:{limit.name}"
        return [f"{base}:z", f"{base}:a", f"{base}:s"]

    def _reserve_args(
        self, key: str, limits: tuple[Limit, ...], tokens: int
    ) -> tuple[list[str], list[Any]]:
        import uuid

        keys = [f"{self._base(key)}:adapt"]
        args: list[Any] = [
            uuid.uuid4().hex,
            tokens,
            self.adaptive_config.recovery_per_second,
            len(limits),
        ]
        for limit in limits:
            keys += self._limit_keys(key, limit)
            args += [limit.unit, limit.amount, limit.period]
        return keys, args

    @staticmethod
    def _decision(reply: list[Any], rid: str) -> Decision:
        if int(reply[0]) == 1:
            return Decision(True, 0.0, rid)
        return Decision(False, max(0.0, float(reply[1])))

    def reserve(self, key: str, limits: tuple[Limit, ...], tokens: int) -> Decision:
        keys, args = self._reserve_args(key, limits, tokens)
        return self._decision(self._scripts["reserve"](keys=keys, args=args), args[0])

    async def areserve(self, key: str, limits: tuple[Limit, ...], tokens: int) -> Decision:
        keys, args = self._reserve_args(key, limits, tokens)
        reply = await self._aclient_scripts()["reserve"](keys=keys, args=args)
        return self._decision(reply, args[0])

    def peek(self, key: str, limits: tuple[Limit, ...], tokens: int) -> float:
        keys, args = self._reserve_args(key, limits, tokens)
        args[0] = ""  # an empty id: the script answers without recording anything
        return self._decision(self._scripts["reserve"](keys=keys, args=args), "").wait

    def _adjust_call(
        self, key: str, limits: tuple[Limit, ...], rid: str, delta: int, restamp: bool
    ) -> tuple[list[str], list[Any]]:
        keys: list[str] = []
        args: list[Any] = [rid, delta, "1" if restamp else "0"]
        for limit in limits:
            keys += self._limit_keys(key, limit)
            args += [limit.unit, limit.period]
        return keys, args

    def adjust(
        self, key: str, limits: tuple[Limit, ...], rid: str, delta: int, restamp: bool
    ) -> None:
        keys, args = self._adjust_call(key, limits, rid, delta, restamp)
        if keys:
            self._scripts["adjust"](keys=keys, args=args)

    async def aadjust(
        self, key: str, limits: tuple[Limit, ...], rid: str, delta: int, restamp: bool
    ) -> None:
        keys, args = self._adjust_call(key, limits, rid, delta, restamp)
        if keys:
            await self._aclient_scripts()["adjust"](keys=keys, args=args)

    def _release_keys(self, key: str, limits: tuple[Limit, ...]) -> list[str]:
        return [k for limit in limits for k in self._limit_keys(key, limit)]

    def release(self, key: str, limits: tuple[Limit, ...], rid: str) -> None:
        keys = self._release_keys(key, limits)
        if keys:
            self._scripts["release"](keys=keys, args=[rid])

    async def arelease(self, key: str, limits: tuple[Limit, ...], rid: str) -> None:
        keys = self._release_keys(key, limits)
        if keys:
            await self._aclient_scripts()["release"](keys=keys, args=[rid])

    def _observe_args(
        self, key: str, limits: tuple[Limit, ...], obs: Observation
    ) -> tuple[list[str], list[Any]]:
        cfg = self.adaptive_config
        pause = max([obs.retry_after or 0.0, *obs.resets.values()])
        ttl_ms = int(max([3600.0, pause, *(lim.period for lim in limits)]) * 1000)
        args: list[Any] = [pause, cfg.recovery_per_second, cfg.decrease, cfg.min_scale, ttl_ms]
        for unit, scale, sticky in plan_scales(obs, limits, cfg):
            args += [unit, "" if scale is None else scale, "1" if sticky else "0"]
        return [f"{self._base(key)}:adapt"], args

    def observe(self, key: str, limits: tuple[Limit, ...], obs: Observation) -> None:
        if self.adaptive_config.enabled:
            keys, args = self._observe_args(key, limits, obs)
            self._scripts["observe"](keys=keys, args=args)

    async def aobserve(self, key: str, limits: tuple[Limit, ...], obs: Observation) -> None:
        if self.adaptive_config.enabled:
            keys, args = self._observe_args(key, limits, obs)
            await self._aclient_scripts()["observe"](keys=keys, args=args)

    def _usage(self, key: str, limits: tuple[Limit, ...]) -> tuple[float, list[WindowUsage]]:
        keys = [f"{self._base(key)}:adapt"]
        args: list[Any] = [self.adaptive_config.recovery_per_second, len(limits)]
        for limit in limits:
            keys += self._limit_keys(key, limit)
            args += [limit.unit, limit.amount, limit.period]
        reply = self._scripts["usage"](keys=keys, args=args)
        out = [
            WindowUsage(limit, float(reply[1 + 2 * i]), float(reply[2 + 2 * i]))
            for i, limit in enumerate(limits)
        ]
        return float(reply[0]), out

    def usage(self, key: str, limits: tuple[Limit, ...]) -> list[WindowUsage]:
        return self._usage(key, limits)[1]

    def paused_for(self, key: str) -> float:
        return self._usage(key, ())[0]

    def close(self) -> None:
        """Clients are shared per URL by ``aipowertools.core.stores``; nothing to close."""

"""Circuit breaker state: in-process or in Redis (one Lua script per transition point).

Both stores implement the same small state machine:

* ``before()``: closed lets the call through; open refuses until ``recovery_timeout`` has
  passed, then turns half-open; half-open lets at most ``half_open_max_calls`` probes through.
* ``after(outcome, probe)``: in closed, failures in the sliding window (a count, or a rate over
  ``minimum_requests``) open the circuit; in half-open a failed probe re-opens it and
  ``success_threshold`` successful probes close it. ``"ignored"`` outcomes (errors that do not
  count, e.g. the caller's bad request) only give the probe slot back.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Outcome = Literal["success", "failure", "ignored"]


@dataclass(frozen=True)
class BreakerConfig:
    """Thresholds of one breaker (see ``CircuitBreaker`` for their meaning)."""

    failure_threshold: int
    recovery_timeout: float
    window: float
    failure_rate_threshold: float | None
    minimum_requests: int
    half_open_max_calls: int
    success_threshold: int


@dataclass(frozen=True)
class Admission:
    """Answer of ``before()``: allowed (and whether as a probe) or refused until ``retry_at``."""

    allowed: bool
    probe: bool
    retry_at: float
    transition: tuple[str, str] | None


@dataclass(frozen=True)
class Snapshot:
    """State of a breaker at one instant."""

    state: str
    failures: int
    calls: int
    opened_at: float | None
    probes_in_flight: int


class BreakerStore(Protocol):
    """Where the state lives."""

    def before(self) -> Admission: ...
    def after(self, outcome: Outcome, probe: bool) -> tuple[str, str] | None: ...
    def snapshot(self) -> Snapshot: ...
    def reset(self) -> tuple[str, str] | None: ...
    def force(self, state: str) -> tuple[str, str] | None: ...


class MemoryBreakerStore:
    """State in this process; thread-safe."""

    def __init__(self, config: BreakerConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self._lock = threading.Lock()
        self.state = "closed"
        self.opened_at: float | None = None
        self.probes = 0
        self.successes = 0
        self.calls: deque[tuple[float, bool]] = deque()
        self.failures = 0

    def _trim(self, now: float) -> None:
        horizon = now - self.config.window
        while self.calls and self.calls[0][0] <= horizon:
            _, failed = self.calls.popleft()
            self.failures -= failed

    def _open(self, now: float) -> tuple[str, str]:
        old = self.state
        self.state, self.opened_at, self.probes, self.successes = "open", now, 0, 0
        self.calls.clear()
        self.failures = 0
        return (old, "open")

    def before(self) -> Admission:
        cfg = self.config
        with self._lock:
            now = self.clock()
            transition = None
            if self.state == "open":
                assert self.opened_at is not None
                if now - self.opened_at < cfg.recovery_timeout:
                    return Admission(False, False, self.opened_at + cfg.recovery_timeout, None)
                self.state, self.probes, self.successes = "half_open", 0, 0
                transition = ("open", "half_open")
            if self.state == "half_open":
                if self.probes >= cfg.half_open_max_calls:
                    return Admission(False, False, now + min(1.0, cfg.recovery_timeout), transition)
                self.probes += 1
                return Admission(True, True, now, transition)
            return Admission(True, False, now, transition)

    def after(self, outcome: Outcome, probe: bool) -> tuple[str, str] | None:
        cfg = self.config
        with self._lock:
            now = self.clock()
            if probe and self.state == "half_open":
                self.probes = max(0, self.probes - 1)
                if outcome == "failure":
                    return self._open(now)
                if outcome == "success":
                    self.successes += 1
                    if self.successes >= cfg.success_threshold:
                        self.state, self.opened_at, self.probes, self.successes = (
                            "closed",
                            None,
                            0,
                            0,
                        )
                        return ("half_open", "closed")
                return None
            if self.state != "closed" or outcome == "ignored":
                return None
            failed = outcome == "failure"
            self.calls.append((now, failed))
            self.failures += failed
            self._trim(now)
            if failed and _should_open(cfg, self.failures, len(self.calls)):
                return self._open(now)
            return None

    def snapshot(self) -> Snapshot:
        with self._lock:
            self._trim(self.clock())
            return Snapshot(self.state, self.failures, len(self.calls), self.opened_at, self.probes)

    def reset(self) -> tuple[str, str] | None:
        with self._lock:
            old = self.state
            self.state, self.opened_at, self.probes, self.successes = "closed", None, 0, 0
            self.calls.clear()
            self.failures = 0
            return None if old == "closed" else (old, "closed")

    def force(self, state: str) -> tuple[str, str] | None:
        """Put the circuit in ``state`` now (``open`` restarts the recovery timeout)."""
        if state == "closed":
            return self.reset()
        with self._lock:
            old = self.state
            if state == "open":
                opened = self._open(self.clock())
                return None if old == "open" else opened
            self.state, self.probes, self.successes = "half_open", 0, 0
            return None if old == "half_open" else (old, "half_open")


def _should_open(cfg: BreakerConfig, failures: int, calls: int) -> bool:
    if failures >= cfg.failure_threshold:
        return True
    rate = cfg.failure_rate_threshold
    return rate is not None and calls >= cfg.minimum_requests and failures / calls >= rate


_BEFORE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local recovery, maxp = tonumber(ARGV[1]), tonumber(ARGV[2])
local st = redis.call('HMGET', KEYS[1], 'state', 'opened_at', 'probes')
local state = st[1] or 'closed'
local transition = ''
if state == 'open' then
  local opened = tonumber(st[2]) or now
  if now - opened < recovery then return {0, 0, tostring(opened + recovery), ''} end
  state = 'half_open'
  redis.call('HSET', KEYS[1], 'state', 'half_open', 'probes', 0, 'successes', 0)
  st[3] = '0'
  transition = 'open>half_open'
end
if state == 'half_open' then
  local probes = tonumber(st[3]) or 0
  if probes >= maxp then
    return {0, 0, tostring(now + math.min(1, recovery)), transition}
  end
  redis.call('HINCRBY', KEYS[1], 'probes', 1)
  return {1, 1, tostring(now), transition}
end
return {1, 0, tostring(now), transition}
"""

# KEYS: state, calls, fails. ARGV: outcome, probe, threshold, window, rate|'', min, success, id
_AFTER = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local outcome, probe = ARGV[1], ARGV[2] == '1'
local threshold, window = tonumber(ARGV[3]), tonumber(ARGV[4])
local rate, minreq, succ = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
local function open(old)
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', tostring(now), 'probes', 0,
    'successes', 0)
  redis.call('DEL', KEYS[2], KEYS[3])
  return old .. '>open'
end
if probe and state == 'half_open' then
  local p = redis.call('HINCRBY', KEYS[1], 'probes', -1)
  if p < 0 then redis.call('HSET', KEYS[1], 'probes', 0) end
  if outcome == 'failure' then return open('half_open') end
  if outcome == 'success' then
    local s = redis.call('HINCRBY', KEYS[1], 'successes', 1)
    if s >= succ then
      redis.call('HSET', KEYS[1], 'state', 'closed', 'probes', 0, 'successes', 0)
      redis.call('HDEL', KEYS[1], 'opened_at')
      return 'half_open>closed'
    end
  end
  return ''
end
if state ~= 'closed' or outcome == 'ignored' then return '' end
local ttl = math.ceil(window * 1000) + 1000
redis.call('ZADD', KEYS[2], now, ARGV[8])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
redis.call('PEXPIRE', KEYS[2], ttl)
if outcome == 'failure' then
  redis.call('ZADD', KEYS[3], now, ARGV[8])
  redis.call('PEXPIRE', KEYS[3], ttl)
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - window)
if outcome ~= 'failure' then return '' end
local failures, calls = redis.call('ZCARD', KEYS[3]), redis.call('ZCARD', KEYS[2])
if failures >= threshold or (rate and calls >= minreq and failures / calls >= rate) then
  return open('closed')
end
return ''
"""

_SNAPSHOT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - window)
local st = redis.call('HMGET', KEYS[1], 'state', 'opened_at', 'probes')
return {st[1] or 'closed', st[2] or '', st[3] or '0', redis.call('ZCARD', KEYS[3]),
  redis.call('ZCARD', KEYS[2])}
"""

_RESET = """
local old = redis.call('HGET', KEYS[1], 'state') or 'closed'
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
if old == 'closed' then return '' end
return old .. '>closed'
"""


# KEYS: state, calls, fails. ARGV: the state to force ('open' or 'half_open').
_FORCE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local old = redis.call('HGET', KEYS[1], 'state') or 'closed'
if ARGV[1] == 'open' then
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', tostring(now), 'probes', 0,
    'successes', 0)
  redis.call('DEL', KEYS[2], KEYS[3])
  if old == 'open' then return '' end
  return old .. '>open'
end
redis.call('HSET', KEYS[1], 'state', 'half_open', 'probes', 0, 'successes', 0)
if old == 'half_open' then return '' end
return old .. '>half_open'
"""


def _transition(text: Any) -> tuple[str, str] | None:
    if isinstance(text, bytes):
        text = text.decode()
    if not text:
        return None
    old, new = str(text).split(">")
    return (old, new)


class RedisBreakerStore:
    """State in Redis so every process sees (and changes) one circuit; server clock."""

    def __init__(self, url: str, name: str, config: BreakerConfig, prefix: str) -> None:
        from aipowertools.core.stores import redis_client

        self.config = config
        client = redis_client(url)
        base = f"{prefix}:{{{name}}}"
        self.keys = [f"{base}:state", f"{base}:calls", f"{base}:fails"]
        self._before = client.register_script(_BEFORE)
        self._after = client.register_script(_AFTER)
        self._snapshot = client.register_script(_SNAPSHOT)
        self._reset = client.register_script(_RESET)
        self._force = client.register_script(_FORCE)

    def before(self) -> Admission:
        cfg = self.config
        reply = self._before(
            keys=self.keys[:1], args=[cfg.recovery_timeout, cfg.half_open_max_calls]
        )
        return Admission(
            bool(int(reply[0])), bool(int(reply[1])), float(reply[2]), _transition(reply[3])
        )

    def after(self, outcome: Outcome, probe: bool) -> tuple[str, str] | None:
        cfg = self.config
        rate = "" if cfg.failure_rate_threshold is None else cfg.failure_rate_threshold
        args = [
            outcome,
            "1" if probe else "0",
            cfg.failure_threshold,
            cfg.window,
            rate,
            cfg.minimum_requests,
            cfg.success_threshold,
            uuid.uuid4().hex,
        ]
        return _transition(self._after(keys=self.keys, args=args))

    def snapshot(self) -> Snapshot:
        reply = self._snapshot(keys=self.keys, args=[self.config.window])
        state, opened, probes = (v.decode() if isinstance(v, bytes) else str(v) for v in reply[:3])
        return Snapshot(
            state, int(reply[3]), int(reply[4]), float(opened) if opened else None, int(probes)
        )

    def reset(self) -> tuple[str, str] | None:
        return _transition(self._reset(keys=self.keys))

    def force(self, state: str) -> tuple[str, str] | None:
        if state == "closed":
            return self.reset()
        return _transition(self._force(keys=self.keys, args=[state]))

"""Deployment health shared between routers in several processes, through Redis.

Each router keeps its own :class:`~aipowertools.router._health.DeploymentState` per deployment
and decides from it alone (no store access while deciding). This module adds two things:

* **publish**: when a deployment's circuit opens, or a 429's Retry-After parks it, in this
  process, ``SET {prefix}:open:{name}`` (or ``{prefix}:parked:{name}``) to
  ``{"until": <epoch s>, "reason": ..., "by": <router id>}`` with ``PX`` = the time left, in
  the background (the call that failed does not wait for Redis);
* **refresh**: at most every ``refresh_s``, one ``MGET`` of every deployment's two keys; an
  entry from another router whose ``until`` is later than the local state's makes the
  deployment unavailable here until then, its reason suffixed "(reported by another router)".

Expired keys vanish by ``PX``; each process then lets its own half-open trial call through, as
with purely local state. A Redis failure never fails a call: it is logged as a warning on the
``aipowertools.router`` logger and the store is left alone for a growing back-off (1 s doubling
to 30 s) while routing carries on with local state.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any

from aipowertools.core.stores import StoreURL, async_redis_client
from aipowertools.router._health import DeploymentState

logger = logging.getLogger("aipowertools.router")

REMOTE_SUFFIX = " (reported by another router)"
DEFAULT_PREFIX = "aipowertools:router:health"
_BACKOFF_FIRST_S = 1.0
_BACKOFF_MAX_S = 30.0


class SharedHealth:
    """Publishes circuit openings / parkings to Redis and applies other routers' ones.

    Args:
        url: a parsed ``redis://`` store URL.
        refresh_s: shortest interval between two reads of the store.
        prefix: key prefix; routers sharing it share health.
        timeout_s: longest wait for one Redis command before giving up on it (the call
            being routed then goes on with local state).
    """

    def __init__(
        self,
        url: StoreURL,
        *,
        refresh_s: float = 0.5,
        prefix: str = DEFAULT_PREFIX,
        timeout_s: float = 0.25,
    ) -> None:
        self.url = url
        self.refresh_s = refresh_s
        self.prefix = prefix
        self.timeout_s = timeout_s
        #: Monotonic time before which :meth:`refresh` is a no-op (read it to skip the await).
        self.next_refresh = 0.0
        self._id = uuid.uuid4().hex
        self._backoff = 0.0
        self._down_until = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self._keys: tuple[tuple[str, ...], list[str]] = ((), [])

    # ------------------------------------------------------------------ publishing
    def report(
        self, name: str, state: DeploymentState, open_before: float, parked_before: float
    ) -> None:
        """Publish what changed in ``state`` since ``open_before`` / ``parked_before`` were read.

        Call it right after recording an outcome; it returns at once (a no-op when the circuit
        did not open and the deployment was not parked further), the write runs in the
        background.
        """
        opened = state.open_until > open_before
        parked = state.parked_until > parked_before
        if not (opened or parked):
            return
        now = time.monotonic()
        if now < self._down_until:
            return
        entries: list[tuple[str, float, str]] = []
        if opened:
            entries.append((f"{self.prefix}:open:{name}", state.open_until, state.open_reason))
        if parked:
            entries.append((f"{self.prefix}:parked:{name}", state.parked_until, "Retry-After"))
        wall = time.time()
        writes = []
        for key, until, reason in entries:
            left = until - now
            if left <= 0:
                continue
            value = json.dumps({"until": wall + left, "reason": reason, "by": self._id})
            writes.append((key, value, max(1, int(left * 1000))))
        if writes:
            task = asyncio.ensure_future(self._write(name, writes))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _write(self, name: str, writes: list[tuple[str, str, int]]) -> None:
        try:
            client = async_redis_client(self.url)
            if len(writes) == 1:
                key, value, px = writes[0]
                await asyncio.wait_for(client.set(key, value, px=px), self.timeout_s)
            else:
                pipe = client.pipeline(transaction=False)
                for key, value, px in writes:
                    pipe.set(key, value, px=px)
                await asyncio.wait_for(pipe.execute(), self.timeout_s)
        except Exception as exc:  # never fail a call because the store is down
            self._failed("publish", exc, deployment=name)
            return
        self._backoff = 0.0

    async def drain(self) -> None:
        """Wait for the publications still under way (tests, orderly shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # ------------------------------------------------------------------ refreshing
    async def refresh(self, states: Mapping[str, DeploymentState]) -> bool:
        """Read every deployment's entries (one ``MGET``) and apply other routers' ones.

        A no-op returning False until ``refresh_s`` has passed since the last read (or the
        back-off after a failure). Returns True when a local state changed.
        """
        now = time.monotonic()
        if now < self.next_refresh or not states:
            return False
        self.next_refresh = now + self.refresh_s
        names, keys = self._keys
        if names != tuple(states):
            names = tuple(states)
            keys = [f"{self.prefix}:{kind}:{n}" for n in names for kind in ("open", "parked")]
            self._keys = (names, keys)
        try:
            client = async_redis_client(self.url)
            values = await asyncio.wait_for(client.mget(keys), self.timeout_s)
        except Exception as exc:  # never fail a call because the store is down
            self._failed("refresh", exc)
            return False
        self._backoff = 0.0
        mono, wall = time.monotonic(), time.time()
        changed = False
        for i, name in enumerate(names):
            raw_open, raw_parked = values[2 * i], values[2 * i + 1]
            if raw_open is None and raw_parked is None:
                continue
            state = states.get(name)
            if state is None:
                continue
            open_entry = self._entry(raw_open, name, wall, mono)
            parked_entry = self._entry(raw_parked, name, wall, mono)
            if open_entry is None and parked_entry is None:
                continue
            changed |= state.apply_remote(
                open_until=open_entry[0] if open_entry else 0.0,
                open_reason=open_entry[1] + REMOTE_SUFFIX if open_entry else "",
                parked_until=parked_entry[0] if parked_entry else 0.0,
                parked_reason=parked_entry[1] + REMOTE_SUFFIX if parked_entry else "",
            )
        return changed

    def _entry(self, raw: Any, name: str, wall: float, mono: float) -> tuple[float, str] | None:
        """``(until on the monotonic clock, reason)`` of another router's live entry.

        None for no entry, one of ours, one already over (clocks of two machines differ a
        little) or a malformed one.
        """
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            if data.get("by") == self._id:
                return None
            until = float(data["until"]) - wall + mono
            if until <= mono:
                return None
            return until, str(data.get("reason") or "unknown reason")
        except (ValueError, TypeError, KeyError, AttributeError):
            logger.debug(
                "ignored a malformed shared health entry for %s: %r", name, raw,
                extra={"event": "router.health_store_malformed", "deployment": name},
            )  # fmt: skip
            return None

    # ------------------------------------------------------------------ failures
    def _failed(self, operation: str, exc: Exception, deployment: str | None = None) -> None:
        self._backoff = min(max(self._backoff * 2, _BACKOFF_FIRST_S), _BACKOFF_MAX_S)
        now = time.monotonic()
        self._down_until = now + self._backoff
        self.next_refresh = max(self.next_refresh, self._down_until)
        error = str(exc) or type(exc).__name__
        logger.warning(
            "shared health store %s failed (%s: %s); routing on this process's health state, "
            "next try in %.0f s",
            self.url.masked(), operation, error, self._backoff,
            extra={"event": "router.health_store_error", "store": self.url.masked(),
                   "operation": operation, "error": error, "deployment": deployment,
                   "retry_in_s": self._backoff},
        )  # fmt: skip

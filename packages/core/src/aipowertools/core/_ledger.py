"""Ledger records, budget buckets and the storage protocol every ledger backend implements.

A *backend* keeps three things in one store so that they change together, atomically:

* ledger records, one per provider call, keyed by request id (a second write is a no-op);
* budget *buckets*: for every scope a call belongs to (``global``, ``user:<id>``,
  ``task:<name>``, ``tag:<tag>``) and every period window (the UTC day, the UTC month, all
  time), the settled spend and the amount held by open reservations, in integer nano-dollars
  so that comparisons against a limit are exact;
* open reservations, each with the buckets it holds and an expiry after which any process
  may release it (so a crashed process cannot hold budget forever).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

from aipowertools.core._errors import ConfigurationError

Period = Literal["day", "month", "total"]
PERIODS: tuple[Period, ...] = ("day", "month", "total")
GroupBy = Literal["provider", "model", "task", "user", "session", "day", "status"]
GROUP_BY: tuple[GroupBy, ...] = ("provider", "model", "task", "user", "session", "day", "status")
NANOS = 1_000_000_000


def to_nanos(usd: float) -> int:
    """USD as integer nano-dollars (rounded up, so a reservation never holds less than asked)."""
    return math.ceil(round(usd * NANOS, 3))


def from_nanos(nanos: int) -> float:
    """Integer nano-dollars as USD."""
    return nanos / NANOS


@dataclass(frozen=True)
class LedgerRecord:
    """One provider call as the ledger keeps it."""

    request_id: str
    ts: float
    model: str
    provider: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float = 0.0
    cost_exact: bool = True
    latency_ms: float | None = None
    status: str = "ok"
    task: str | None = None
    user: str | None = None
    session: str | None = None
    tags: tuple[str, ...] = ()
    trace_id: str | None = None
    saved_usd: float = 0.0  # what a cache hit (a $0 call) saved at the model's prices

    @property
    def day(self) -> str:
        """The UTC day of the call, ``YYYY-MM-DD``."""
        return utc_day(self.ts)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (tags as a list, plus the ISO time and UTC day)."""
        data = asdict(self)
        data["tags"] = list(self.tags)
        data["time"] = dt.datetime.fromtimestamp(self.ts, dt.timezone.utc).isoformat()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LedgerRecord:
        """Rebuild a record from :meth:`to_dict` output (unknown keys are ignored)."""
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        fields["tags"] = tuple(fields.get("tags") or ())
        return cls(**fields)

    def to_json(self) -> str:
        """Compact JSON of :meth:`to_dict`."""
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True)


@functools.lru_cache(maxsize=64)
def _day_names(day: int) -> tuple[str, str]:
    """``("YYYY-MM-DD", "YYYY-MM")`` of UTC day number ``day`` (days since the epoch).

    POSIX time has no leap seconds, so every UTC day is exactly 86,400 epoch seconds; the
    names are formatted once per day instead of for every scope and period of every record.
    """
    name = dt.datetime.fromtimestamp(day * 86400, dt.timezone.utc).strftime("%Y-%m-%d")
    return name, name[:7]


def _day_number(ts: float) -> int:
    # Rounded to the microsecond first, as datetime.fromtimestamp rounds (half to even).
    return math.floor(round(ts, 6) / 86400)


def utc_day(ts: float) -> str:
    """``YYYY-MM-DD`` of epoch seconds ``ts`` in UTC."""
    return _day_names(_day_number(ts))[0]


def window(period: Period, ts: float) -> str:
    """The name of the ``period`` window that contains ``ts`` (UTC): ``d2026-11-21``, ..."""
    if period == "total":
        return "all"
    day, month = _day_names(_day_number(ts))
    return "d" + day if period == "day" else "m" + month


def window_bounds(period: Period, ts: float) -> tuple[float, float]:
    """Start and end (epoch seconds, end exclusive) of the ``period`` window holding ``ts``."""
    if period == "total":
        return (0.0, math.inf)
    when = dt.datetime.fromtimestamp(ts, dt.timezone.utc)
    if period == "day":
        start = when.replace(hour=0, minute=0, second=0, microsecond=0)
        end = start + dt.timedelta(days=1)
    else:
        start = when.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = (start + dt.timedelta(days=32)).replace(day=1)
    return (start.timestamp(), end.timestamp())


def call_scopes(user: str | None, task: str | None, tags: Iterable[str]) -> list[str]:
    """Every budget scope a call with this user, task and tags counts towards."""
    scopes = ["global"]
    if user is not None:
        scopes.append(f"user:{user}")
    if task is not None:
        scopes.append(f"task:{task}")
    scopes.extend(f"tag:{t}" for t in dict.fromkeys(tags))
    return scopes


def bucket_key(scope: str, period: Period, ts: float) -> str:
    """The bucket of ``scope`` for the ``period`` window holding ``ts``."""
    return f"{scope}|{window(period, ts)}"


def call_buckets(user: str | None, task: str | None, tags: Iterable[str], ts: float) -> list[str]:
    """All bucket keys a call counts towards (every scope x day, month, total), sorted."""
    return sorted(
        bucket_key(scope, period, ts)
        for scope in call_scopes(user, task, tags)
        for period in PERIODS
    )


def record_buckets(record: LedgerRecord) -> list[str]:
    """All bucket keys ``record`` adds its cost to."""
    return call_buckets(record.user, record.task, record.tags, record.ts)


@dataclass(frozen=True)
class Check:
    """A hard limit to enforce on reserve: ``spent + reserved + amount <= limit`` in a bucket."""

    bucket: str
    limit_nanos: int


@dataclass(frozen=True)
class Threshold:
    """A spend level that raises an alert when a write takes a bucket's spend across it."""

    bucket: str
    nanos: int


@dataclass(frozen=True)
class ReserveResult:
    """What a backend answers to a reservation attempt."""

    ok: bool
    failed: Check | None = None
    spent_nanos: int = 0
    reserved_nanos: int = 0


@dataclass(frozen=True)
class WriteResult:
    """What a backend answers to a ledger write."""

    inserted: bool
    crossed: tuple[Threshold, ...] = ()


@dataclass(frozen=True)
class Aggregate:
    """Totals of a group of ledger records."""

    key: str | None
    calls: int = 0
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    errors: int = 0


@dataclass(frozen=True)
class Query:
    """A time range (epoch seconds, end exclusive) and optional equality filters."""

    start: float = 0.0
    end: float = math.inf
    filters: Mapping[str, str] = field(default_factory=dict)

    def matches(self, record: LedgerRecord) -> bool:
        """Whether ``record`` falls in the range and passes every filter."""
        if not self.start <= record.ts < self.end:
            return False
        return all(_field(record, k) == v for k, v in self.filters.items())


FILTERABLE = frozenset({"provider", "model", "task", "user", "session", "status", "trace_id"})


def _field(record: LedgerRecord, name: str) -> str | None:
    if name == "day":
        return record.day
    value = getattr(record, name)
    return None if value is None else str(value)


def aggregate_records(records: Iterable[LedgerRecord], by: GroupBy | None) -> list[Aggregate]:
    """Group ``records`` by a field (or not at all) and total each group, in Python."""
    groups: dict[str | None, list[float]] = {}
    for r in records:
        key = None if by is None else _field(r, by)
        acc = groups.setdefault(key, [0, 0.0, 0, 0, 0])
        acc[0] += 1
        acc[1] += r.cost_usd
        acc[2] += r.input_tokens
        acc[3] += r.output_tokens
        acc[4] += r.status != "ok"
    return [
        Aggregate(k, int(a[0]), a[1], int(a[2]), int(a[3]), int(a[4])) for k, a in groups.items()
    ]


class LedgerBackend(Protocol):
    """Storage of ledger records, budget buckets and reservations (one per store URL)."""

    def write(
        self,
        record: LedgerRecord,
        *,
        reservation_id: str | None = None,
        thresholds: Sequence[Threshold] = (),
    ) -> WriteResult:
        """Insert ``record`` unless its request id exists, releasing ``reservation_id``.

        All in one atomic step: the reservation (if still open) is released, and when the
        record is new its cost is added to every bucket it belongs to. ``crossed`` lists the
        thresholds whose bucket spend went from below to at-or-above by this write.
        """

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
        """Atomically hold ``amount_nanos`` in ``buckets`` if every check passes.

        Expired reservations are released first, so a crashed process's holds do not count.
        With ``optimistic`` (a retry while waiting), a backend may first refuse from a plain
        read without taking its lock, when that read already shows no room.
        """

    def release(self, reservation_id: str) -> bool:
        """Release an open reservation; False if it was settled, released or expired already."""

    def sweep(self, now: float) -> int:
        """Release every reservation whose expiry is before ``now``; return how many."""

    def buckets(self, keys: Sequence[str], now: float) -> dict[str, tuple[int, int]]:
        """``(spent, reserved)`` nano-dollars of each bucket (unexpired reservations only)."""

    def aggregate(self, query: Query, by: GroupBy | None) -> list[Aggregate]:
        """Totals of the records matching ``query``, grouped by a field or not at all."""

    def records(self, query: Query) -> Iterator[LedgerRecord]:
        """The records matching ``query``, oldest first."""

    def get(self, request_id: str) -> LedgerRecord | None:
        """The record of ``request_id``, if any."""

    def close(self) -> None:
        """Release connections held by this backend."""


def check_namespace(namespace: str) -> str:
    """Validate a ledger namespace (used in table names and key prefixes)."""
    if (
        not namespace
        or len(namespace) > 40
        or not all(c.isascii() and (c.isalnum() or c == "_") for c in namespace)
    ):
        raise ConfigurationError(
            f"ledger namespace {namespace!r} must be 1-40 ASCII letters, digits or underscores; "
            "it becomes part of table names and key prefixes."
        )
    return namespace.lower()

"""In-process ledger backend for ``memory://``: tests, notebooks, single short-lived scripts."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

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


@dataclass
class _Hold:
    amount: int
    buckets: tuple[str, ...]
    expires_at: float


class MemoryLedger:
    """Ledger, buckets and reservations in dictionaries guarded by one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, LedgerRecord] = {}
        self._spent: dict[str, int] = {}
        self._reserved: dict[str, int] = {}
        self._holds: dict[str, _Hold] = {}

    def _drop(self, reservation_id: str) -> bool:
        hold = self._holds.pop(reservation_id, None)
        if hold is None:
            return False
        for b in hold.buckets:
            self._reserved[b] = self._reserved.get(b, 0) - hold.amount
        return True

    def write(
        self,
        record: LedgerRecord,
        *,
        reservation_id: str | None = None,
        thresholds: Sequence[Threshold] = (),
    ) -> WriteResult:
        with self._lock:
            if reservation_id is not None:
                self._drop(reservation_id)
            if record.request_id in self._records:
                return WriteResult(inserted=False)
            self._records[record.request_id] = record
            cost = to_nanos(record.cost_usd)
            before = {t.bucket: self._spent.get(t.bucket, 0) for t in thresholds}
            for b in record_buckets(record):
                self._spent[b] = self._spent.get(b, 0) + cost
            crossed = tuple(
                t for t in thresholds if before[t.bucket] < t.nanos <= self._spent.get(t.bucket, 0)
            )
            return WriteResult(inserted=True, crossed=crossed)

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
        with self._lock:
            self._sweep(now)
            for c in checks:
                spent = self._spent.get(c.bucket, 0)
                reserved = self._reserved.get(c.bucket, 0)
                if spent + reserved + amount_nanos > c.limit_nanos:
                    return ReserveResult(False, c, spent, reserved)
            self._holds[reservation_id] = _Hold(amount_nanos, tuple(buckets), expires_at)
            for b in buckets:
                self._reserved[b] = self._reserved.get(b, 0) + amount_nanos
            return ReserveResult(True)

    def release(self, reservation_id: str) -> bool:
        with self._lock:
            return self._drop(reservation_id)

    def _sweep(self, now: float) -> int:
        expired = [rid for rid, h in self._holds.items() if h.expires_at < now]
        for rid in expired:
            self._drop(rid)
        return len(expired)

    def sweep(self, now: float) -> int:
        with self._lock:
            return self._sweep(now)

    def buckets(self, keys: Sequence[str], now: float) -> dict[str, tuple[int, int]]:
        with self._lock:
            self._sweep(now)
            return {k: (self._spent.get(k, 0), self._reserved.get(k, 0)) for k in keys}

    def aggregate(self, query: Query, by: GroupBy | None) -> list[Aggregate]:
        return aggregate_records(self.records(query), by)

    def records(self, query: Query) -> Iterator[LedgerRecord]:
        with self._lock:
            selected = [r for r in self._records.values() if query.matches(r)]
        return iter(sorted(selected, key=lambda r: (r.ts, r.request_id)))

    def get(self, request_id: str) -> LedgerRecord | None:
        with self._lock:
            return self._records.get(request_id)

    def close(self) -> None:
        return None

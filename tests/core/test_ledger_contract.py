"""Behaviour every ledger backend must share; run here on memory and SQLite.

``tests/integration/core/test_ledger_backends.py`` runs the same class on Redis and
PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator

import pytest

from aipowertools.core._ledger import (
    Check,
    LedgerBackend,
    LedgerRecord,
    Query,
    Threshold,
    bucket_key,
    record_buckets,
    to_nanos,
)
from aipowertools.core._ledger_memory import MemoryLedger
from aipowertools.core._ledger_sqlite import SQLiteLedger

T0 = dt.datetime(2026, 3, 14, 12, 0, tzinfo=dt.timezone.utc).timestamp()
DAY = 86_400.0


def rec(rid: str, cost: float = 0.01, ts: float = T0, **kw: object) -> LedgerRecord:
    fields: dict[str, object] = {
        "model": "gpt-4o",
        "provider": "openai",
        "input_tokens": 100,
        "output_tokens": 50,
    }
    fields.update(kw)
    return LedgerRecord(request_id=rid, ts=ts, cost_usd=cost, **fields)  # type: ignore[arg-type]


G_DAY = bucket_key("global", "day", T0)
G_ALL = "global|all"


class LedgerContract:
    """Subclasses provide a ``backend`` fixture yielding an empty backend."""

    def test_second_write_of_a_request_id_is_a_no_op(self, backend: LedgerBackend) -> None:
        assert backend.write(rec("a", 0.5)).inserted
        assert not backend.write(rec("a", 0.7)).inserted
        assert backend.buckets([G_ALL], T0)[G_ALL] == (to_nanos(0.5), 0)
        stored = backend.get("a")
        assert stored is not None
        assert stored.cost_usd == 0.5
        assert backend.get("missing") is None

    def test_record_round_trips_every_field(self, backend: LedgerBackend) -> None:
        r = rec(
            "full",
            0.123456789,
            cached_input_tokens=7,
            cache_creation_tokens=3,
            reasoning_tokens=11,
            cost_exact=False,
            latency_ms=12.5,
            status="error",
            task="t",
            user="u",
            session="s",
            tags=("p1", "p2"),
            trace_id="abc",
        )
        backend.write(r)
        assert backend.get("full") == r
        assert list(backend.records(Query())) == [r]

    def test_cost_lands_in_every_scope_and_period_bucket(self, backend: LedgerBackend) -> None:
        r = rec("b", 0.25, user="ann", task="sum", tags=("proj",))
        backend.write(r)
        keys = record_buckets(r)
        assert len(keys) == 12
        state = backend.buckets(keys, T0)
        assert all(state[k] == (to_nanos(0.25), 0) for k in keys)

    def test_reserve_holds_until_settled_then_spend_replaces_it(
        self, backend: LedgerBackend
    ) -> None:
        checks = [Check(G_DAY, to_nanos(1.0))]
        buckets = [G_DAY, G_ALL]
        ok = backend.reserve("r1", to_nanos(0.6), buckets, checks, expires_at=T0 + 60, now=T0)
        assert ok.ok
        assert backend.buckets([G_DAY], T0)[G_DAY] == (0, to_nanos(0.6))
        refused = backend.reserve("r2", to_nanos(0.5), buckets, checks, expires_at=T0 + 60, now=T0)
        assert not refused.ok
        assert refused.failed == checks[0]
        assert (refused.spent_nanos, refused.reserved_nanos) == (0, to_nanos(0.6))
        assert backend.write(rec("call1", 0.2), reservation_id="r1").inserted
        assert backend.buckets([G_DAY], T0)[G_DAY] == (to_nanos(0.2), 0)
        assert backend.reserve("r3", to_nanos(0.5), buckets, checks, expires_at=T0 + 60, now=T0).ok
        assert not backend.release("r1")  # settled already

    def test_settle_with_a_duplicate_record_still_releases(self, backend: LedgerBackend) -> None:
        backend.write(rec("dup", 0.1))
        backend.reserve("r", to_nanos(0.3), [G_DAY], [], expires_at=T0 + 60, now=T0)
        assert not backend.write(rec("dup", 0.1), reservation_id="r").inserted
        assert backend.buckets([G_DAY], T0)[G_DAY] == (to_nanos(0.1), 0)

    def test_release_returns_the_budget_once(self, backend: LedgerBackend) -> None:
        backend.reserve("r", to_nanos(0.3), [G_DAY], [], expires_at=T0 + 60, now=T0)
        assert backend.release("r")
        assert not backend.release("r")
        assert backend.buckets([G_DAY], T0)[G_DAY] == (0, 0)

    def test_expired_reservations_stop_counting(self, backend: LedgerBackend) -> None:
        checks = [Check(G_DAY, to_nanos(1.0))]
        assert backend.reserve("old", to_nanos(0.9), [G_DAY], checks, expires_at=T0 + 1, now=T0).ok
        assert not backend.reserve(
            "new", to_nanos(0.5), [G_DAY], checks, expires_at=T0 + 60, now=T0
        ).ok
        # After the expiry, the next reservation sweeps the crashed holder's hold away.
        assert backend.reserve(
            "new", to_nanos(0.5), [G_DAY], checks, expires_at=T0 + 60, now=T0 + 2
        ).ok
        assert backend.buckets([G_DAY], T0 + 2)[G_DAY] == (0, to_nanos(0.5))
        assert backend.sweep(T0 + 61) == 1
        assert backend.sweep(T0 + 61) == 0
        assert backend.buckets([G_DAY], T0 + 61)[G_DAY] == (0, 0)

    def test_optimistic_retry_refuses_and_still_sees_expiry(self, backend: LedgerBackend) -> None:
        checks = [Check(G_DAY, to_nanos(1.0))]
        exp, now = T0 + 1, T0
        assert backend.reserve("a", to_nanos(0.9), [G_DAY], checks, expires_at=exp, now=now).ok
        refused = backend.reserve(
            "b", to_nanos(0.5), [G_DAY], checks, expires_at=exp, now=now, optimistic=True
        )
        assert (refused.ok, refused.reserved_nanos) == (False, to_nanos(0.9))
        # Once the hold has expired the optimistic read defers to the locked path.
        for rid, usd in (("b", 0.5), ("c", 0.1)):
            assert backend.reserve(
                rid, to_nanos(usd), [G_DAY], checks, expires_at=T0 + 60, now=T0 + 2, optimistic=True
            ).ok
        assert backend.buckets([G_DAY], T0 + 2)[G_DAY] == (0, to_nanos(0.6))

    def test_reading_buckets_drops_expired_holds(self, backend: LedgerBackend) -> None:
        backend.reserve("gone", to_nanos(0.4), [G_DAY], [], expires_at=T0 + 1, now=T0)
        assert backend.buckets([G_DAY], T0)[G_DAY] == (0, to_nanos(0.4))
        assert backend.buckets([G_DAY], T0 + 5)[G_DAY] == (0, 0)
        assert not backend.release("gone")

    def test_threshold_is_reported_once_per_crossing(self, backend: LedgerBackend) -> None:
        th = [Threshold(G_DAY, to_nanos(0.5)), Threshold("user:zed|all", 1)]
        assert backend.write(rec("1", 0.3), thresholds=th).crossed == ()
        assert backend.write(rec("2", 0.3), thresholds=th).crossed == (th[0],)
        assert backend.write(rec("3", 0.3), thresholds=th).crossed == ()
        assert backend.write(rec("3", 0.3), thresholds=th).crossed == ()
        # The next day is a new window: crossing again alerts again.
        th2 = [Threshold(bucket_key("global", "day", T0 + DAY), to_nanos(0.5))]
        assert backend.write(rec("4", 0.6, ts=T0 + DAY), thresholds=th2).crossed == (th2[0],)

    def test_queries_group_filter_and_range(self, backend: LedgerBackend) -> None:
        backend.write(rec("a", 1.0, user="ann", task="x", provider="openai"))
        backend.write(rec("b", 2.0, user="bob", task="x", model="claude", provider="anthropic"))
        backend.write(rec("c", 4.0, ts=T0 + DAY, user="ann", status="error", output_tokens=0))
        backend.write(rec("d", 8.0, ts=T0 - 10 * DAY))
        q = Query(T0 - 1, T0 + 2 * DAY)
        by_user = {a.key: (a.calls, a.cost_usd) for a in backend.aggregate(q, "user")}
        assert by_user == {"ann": (2, 5.0), "bob": (1, 2.0)}
        by_day = {a.key: a.cost_usd for a in backend.aggregate(q, "day")}
        assert by_day == {"2026-03-14": 3.0, "2026-03-15": 4.0}
        by_provider = {a.key: a.calls for a in backend.aggregate(q, "provider")}
        assert by_provider == {"openai": 2, "anthropic": 1}
        (total,) = backend.aggregate(q, None)
        assert (total.calls, total.cost_usd, total.errors, total.output_tokens) == (3, 7.0, 1, 100)
        only_ann = Query(0, float("inf"), {"user": "ann"})
        assert [r.request_id for r in backend.records(only_ann)] == ["a", "c"]
        assert [r.request_id for r in backend.records(Query(0, T0))] == ["d"]
        assert backend.aggregate(Query(T0 + 5 * DAY), None) == []
        assert backend.aggregate(Query(T0 + 5 * DAY), "model") == []


class TestMemoryLedger(LedgerContract):
    @pytest.fixture
    def backend(self) -> LedgerBackend:
        return MemoryLedger()


class TestSQLiteLedger(LedgerContract):
    @pytest.fixture
    def backend(self, tmp_path: object) -> Iterator[LedgerBackend]:
        from pathlib import Path

        b = SQLiteLedger(Path(str(tmp_path)) / "sub" / "ledger.db", f"t{uuid.uuid4().hex[:8]}")
        yield b
        b.close()


def test_sqlite_reopens_after_close_and_keeps_data(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "l.db"
    b = SQLiteLedger(path)
    b.write(rec("x", 0.5))
    b.close()
    again = SQLiteLedger(path)
    assert again.get("x") is not None
    assert again.buckets([G_ALL], time.time())[G_ALL][0] == to_nanos(0.5)
    again.close()


def test_sqlite_rejects_unknown_filters_and_rolls_back(tmp_path: object) -> None:
    import sqlite3
    from pathlib import Path

    from aipowertools.core.errors import ConfigurationError

    b = SQLiteLedger(Path(str(tmp_path)) / "l.db")
    with pytest.raises(ConfigurationError, match="cannot filter"):
        list(b.records(Query(filters={"colour": "red"})))
    assert b.reserve("r", 5, [G_DAY], [], expires_at=T0 + 60, now=T0).ok
    with pytest.raises(sqlite3.IntegrityError):  # same id twice: the transaction rolls back
        b.reserve("r", 7, [G_DAY], [], expires_at=T0 + 60, now=T0)
    assert b.buckets([G_DAY], T0)[G_DAY] == (0, 5)
    b.close()


def test_sqlite_unusable_path_is_a_typed_error(tmp_path: object) -> None:
    from pathlib import Path

    from aipowertools.core.errors import StoreUnavailableError

    blocker = Path(str(tmp_path)) / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreUnavailableError, match="sqlite:///"):
        SQLiteLedger(blocker / "ledger.db")

"""Property test: no interleaving of reserve / settle / release / expiry overspends a budget."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from aipowertools.core._ledger import Check, LedgerBackend, LedgerRecord, record_buckets
from aipowertools.core._ledger_memory import MemoryLedger
from aipowertools.core._ledger_sqlite import SQLiteLedger

T0 = 1_800_000_000.0
LIMIT = 1_000
TTL = 10.0


class BudgetMachine(RuleBasedStateMachine):
    backend: LedgerBackend

    def __init__(self) -> None:
        super().__init__()
        self.now = T0
        self.open: dict[str, tuple[int, float]] = {}  # id -> (amount, expires_at)
        self.spent = 0
        self.n = 0

    def _bucket(self) -> str:
        return record_buckets(LedgerRecord("x", T0, "m"))[0]  # "global|all"

    def _live(self) -> dict[str, int]:
        return {k: a for k, (a, exp) in self.open.items() if exp >= self.now}

    @rule(amount=st.integers(min_value=1, max_value=600))
    def reserve(self, amount: int) -> None:
        rid = f"r{self.n}"
        self.n += 1
        result = self.backend.reserve(
            rid,
            amount,
            [self._bucket()],
            [Check(self._bucket(), LIMIT)],
            expires_at=self.now + TTL,
            now=self.now,
        )
        fits = self.spent + sum(self._live().values()) + amount <= LIMIT
        assert result.ok == fits
        self.open = {k: v for k, v in self.open.items() if v[1] >= self.now}
        if result.ok:
            self.open[rid] = (amount, self.now + TTL)

    @precondition(lambda self: bool(self._live()))
    @rule(data=st.data(), release=st.booleans())
    def finish(self, data: st.DataObject, release: bool) -> None:
        rid = data.draw(st.sampled_from(sorted(self._live())))
        amount, _ = self.open.pop(rid)
        if release:
            assert self.backend.release(rid)
            return
        actual = data.draw(st.integers(min_value=0, max_value=amount))
        record = LedgerRecord(f"call-{rid}", T0, "m", cost_usd=actual / 1e9)
        assert self.backend.write(record, reservation_id=rid).inserted
        self.spent += actual

    @rule(seconds=st.sampled_from([1.0, 5.0, 11.0]))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds

    @invariant()
    def never_overspent_and_counters_match(self) -> None:
        spent, reserved = self.backend.buckets([self._bucket()], self.now)[self._bucket()]
        assert spent == self.spent <= LIMIT
        assert reserved == sum(self._live().values())
        assert spent + reserved <= LIMIT


class MemoryBudgetMachine(BudgetMachine):
    @initialize()
    def open_backend(self) -> None:
        self.backend = MemoryLedger()


class SQLiteBudgetMachine(BudgetMachine):
    @initialize()
    def open_backend(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.backend = SQLiteLedger(Path(self.tmp.name) / "l.db", f"p{uuid.uuid4().hex[:8]}")

    def teardown(self) -> None:
        self.backend.close()
        self.tmp.cleanup()


TestMemoryBudget = MemoryBudgetMachine.TestCase
TestMemoryBudget.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestSQLiteBudget = SQLiteBudgetMachine.TestCase
TestSQLiteBudget.settings = settings(max_examples=25, stateful_step_count=25, deadline=None)

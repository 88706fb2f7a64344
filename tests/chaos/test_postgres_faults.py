"""PostgreSQL restarted or frozen under the session store and the ledger: typed errors, bounded
waits, nothing acknowledged lost; session locks under contention never starve the pool."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from aipowertools.core import CostTracker
from aipowertools.core.errors import StoreUnavailableError
from aipowertools.sessions import Session, SessionLockError

from .conftest import PostgresServer, Tally


@pytest.fixture
def short_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bound every round trip to 1 s, so a frozen server costs a test 1 s per call."""
    monkeypatch.setenv("AIPOWERTOOLS_STORE_TIMEOUT_S", "1")


def test_session_survives_restart_with_typed_errors(
    postgres_server: PostgresServer, tally: Tally
) -> None:
    s = Session("restart", store=postgres_server.url)
    acked = []
    for i in range(10):
        s.append("log", i)
        acked.append(i)
    untyped = 0
    for round_ in range(3):
        postgres_server.restart()
        for i in range(5):
            n = 100 * (round_ + 1) + i
            tally.tried()
            try:
                s.append("log", n)
            except StoreUnavailableError:
                tally.refused()  # a typed error: not acknowledged
            except Exception:
                untyped += 1
                tally.lost()
            else:
                acked.append(n)
                tally.survived()
    assert untyped == 0
    stored = Session("restart", store=postgres_server.url).get("log")
    assert [x for x in stored if x in acked] == acked  # every acknowledged append is there
    # at most the first call after each restart fails; the pool replaced its dead connections
    assert tally.scenario.survived >= 12


def test_frozen_server_bounded_wait_typed_error(
    postgres_server: PostgresServer, tally: Tally, short_timeout: None
) -> None:
    s = Session("frozen", store=postgres_server.url)
    s.append("log", 0)
    postgres_server.freeze()
    try:
        for i in range(2):
            tally.tried()
            with pytest.raises(StoreUnavailableError):
                s.append("log", i + 1)  # returns after ~1 s instead of hanging
            tally.refused()
    finally:
        postgres_server.thaw()
    for i in range(3):
        tally.tried()
        s.append("log", 10 + i)
        tally.survived()
    assert s.get("log")[-3:] == [10, 11, 12]


def test_ledger_restart_typed_error(postgres_server: PostgresServer, tally: Tally) -> None:
    tracker = CostTracker(store=postgres_server.url)
    tracker.record(model="gpt-4o", cost_usd=0.01, request_id="r0")
    postgres_server.restart()
    untyped = 0
    for i in range(5):
        tally.tried()
        try:
            tracker.record(model="gpt-4o", cost_usd=0.01, request_id=f"r{i + 1}")
        except StoreUnavailableError:
            tally.refused()
        except Exception:
            untyped += 1
            tally.lost()
        else:
            tally.survived()
    assert untyped == 0
    tracker.close()


def test_lock_contention_never_starves_the_pool(
    postgres_server: PostgresServer, tally: Tally
) -> None:
    s = Session("locked", store=postgres_server.url, lock_timeout=30)
    s.append("log", -1)
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            with s.lock():
                s.append("log", i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    tally.tried(12)
    tally.lost(len(errors))
    tally.survived(12 - len(errors))
    assert not [e for e in errors if isinstance(e, SessionLockError)]
    assert errors == []
    assert sorted(s.get("log")) == list(range(-1, 12))


def test_backup_nested_in_a_lock(postgres_server: PostgresServer, tmp_path: Path) -> None:
    s = Session("nested", store=postgres_server.url, lock_timeout=2)
    s.append("log", 1)
    with s.lock():
        path = s.create_backup(tmp_path / "b.json")
    assert path.exists()

"""The ledger backend contract (tests/core/test_ledger_contract.py) on Redis and PostgreSQL."""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from aipowertools.core._ledger import LedgerBackend
from aipowertools.core._ledger_postgres import PostgresLedger
from aipowertools.core._ledger_redis import RedisLedger

_path = Path(__file__).resolve().parents[2] / "core" / "test_ledger_contract.py"
_spec = importlib.util.spec_from_file_location("ledger_contract", _path)
assert _spec is not None
assert _spec.loader is not None
_contract = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_contract)
LedgerContract = _contract.LedgerContract


def _ns() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


class TestRedisLedger(LedgerContract):  # type: ignore[misc,valid-type]
    @pytest.fixture
    def backend(self, redis_url: str) -> Iterator[LedgerBackend]:
        b = RedisLedger(redis_url, _ns())
        yield b
        b.close()


class TestPostgresLedger(LedgerContract):  # type: ignore[misc,valid-type]
    @pytest.fixture
    def backend(self, postgres_url: str) -> Iterator[LedgerBackend]:
        b = PostgresLedger(postgres_url, _ns())
        yield b
        b.close()


def test_redis_keys_share_one_hash_tag(redis_url: str) -> None:
    import redis

    ns = _ns()
    b = RedisLedger(redis_url, ns)
    from aipowertools.core._ledger import LedgerRecord

    b.write(LedgerRecord("r1", 1.0, "m", cost_usd=0.1))
    client = redis.Redis.from_url(redis_url)
    keys = {k.decode() for k in client.keys(f"aipt:{{{ns}}}:*")}
    client.close()
    assert keys == {f"aipt:{{{ns}}}:{k}" for k in ("buckets", "idx", "rec:r1")}

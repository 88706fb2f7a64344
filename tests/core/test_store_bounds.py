"""The bounds every PostgreSQL pool gets, and which psycopg errors mean "store unavailable"."""

from __future__ import annotations

import pytest

from aipowertools.core import stores
from aipowertools.core.errors import ConfigurationError


def test_timeout_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIPOWERTOOLS_STORE_TIMEOUT_S", raising=False)
    assert stores.pg_timeout_s() == 30.0
    monkeypatch.setenv("AIPOWERTOOLS_STORE_TIMEOUT_S", "2.5")
    assert stores.pg_timeout_s() == 2.5
    options = stores._pg_pool_options("postgresql://h/db")
    assert options["timeout"] == 2.5
    assert options["kwargs"]["options"] == "-c statement_timeout=2500"
    assert options["kwargs"]["tcp_user_timeout"] == 2500
    assert options["kwargs"]["keepalives"] == 1
    # the URL's own server options win
    assert "options" not in stores._pg_pool_options("postgresql://h/db?options=-c%20x=1")["kwargs"]
    for bad in ("0", "-1", "inf", "soon"):
        monkeypatch.setenv("AIPOWERTOOLS_STORE_TIMEOUT_S", bad)
        with pytest.raises(ConfigurationError, match="AIPOWERTOOLS_STORE_TIMEOUT_S"):
            stores.pg_timeout_s()


def test_connection_failures_are_told_apart_from_query_errors() -> None:
    import psycopg
    from psycopg import errors

    assert stores._pg_connection_failure(psycopg.OperationalError("server closed the connection"))
    assert stores._pg_connection_failure(errors.AdminShutdown())
    assert stores._pg_connection_failure(errors.QueryCanceled())
    assert not stores._pg_connection_failure(errors.SerializationFailure())
    assert not stores._pg_connection_failure(errors.UniqueViolation())
    assert not stores._pg_connection_failure(ValueError("x"))

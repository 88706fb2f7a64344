"""The redis_url / postgres_url fixtures: real databases, skip locally, fail under CI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
def test_redis(redis_url):
    import redis
    redis.Redis.from_url(redis_url).ping()

def test_postgres(postgres_url):
    import psycopg
    psycopg.connect(postgres_url).close()
"""


def _run_probe(tmp_path: Path, *, ci: bool, down: bool) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_probe.py").write_text(PROBE)
    env = {k: v for k, v in os.environ.items() if k not in {"CI", "COV_CORE_SOURCE"}}
    if ci:
        env["CI"] = "true"
    if down:  # a port where nothing listens stands in for a stopped server
        env["AIPOWERTOOLS_TEST_REDIS_URL"] = "redis://127.0.0.1:9/0"
        env["AIPOWERTOOLS_TEST_POSTGRES_URL"] = "postgresql://postgres@127.0.0.1:9/postgres"
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-rsfE",
            "-o",
            "asyncio_default_fixture_loop_scope=function",
            "--rootdir",
            str(tmp_path),
            "-c",
            os.devnull,
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )


def test_services_down_fail_under_ci(tmp_path: Path) -> None:
    result = _run_probe(tmp_path, ci=True, down=True)
    assert result.returncode == 1, result.stdout
    assert "2 errors" in result.stdout  # a fixture failure errors the test
    assert "Redis is not answering" in result.stdout
    assert "PostgreSQL is not answering" in result.stdout


def test_services_down_skip_with_reason_locally(tmp_path: Path) -> None:
    result = _run_probe(tmp_path, ci=False, down=True)
    assert result.returncode == 0, result.stdout
    assert "2 skipped" in result.stdout
    assert "start it to run this test" in result.stdout


def test_services_up_pass(tmp_path: Path) -> None:
    result = _run_probe(tmp_path, ci=True, down=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_redis_url_is_a_claimed_private_database(redis_url: str) -> None:
    import redis

    db = redis.Redis.from_url(redis_url).connection_pool.connection_kwargs["db"]
    assert db != 0, "database 0 holds the claim locks and is never handed out"
    control = redis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/0")
    assert control.get(f"aipowertools:test-db-lock:{db}") is not None


def test_postgres_url_is_a_fresh_database(postgres_url: str) -> None:
    import psycopg

    with psycopg.connect(postgres_url) as conn:
        row = conn.execute("select current_database()").fetchone()
    assert row is not None
    assert row[0].startswith("aipt_test_")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX only")
def test_fixture_plugin_is_registered_by_entry_point() -> None:
    from importlib.metadata import entry_points

    names = {ep.name for ep in entry_points(group="pytest11")}
    assert "aipowertools_testing" in names

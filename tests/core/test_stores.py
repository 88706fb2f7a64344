from __future__ import annotations

import socket
from pathlib import Path

import pytest

from aipowertools.core import stores
from aipowertools.core.errors import ConfigurationError, StoreUnavailableError, StoreURLError
from aipowertools.core.stores import (
    StoreURL,
    async_postgres_pool,
    async_redis_client,
    data_dir,
    parse_store_url,
    postgres_pool,
    redis_client,
)


@pytest.fixture
def closed_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_data_dir_honours_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIPOWERTOOLS_HOME", str(tmp_path / "home"))
    assert data_dir() == (tmp_path / "home").resolve()
    assert data_dir().is_dir()


def test_data_dir_defaults_to_user_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIPOWERTOOLS_HOME", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert data_dir() == (tmp_path / "aipowertools").resolve()


def test_parse_defaults_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIPOWERTOOLS_HOME", str(tmp_path))
    monkeypatch.delenv("AIPOWERTOOLS_STORE", raising=False)
    url = parse_store_url(None, default="sqlite:///{data_dir}/ledger.db")
    assert url.scheme == "sqlite"
    assert url.path == tmp_path.resolve() / "ledger.db"
    monkeypatch.setenv("AIPOWERTOOLS_STORE", "redis://localhost:6379/2")
    assert parse_store_url(None, default="memory://").scheme == "redis"
    # an explicit URL wins over the environment
    assert parse_store_url("memory://", default="sqlite:///x").scheme == "memory"
    assert parse_store_url(url, default="memory://") is url


@pytest.mark.parametrize(
    ("text", "scheme", "path"),
    [
        ("sqlite:///tmp/a.db", "sqlite", Path("/tmp/a.db")),
        ("sqlite:////tmp/a.db", "sqlite", Path("/tmp/a.db")),
        ("sqlite://rel/a.db", "sqlite", Path("rel/a.db")),
        ("sqlite:///tmp/a.db?timeout=5", "sqlite", Path("/tmp/a.db")),
        ("diskcache:///var/cache/x", "diskcache", Path("/var/cache/x")),
        ("sqlite:///C:/data/a.db", "sqlite", Path("C:/data/a.db")),
        ("sqlite:///:memory:", "sqlite", Path(":memory:")),
        ("memory://", "memory", None),
        ("MEMORY://name", "memory", None),
        ("redis://localhost", "redis", None),
        ("rediss://:pw@cache.example:6380/3", "redis", None),
        ("postgresql://u:p@db/app", "postgresql", None),
        ("postgres://u@db/app", "postgresql", None),
        ("postgresql:///app", "postgresql", None),
        ("s3://bucket/pre/fix", "s3", None),
    ],
)
def test_parse_valid(text: str, scheme: str, path: Path | None) -> None:
    url = parse_store_url(text, default="memory://")
    assert url.scheme == scheme
    assert url.path == path


def test_postgres_aliases_are_normalised() -> None:
    assert parse_store_url("postgres://u@db/app", default="").raw == "postgresql://u@db/app"
    assert (
        parse_store_url("postgresql+psycopg://u@db/app", default="").raw == "postgresql://u@db/app"
    )


def test_s3_parts_and_home_expansion() -> None:
    url = parse_store_url("s3://bucket/pre/fix/", default="")
    assert (url.bucket, url.prefix) == ("bucket", "pre/fix")
    assert parse_store_url("memory://", default="").bucket is None
    assert parse_store_url("memory://", default="").prefix == ""
    home = parse_store_url("sqlite://~/x.db", default="")
    assert home.path == Path("~/x.db").expanduser()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("/tmp/ledger.db", "no scheme"),
        ("postgress://db/app", "did you mean postgres://"),
        ("mysql://db/app", "unknown scheme 'mysql'"),
        ("sqlite://", "no path"),
        ("sqlite:///", "no path"),
        ("redis://", "no host"),
        ("redis://host/cache", "must be a number"),
        ("redis://host:notaport/0", "cannot parse"),
        ("s3://", "no bucket"),
    ],
)
def test_parse_invalid(text: str, fragment: str) -> None:
    with pytest.raises(StoreURLError, match=fragment) as info:
        parse_store_url(text, default="memory://")
    assert isinstance(info.value, ConfigurationError)


def test_password_masked_in_url_and_errors() -> None:
    url = parse_store_url("redis://user:hunter2@h:6379/0", default="")
    assert url.masked() == "redis://user:***@h:6379/0"
    assert str(url) == url.masked()
    assert "hunter2" not in repr(StoreURL("redis", url.masked()))
    with pytest.raises(StoreURLError) as info:
        parse_store_url("redis://user:hunter2@h:6379/db", default="")
    assert "hunter2" not in str(info.value)
    assert "***" in str(info.value)


def test_wrong_scheme_for_pool() -> None:
    with pytest.raises(StoreURLError, match="expected a redis:// URL"):
        redis_client("postgresql://db/app")
    with pytest.raises(StoreURLError, match="expected a postgresql:// URL"):
        postgres_pool("memory://")


def test_unreachable_redis_is_typed(closed_port: int) -> None:
    import redis

    client = redis_client(f"redis://:topsecret@127.0.0.1:{closed_port}/0")
    with pytest.raises(StoreUnavailableError) as info:
        client.ping()
    assert "topsecret" not in str(info.value)
    assert f"127.0.0.1:{closed_port}" in str(info.value)
    assert isinstance(info.value, redis.ConnectionError)  # existing handlers still work


async def test_unreachable_async_redis_is_typed(closed_port: int) -> None:
    client = async_redis_client(f"redis://:topsecret@127.0.0.1:{closed_port}/0")
    with pytest.raises(StoreUnavailableError) as info:
        await client.ping()
    assert "topsecret" not in str(info.value)
    await client.aclose()  # type: ignore[attr-defined]  # stubs predate aclose


def test_unreachable_postgres_is_typed(closed_port: int) -> None:
    url = f"postgresql://user:topsecret@127.0.0.1:{closed_port}/app?connect_timeout=1"
    with pytest.raises(StoreUnavailableError) as info:
        postgres_pool(url)
    assert "topsecret" not in str(info.value)
    assert str(closed_port) in str(info.value)
    assert url not in stores._pg_pools  # a failed pool is not cached


async def test_unreachable_async_postgres_is_typed(closed_port: int) -> None:
    url = f"postgresql://user:topsecret@127.0.0.1:{closed_port}/app?connect_timeout=1"
    with pytest.raises(StoreUnavailableError) as info:
        await async_postgres_pool(url)
    assert "topsecret" not in str(info.value)


def test_async_helpers_need_a_running_loop() -> None:
    with pytest.raises(ConfigurationError, match="running event loop"):
        async_redis_client("redis://localhost/0")
    coro = async_postgres_pool("postgresql://db/app")
    with pytest.raises(ConfigurationError, match="running event loop"):
        coro.send(None)
    coro.close()


def test_close_all_forgets_shared_clients(closed_port: int) -> None:
    url = f"redis://127.0.0.1:{closed_port}/0"
    first = redis_client(url)
    stores._close_all()
    assert redis_client(url) is not first

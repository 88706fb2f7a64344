"""Store passwords never show: URLs, query parameters, libpq keyword strings, reprs."""

from __future__ import annotations

import pytest

from aipowertools.core._errors import mask_url
from aipowertools.core.errors import StoreUnavailableError
from aipowertools.core.stores import parse_store_url


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://:pw@h:1/0", "redis://:***@h:1/0"),
        ("postgresql://u:s3cr3t@h/db", "postgresql://u:***@h/db"),
        (
            "postgresql://h/db?sslmode=require&password=s3cr3t",
            "postgresql://h/db?sslmode=require&password=***",
        ),
        ("host=h port=5432 password='se cret' user=u", "host=h port=5432 password=*** user=u"),
        ("dbname=x PASSWORD=s3cr3t", "dbname=x PASSWORD=***"),
        ("redis://h/0", "redis://h/0"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_store_url_repr_and_errors_hide_the_password() -> None:
    url = parse_store_url("postgresql://u:s3cr3t@h/db?password=s3cr3t", default="memory://")
    assert "s3cr3t" not in repr(url)
    assert "s3cr3t" not in str(url)
    assert "s3cr3t" not in str(StoreUnavailableError("host=h password=s3cr3t", "down"))
    assert repr(parse_store_url("sqlite:////tmp/x.db", default="memory://")).endswith(
        "path=PosixPath('/tmp/x.db'))"
    )


def test_session_repr_hides_the_password() -> None:
    from aipowertools.sessions import Session

    s = Session("a", store="memory://")
    s.backend.url = "redis://:s3cr3t@h/0"  # type: ignore[attr-defined]
    assert "s3cr3t" not in repr(s)

"""Pytest plugin of ``aipowertools-testing``: service fixtures and the provider simulator.

Registered through the ``pytest11`` entry point, so installing the distribution is enough.

Fixtures:
    redis_url: URL of an empty Redis database owned by this test session.
    postgres_url: URL of a fresh PostgreSQL database, dropped at the end of the session.
    llm_simulator: A running :class:`~aipowertools.testing.Simulator` for one test (no models
        configured; unknown model names answer with the default reply). Add models with
        ``llm_simulator.add_model(SimModel(...))``. Works in sync and async tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

import pytest

from aipowertools.testing._services import (
    ServiceUnavailable,
    fresh_postgres_db,
    fresh_redis_db,
    in_ci,
)

if TYPE_CHECKING:
    from aipowertools.testing._server import Simulator


def _service(
    request: pytest.FixtureRequest, factory: Callable[[], AbstractContextManager[str]]
) -> Iterator[str]:
    try:
        manager = factory()
        url = manager.__enter__()
    except ServiceUnavailable as exc:
        if in_ci():
            pytest.fail(
                f"{exc} (CI=true: services are required; start it as docs/development.md shows)"
            )
        pytest.skip(f"{exc}; start it to run this test")
    try:
        yield url
    finally:
        manager.__exit__(None, None, None)


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """URL of an empty Redis database for this test session (fails under CI if Redis is down)."""
    yield from _service(request, fresh_redis_db)


@pytest.fixture(scope="session")
def postgres_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """URL of a fresh PostgreSQL database for this test session, dropped afterwards."""
    yield from _service(request, fresh_postgres_db)


@pytest.fixture
def llm_simulator() -> Iterator[Simulator]:
    """A running provider simulator for this test, stopped afterwards.

    Example:
        >>> def test_reply(llm_simulator):  # doctest: +SKIP
        ...     llm_simulator.add_model(SimModel("gpt-4o-mini", reply="hi"))
        ...     url = llm_simulator.base_url("openai")
    """
    from aipowertools.testing._compat import litellm
    from aipowertools.testing._server import Simulator  # aiohttp only for tests that use it

    with Simulator() as sim:
        litellm()  # token counting needs it: loaded before the test's first request
        yield sim

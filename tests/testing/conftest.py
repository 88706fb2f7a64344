from __future__ import annotations

import asyncio
import inspect
import warnings
from collections.abc import Iterator
from types import ModuleType

import pytest

from aipowertools.testing._compat import litellm as _litellm


@pytest.fixture(scope="session", autouse=True)
def litellm() -> ModuleType:
    """litellm, imported offline once, before any simulator counts tokens with it.

    ``Simulator.start()`` no longer imports it (the port opens at once); its first counting
    request would otherwise pay the import inside a client's timeout.
    """
    return _litellm()


@pytest.fixture(autouse=True)
def _close_litellm_stray_loop(request: pytest.FixtureRequest) -> Iterator[None]:
    """Close the event loop litellm's sync service logger leaves on the main thread.

    ``litellm.completion`` calls ``asyncio.get_event_loop()`` (litellm/_service_logger.py),
    which creates a loop that nobody closes; it is garbage-collected in a later test as an
    "unclosed event loop" ResourceWarning. Sync tests only: async ones own their loop.
    """
    yield
    if inspect.iscoroutinefunction(request.function):
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            loop = asyncio.get_event_loop_policy().get_event_loop()
        except RuntimeError:
            return
    if not loop.is_running() and not loop.is_closed():
        loop.close()
    asyncio.set_event_loop(None)

"""Fixtures for the tests that start worker processes."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="module", autouse=True)
def _shared_bytecode_cache() -> Iterator[None]:
    """Worker subprocesses write and reuse one bytecode cache (the environment turns bytecode
    writing off): only the first one compiles pydantic, redis, boto3, ... on a fresh machine."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
        mp.setenv("PYTHONPYCACHEPREFIX", str(Path(tempfile.gettempdir()) / "aipowertools-pyc"))
        yield

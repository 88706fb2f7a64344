from __future__ import annotations

from collections.abc import Iterator

import pytest

from aipowertools.callbacks import clear_context


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch) -> Iterator[None]:
    monkeypatch.setenv("AIPOWERTOOLS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("AIPOWERTOOLS_LOG_STORE", raising=False)
    clear_context()
    yield
    clear_context()

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aipowertools.callbacks import clear_context


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch) -> Iterator[None]:
    monkeypatch.setenv("AIPOWERTOOLS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("AIPOWERTOOLS_LOG_STORE", raising=False)
    monkeypatch.delenv("AIPOWERTOOLS_STORE", raising=False)
    clear_context()
    yield
    clear_context()


@pytest.fixture
def spans():
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()

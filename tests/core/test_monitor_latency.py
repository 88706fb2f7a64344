"""The monitor's average latency and the catalog it teaches (roadmap avgLatency, getByLatency)."""

from __future__ import annotations

import pytest

from aipowertools.core import ModelCatalog, ProviderMonitor
from aipowertools.core import _catalog as catalog_module
from aipowertools.core.errors import ConfigurationError


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_average_latency_over_the_window() -> None:
    clock = Clock()
    monitor = ProviderMonitor(window_s=60, clock=clock, catalog=False)
    assert monitor.average_latency_ms("a") is None
    for ms in (100, 200, 600):
        monitor.record("a", latency_ms=ms, ok=True)
    monitor.record("a", latency_ms=100, ok=False, error_kind="transient")
    assert monitor.average_latency_ms("a") == pytest.approx(250.0)
    assert monitor.stats("a").latency_mean_ms == pytest.approx(250.0)
    clock.t += 30
    monitor.record("a", latency_ms=1000, ok=True)
    assert monitor.average_latency_ms("a") == pytest.approx(400.0)
    clock.t += 45  # the first four left the window
    assert monitor.average_latency_ms("a") == pytest.approx(1000.0)
    clock.t += 60
    assert monitor.average_latency_ms("a") is None
    hours = monitor.history("a")
    assert hours[-1].latency_mean_ms == pytest.approx(400.0)


def test_a_monitor_teaches_its_catalog_so_by_latency_works() -> None:
    catalog = ModelCatalog()
    catalog.add(id="mine", provider="acme", litellm_model="acme/mine-1")
    monitor = ProviderMonitor(catalog=catalog)
    assert catalog.by_latency(10_000) == []
    monitor.record("primary", model="mine", latency_ms=400, ok=True)
    monitor.record("gpt-4o-mini", latency_ms=900, ok=True)  # by deployment name
    monitor.record("gpt-4o-mini", latency_ms=50, ok=False, error_kind="transient")  # not taught
    for _ in range(2):
        monitor.record("no-such-model", latency_ms=10, ok=True)  # unknown: skipped
    assert [(m.id, m.latency_ms) for m in catalog.by_latency(10_000)] == [
        ("mine", 400.0),
        ("gpt-4o-mini", 900.0),
    ]
    assert [m.id for m in catalog.by_latency(500)] == ["mine"]


def test_the_default_catalog_learns_unless_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    fresh = ModelCatalog()
    monkeypatch.setattr(catalog_module, "_default", fresh)
    ProviderMonitor(catalog=False).record("gpt-4o-mini", latency_ms=300, ok=True)
    assert fresh.by_latency(10_000) == []
    ProviderMonitor().record("gpt-4o-mini", latency_ms=300, ok=True)
    assert [m.id for m in fresh.by_latency(10_000)] == ["gpt-4o-mini"]


def test_catalog_argument_is_checked() -> None:
    with pytest.raises(ConfigurationError, match="catalog must be a ModelCatalog"):
        ProviderMonitor(catalog="default")  # type: ignore[arg-type]


def test_remembered_names_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    catalog = ModelCatalog()
    monitor = ProviderMonitor(catalog=catalog)
    monkeypatch.setattr(monitor, "_max_catalog_names", 1)
    monitor.record("gpt-4o-mini", latency_ms=100, ok=True)
    monitor.record("gpt-4o", latency_ms=200, ok=True)  # forgets gpt-4o-mini's id
    monitor.record("gpt-4o-mini", latency_ms=300, ok=True)  # looked up again
    assert monitor._catalog_ids == {"gpt-4o-mini": "gpt-4o-mini"}
    assert catalog.get("gpt-4o-mini").latency_ms == pytest.approx(140.0)

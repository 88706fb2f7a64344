from __future__ import annotations

import random
import time

import pytest

from aipowertools.core import ProviderMonitor
from aipowertools.core._monitor import Alert
from aipowertools.core._sketch import LatencySketch
from aipowertools.core.errors import ConfigurationError, ErrorKind


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_sketch_quantiles_within_relative_error_and_merge_exact() -> None:
    rng = random.Random(7)
    values = [rng.lognormvariate(6, 1) for _ in range(20_000)]
    a, b, whole = LatencySketch(0.01), LatencySketch(0.01), LatencySketch(0.01)
    for i, v in enumerate(values):
        (a if i % 2 else b).add(v)
        whole.add(v)
    a.merge(b)
    ordered = sorted(values)
    for q in (0.5, 0.95, 0.99):
        true = ordered[int(q * (len(ordered) - 1))]
        got = a.quantile(q)
        assert got is not None
        assert abs(got - true) / true <= 0.011
        assert got == whole.quantile(q)
    assert a.count == 20_000
    assert a.mean == pytest.approx(sum(values) / len(values))
    assert LatencySketch().quantile(0.5) is None
    assert LatencySketch().mean is None
    z = LatencySketch()
    z.add(0)
    z.add(-5)
    z.add(10)
    assert z.quantile(0.0) == 0.0
    assert z.quantile(1.0) == pytest.approx(10, rel=0.01)
    with pytest.raises(ConfigurationError):
        LatencySketch(1.5)
    with pytest.raises(ConfigurationError):
        a.quantile(2)
    with pytest.raises(ConfigurationError):
        a.merge(LatencySketch(0.05))


def test_window_stats() -> None:
    clock = Clock()
    m = ProviderMonitor(window_s=300, clock=clock)
    for i in range(100):
        m.record("openai/gpt-4o", latency_ms=100 + i, ok=True, output_tokens=50, ttft_ms=20 + i)
        clock.t += 1
    m.record("openai/gpt-4o", latency_ms=5000, ok=False, error_kind=ErrorKind.TIMEOUT)
    m.record("openai/gpt-4o", latency_ms=10, ok=False, error_kind="context_window")
    m.set_queue_depth("openai/gpt-4o", 4)
    s = m.stats("openai/gpt-4o")
    assert s.requests == 102
    assert s.errors == 2
    assert s.error_rate == pytest.approx(2 / 102)
    assert s.availability == pytest.approx(1 - 1 / 102)  # the context-window error is ours
    assert s.latency_p50_ms == pytest.approx(150, rel=0.02)
    assert s.latency_p99_ms == pytest.approx(199, rel=0.02)
    assert s.ttft_p50_ms == pytest.approx(70, rel=0.02)
    # 100 calls x 50 tokens over the sum of their latencies
    assert s.tokens_per_second == pytest.approx(5000 / sum((100 + i) / 1000 for i in range(100)))
    assert s.rpm == pytest.approx(62, abs=11)
    assert s.queue_depth == 4
    assert m.deployments() == ["openai/gpt-4o"]
    # the window slides: five minutes later nothing is left
    clock.t += 400
    s = m.stats("openai/gpt-4o")
    assert (s.requests, s.latency_p50_ms, s.rpm, s.error_rate, s.availability) == (
        0,
        None,
        0,
        0.0,
        1.0,
    )
    assert m.stats("unknown").requests == 0


def test_hourly_history() -> None:
    clock = Clock(1_800_000_000.0 - 1_800_000_000.0 % 3600)
    m = ProviderMonitor(clock=clock, history_hours=3)
    for hour in range(5):
        for _ in range(hour + 1):
            m.record("d", latency_ms=100 * (hour + 1), ok=hour != 2)
        clock.t += 3600
    clock.t -= 3600
    hist = m.history("d", hours=24)
    assert [h.requests for h in hist] == [3, 4, 5]  # only three hours are kept
    assert [h.errors for h in hist] == [3, 0, 0]
    assert hist[-1].latency_p50_ms == pytest.approx(500, rel=0.02)
    assert [h.requests for h in m.history("d", hours=1)] == [5]
    assert m.history("nope") == []


def test_down_alert_fires_once_per_outage_with_recovery_time() -> None:
    clock = Clock()
    m = ProviderMonitor(clock=clock, down_after=3, up_after=2)
    fired: list[Alert] = []
    resolved: list[Alert] = []
    m.on_provider_down(fired.append, on_resolved=resolved.append)
    m.record("a", latency_ms=10, ok=True)
    for _ in range(6):
        clock.t += 1
        m.record("a", latency_ms=10, ok=False, error_kind=ErrorKind.TRANSIENT)
    assert [(f.kind, f.deployment, f.value) for f in fired] == [("provider_down", "a", 3.0)]
    assert m.stats("a").down
    m.record("a", latency_ms=10, ok=False, error_kind=ErrorKind.CONTENT_POLICY)  # not health
    assert m.stats("a").consecutive_failures == 6
    clock.t += 4
    m.record("a", latency_ms=10, ok=True)
    assert m.stats("a").down  # hysteresis: needs two successes
    m.record("a", latency_ms=10, ok=True)
    s = m.stats("a")
    assert not s.down
    assert s.last_recovery_s == pytest.approx(9.0)
    assert s.mean_recovery_s == pytest.approx(9.0)
    assert len(resolved) == 1
    assert resolved[0].resolved
    for _ in range(3):
        m.record("a", latency_ms=10, ok=False, error_kind=ErrorKind.RATE_LIMITED)
    assert len(fired) == 2  # a second outage fires again
    m.close()


def test_latency_alert_hysteresis_and_filters() -> None:
    clock = Clock()
    m = ProviderMonitor(clock=clock, window_s=60)
    fired: list[Alert] = []
    cleared: list[Alert] = []
    remove = m.on_high_latency(
        1000, fired.append, deployment="slow", min_requests=3, on_resolved=cleared.append
    )
    for _ in range(5):
        m.record("slow", latency_ms=2000, ok=True)
        m.record("other", latency_ms=9000, ok=True)
    assert len(fired) == 1
    assert fired[0].value == pytest.approx(2000, rel=0.02)
    assert fired[0].threshold == 1000
    clock.t += 63  # the window empties: the condition clears
    m.check()
    assert len(cleared) == 1
    for _ in range(5):
        m.record("slow", latency_ms=900, ok=True)  # under threshold but above clear level
    assert len(fired) == 1
    remove()
    remove()
    clock.t += 63
    for _ in range(5):
        m.record("slow", latency_ms=5000, ok=True)
    assert len(fired) == 1
    with pytest.raises(ConfigurationError):
        m.on_high_latency(100, fired.append, quantile="p90")
    with pytest.raises(ConfigurationError):
        m.on_high_latency(-1, fired.append)
    m.close()


def test_error_rate_alert_and_timer_fires_within_seconds() -> None:
    clock = Clock()
    m = ProviderMonitor(clock=clock, window_s=60, check_interval=0.05)
    for _ in range(10):
        m.record("x", latency_ms=10, ok=False, error_kind=ErrorKind.AUTHENTICATION)
    fired: list[Alert] = []
    m.on_high_error_rate(0.5, fired.append)  # registered after the fact: evaluated at once
    assert [a.kind for a in fired] == ["high_error_rate"]
    cleared: list[Alert] = []
    m2 = ProviderMonitor(clock=clock, window_s=60, check_interval=0.05)
    m2.on_high_error_rate(0.5, fired.append, min_requests=1, on_resolved=cleared.append)
    m2.record("y", latency_ms=10, ok=False)
    assert len(fired) == 2
    clock.t += 120  # nothing recorded any more: only the timer can notice the recovery
    deadline = time.monotonic() + 30  # stops as soon as the 0.05 s timer has run
    while not cleared and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(cleared) == 1
    with pytest.raises(ConfigurationError):
        m.on_high_error_rate(1.5, fired.append)
    m.close()
    m2.close()


def test_failing_callback_is_logged_not_raised(caplog) -> None:
    m = ProviderMonitor(down_after=1)

    def boom(alert: Alert) -> None:
        raise RuntimeError("pager broke")

    m.on_provider_down(boom)
    m.record("z", latency_ms=1, ok=False)  # must not raise
    assert "alert callback" in caplog.text
    m.close()


def test_bad_arguments() -> None:
    m = ProviderMonitor()
    with pytest.raises(ConfigurationError):
        m.record("a", latency_ms=-1, ok=True)
    with pytest.raises(ValueError, match="nonsense"):
        m.record("a", latency_ms=1, ok=False, error_kind="nonsense")
    with pytest.raises(ConfigurationError):
        m.set_queue_depth("a", -1)
    with pytest.raises(ConfigurationError):
        ProviderMonitor(window_s=0)
    with pytest.raises(ConfigurationError):
        ProviderMonitor(check_interval=0)
    with pytest.raises(ConfigurationError):
        ProviderMonitor(alpha=0)


def test_otel_metrics_exported() -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    m = ProviderMonitor(meter_provider=MeterProvider(metric_readers=[reader]))
    m.record(
        "openai/gpt-4o",
        latency_ms=1500,
        ok=True,
        input_tokens=10,
        output_tokens=5,
        cost_usd=0.25,
        provider="openai",
        model="gpt-4o",
    )
    m.record("openai/gpt-4o", latency_ms=100, ok=False, error_kind=ErrorKind.TIMEOUT)
    data = reader.get_metrics_data()
    metrics = {
        metric.name: metric
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
    }
    duration = metrics["gen_ai.client.operation.duration"]
    assert sum(p.count for p in duration.data.data_points) == 2
    assert {p.attributes.get("error.type") for p in duration.data.data_points} == {None, "timeout"}
    tokens = {
        p.attributes["gen_ai.token.type"]: p.sum
        for p in metrics["gen_ai.client.token.usage"].data.data_points
    }
    assert tokens == {"input": 10, "output": 5}
    (cost,) = metrics["aipowertools.gen_ai.client.cost"].data.data_points
    assert cost.value == pytest.approx(0.25)
    assert cost.attributes["gen_ai.provider.name"] == "openai"


def test_sliding_window_forgets_exactly_what_expired() -> None:
    clock = Clock(1_800_000_000.0)
    m = ProviderMonitor(window_s=60, clock=clock)
    for _ in range(50):
        m.record("d", latency_ms=5000, ok=False, ttft_ms=900)  # old, slow, failing
    clock.t += 30
    fresh = LatencySketch()
    for i in range(50):
        m.record("d", latency_ms=100 + i, ok=True, output_tokens=10)
        fresh.add(100 + i)
    clock.t += 35  # the first batch has left the window, the second has not
    s = m.stats("d")
    assert (s.requests, s.errors, s.availability) == (50, 0, 1.0)
    assert s.latency_p50_ms == fresh.quantile(0.5)
    assert s.latency_p99_ms == fresh.quantile(0.99)
    assert s.ttft_p50_ms is None
    clock.t += 60
    m.record("d", latency_ms=7, ok=True)
    s = m.stats("d")
    assert s.requests == 1
    assert s.latency_p50_ms == pytest.approx(7, rel=0.01)
    assert m.history("d")[0].requests == 101  # the hour still has everything

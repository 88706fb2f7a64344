"""Provider health: latency and TTFT quantiles, throughput, error rate, availability, alerts.

``ProviderMonitor`` keeps, per deployment, a ring of short time buckets covering a sliding
window and one bucket per hour for history. Each bucket holds counters and two
:class:`LatencySketch` es (latency, time to first token): log-spaced histograms in the style of
DDSketch, with a bounded relative error, which merge (and un-merge) by adding (subtracting)
counts. The window's running totals are kept by adding each call and subtracting each bucket
that expires, so reading the window does not depend on how many buckets it spans; nothing
keeps a sorted list of samples.

Alerts (provider down, high latency, high error rate) fire once per crossing, with hysteresis,
when a call is recorded and from a background timer (so a condition that only changes with
time, or an alert registered late, is seen within ``check_interval`` seconds).

Figures are also exported as OpenTelemetry metrics through ``opentelemetry-api``
(``gen_ai.client.operation.duration``, ``gen_ai.client.token.usage``, a cost counter); they are
no-ops until an SDK meter provider is installed.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aipowertools.core._catalog import ModelCatalog, default_catalog
from aipowertools.core._sketch import LatencySketch
from aipowertools.core.errors import ConfigurationError, ErrorKind, UnknownModelError

_log = logging.getLogger("aipowertools.core.monitor")

# Error kinds that say something about the request rather than the provider's health.
_REQUEST_ERRORS = frozenset({ErrorKind.CONTEXT_WINDOW, ErrorKind.CONTENT_POLICY})


class _Bucket:
    __slots__ = (
        "avail_errors",
        "errors",
        "gen_seconds",
        "latency",
        "latency_sum",
        "output_tokens",
        "requests",
        "start",
        "ttft",
    )

    def __init__(self, start: float, alpha: float) -> None:
        self.start = start
        self.requests = 0
        self.errors = 0
        self.avail_errors = 0
        self.output_tokens = 0
        self.gen_seconds = 0.0
        self.latency = LatencySketch(alpha)
        self.latency_sum = 0.0
        self.ttft = LatencySketch(alpha)

    def add(
        self,
        latency_ms: float,
        ttft_ms: float | None,
        ok: bool,
        output_tokens: int,
        kind: ErrorKind | None,
    ) -> None:
        self.requests += 1
        self.latency.add(latency_ms)
        self.latency_sum += latency_ms
        if ttft_ms is not None:
            self.ttft.add(ttft_ms)
        if ok:
            self.output_tokens += output_tokens
            self.gen_seconds += latency_ms / 1000.0
        else:
            self.errors += 1
            if kind not in _REQUEST_ERRORS:
                self.avail_errors += 1

    def subtract(self, other: _Bucket) -> None:
        self.requests -= other.requests
        self.errors -= other.errors
        self.avail_errors -= other.avail_errors
        self.output_tokens -= other.output_tokens
        self.gen_seconds = max(0.0, self.gen_seconds - other.gen_seconds)
        self.latency.subtract(other.latency)
        self.latency_sum = max(0.0, self.latency_sum - other.latency_sum) if self.requests else 0.0
        self.ttft.subtract(other.ttft)


@dataclass(frozen=True)
class ProviderStats:
    """Health figures of one deployment over the sliding window (or one hour of history).

    Latencies are in milliseconds; a quantile is ``None`` when there is no sample.

    Attributes:
        deployment: The deployment (provider/model) name.
        window_s: Length of the window the figures cover, in seconds.
        requests: Calls recorded in the window.
        errors: Failed calls in the window.
        error_rate: ``errors / requests`` (0.0 with no calls).
        availability: Share of calls not failed by the provider (rate limits, timeouts, 5xx,
            auth); request errors such as context-window overflow do not count against it.
        latency_p50_ms: Median latency.
        latency_p95_ms: 95th percentile latency.
        latency_p99_ms: 99th percentile latency.
        ttft_p50_ms: Median time to first token (streaming calls).
        ttft_p95_ms: 95th percentile time to first token.
        ttft_p99_ms: 99th percentile time to first token.
        tokens_per_second: Output tokens per second of successful calls.
        rpm: Requests in the last minute.
        queue_depth: Last queue depth reported with ``set_queue_depth`` (``None`` if unknown).
        down: Whether the deployment is considered down.
        consecutive_failures: Failures since the last success.
        last_recovery_s: How long the last outage lasted (first failure to next success).
        mean_recovery_s: Mean outage duration.
        start: Start of the period (epoch seconds).
        latency_mean_ms: Mean latency (``None`` when there is no sample).
    """

    deployment: str
    window_s: float
    requests: int
    errors: int
    error_rate: float
    availability: float
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None
    ttft_p99_ms: float | None
    tokens_per_second: float | None
    rpm: float
    queue_depth: int | None = None
    down: bool = False
    consecutive_failures: int = 0
    last_recovery_s: float | None = None
    mean_recovery_s: float | None = None
    start: float = 0.0
    latency_mean_ms: float | None = None


@dataclass(frozen=True)
class Alert:
    """What an alert callback receives.

    Attributes:
        kind: ``"provider_down"``, ``"high_latency"`` or ``"high_error_rate"``.
        deployment: The deployment concerned.
        value: The figure that crossed (latency ms, error rate, consecutive failures).
        threshold: The threshold it crossed.
        stats: The deployment's stats at that moment.
        resolved: ``False`` when the condition starts, ``True`` when it clears.
    """

    kind: str
    deployment: str
    value: float
    threshold: float
    stats: ProviderStats
    resolved: bool = False


@dataclass
class _Rule:
    kind: str
    threshold: float
    clear: float
    callback: Callable[[Alert], object]
    deployment: str | None
    quantile: str = "latency_p95_ms"
    min_requests: int = 1
    on_resolved: Callable[[Alert], object] | None = None
    active: set[str] = field(default_factory=set)


class _Deployment:
    def __init__(self, name: str, alpha: float) -> None:
        self.name = name
        self.window: deque[_Bucket] = deque()
        # Running totals of every bucket in ``window`` (added on record, subtracted on expiry),
        # so reading the window costs the same however many buckets it spans.
        self.total = _Bucket(0.0, alpha)
        self.hours: deque[_Bucket] = deque()
        self.queue_depth: int | None = None
        self.consecutive_failures = 0
        self.consecutive_successes = 0
        self.down = False
        self.outage_start: float | None = None
        self.recoveries: list[float] = []


class ProviderMonitor:
    """Live health of providers/deployments, with alerts and OpenTelemetry metrics.

    Args:
        window_s: Length of the sliding window for stats, in seconds.
        history_hours: Hours of hourly history to keep.
        down_after: Consecutive provider failures after which a deployment is down.
        up_after: Consecutive successes after which a down deployment is up again.
        alpha: Relative accuracy of the latency sketches.
        check_interval: Seconds between timer evaluations of alerts.
        clock: Time source (epoch seconds); for tests.
        meter_provider: OpenTelemetry meter provider; the global one by default.
        catalog: Where the latencies of successful calls are taught (``ModelCatalog.
            record_latency``), so ``catalog.by_latency()`` knows them: ``True`` (default)
            the process-wide ``default_catalog()``, a ``ModelCatalog`` of your own, or
            ``False`` to teach none. A deployment the catalog does not know (by ``model=``
            when given, else by its name) is skipped.

    Example:
        >>> monitor = ProviderMonitor()
        >>> monitor.record("openai/gpt-4o", latency_ms=820, ok=True, output_tokens=120)
        >>> monitor.stats("openai/gpt-4o").requests
        1
    """

    _max_catalog_names = 10_000  # deployment names whose catalog id is remembered

    def __init__(
        self,
        *,
        window_s: float = 300.0,
        history_hours: int = 24,
        down_after: int = 3,
        up_after: int = 1,
        alpha: float = 0.01,
        check_interval: float = 1.0,
        clock: Callable[[], float] = time.time,
        meter_provider: Any = None,
        catalog: ModelCatalog | bool = True,
    ) -> None:
        if window_s <= 0 or history_hours < 1 or down_after < 1 or up_after < 1:
            raise ConfigurationError(
                "window_s must be > 0 and history_hours, down_after, up_after >= 1"
            )
        if check_interval <= 0:
            raise ConfigurationError("check_interval must be > 0 seconds")
        LatencySketch(alpha)  # validates alpha
        self.window_s = float(window_s)
        self._bucket_s = self.window_s / 30
        self._history_hours = history_hours
        self._down_after = down_after
        self._up_after = up_after
        self._alpha = alpha
        self._check_interval = check_interval
        self._clock = clock
        self._meter_provider = meter_provider
        self._instruments: tuple[Any, Any, Any] | None = None
        self._lock = threading.RLock()
        self._deployments: dict[str, _Deployment] = {}
        self._rules: list[_Rule] = []
        self._timer: threading.Thread | None = None
        self._stop = threading.Event()
        if not isinstance(catalog, ModelCatalog | bool):
            raise ConfigurationError(
                f"catalog must be a ModelCatalog, True (the default catalog) or False, "
                f"got {type(catalog).__name__}"
            )
        self._catalog = catalog
        self._catalog_ids: dict[str, str | None] = {}  # name -> catalog id (None: unknown)

    # recording ---------------------------------------------------------------------------
    def record(
        self,
        deployment: str,
        *,
        latency_ms: float,
        ttft_ms: float | None = None,
        ok: bool,
        output_tokens: int = 0,
        error_kind: ErrorKind | str | None = None,
        input_tokens: int = 0,
        cost_usd: float = 0.0,
        provider: str | None = None,
        model: str | None = None,
        operation: str = "chat",
    ) -> None:
        """Record one finished call.

        Args:
            deployment: Name of the deployment (e.g. ``"openai/gpt-4o"``).
            latency_ms: Wall time of the call.
            ttft_ms: Time to first token, for streaming calls.
            ok: Whether the call succeeded.
            output_tokens: Output tokens produced.
            error_kind: The classified error of a failed call.
            input_tokens: Input tokens (exported as metrics).
            cost_usd: Cost of the call (exported as metrics).
            provider: Provider name for metric attributes.
            model: Model name for metric attributes.
            operation: GenAI operation name for metric attributes.
        """
        if latency_ms < 0 or (ttft_ms is not None and ttft_ms < 0) or output_tokens < 0:
            raise ConfigurationError(
                f"record({deployment!r}): latency_ms, ttft_ms and output_tokens must be >= 0"
            )
        kind = ErrorKind(error_kind) if error_kind is not None else None
        now = self._clock()
        with self._lock:
            dep = self._deployment(deployment)
            self._trim_window(dep, now)
            self._trim_hours(dep.hours, now)
            for bucket in (
                self._current(dep.window, now, self._bucket_s),
                self._current(dep.hours, now, 3600.0),
                dep.total,
            ):
                bucket.add(latency_ms, ttft_ms, ok, output_tokens, kind)
            self._update_health(dep, ok, kind, now)
        if ok and self._catalog is not False:
            self._teach_catalog(model or deployment, latency_ms)
        self._export(
            deployment,
            latency_ms,
            ok,
            kind,
            input_tokens,
            output_tokens,
            cost_usd,
            provider,
            model,
            operation,
        )
        self._evaluate([deployment])

    def _teach_catalog(self, name: str, latency_ms: float) -> None:
        catalog = default_catalog() if self._catalog is True else self._catalog
        assert isinstance(catalog, ModelCatalog)
        if name not in self._catalog_ids:
            try:
                found: str | None = catalog.get(name).id
            except (UnknownModelError, ConfigurationError):
                found = None
            if len(self._catalog_ids) >= self._max_catalog_names:  # bounded: drop the oldest
                del self._catalog_ids[next(iter(self._catalog_ids))]
            self._catalog_ids[name] = found
        model_id = self._catalog_ids[name]
        if model_id is not None:
            catalog.record_latency(model_id, latency_ms)

    def average_latency_ms(self, deployment: str) -> float | None:
        """Mean latency of ``deployment`` over the sliding window (``None``: no call).

        The roadmap's ``avgLatency``; also ``stats(deployment).latency_mean_ms``.
        """
        return self.stats(deployment).latency_mean_ms

    def set_queue_depth(self, deployment: str, depth: int) -> None:
        """Report how many requests wait for ``deployment`` (e.g. in a rate limiter)."""
        if depth < 0:
            raise ConfigurationError(f"queue depth must be >= 0, got {depth}")
        with self._lock:
            self._deployment(deployment).queue_depth = depth

    def _deployment(self, name: str) -> _Deployment:
        dep = self._deployments.get(name)
        if dep is None:
            dep = self._deployments[name] = _Deployment(name, self._alpha)
        return dep

    def _current(self, ring: deque[_Bucket], now: float, width: float) -> _Bucket:
        start = math.floor(now / width) * width
        if not ring or ring[-1].start < start:
            ring.append(_Bucket(start, self._alpha))
        # (a clock that went backwards counts in the newest bucket)
        return ring[-1]

    def _trim_window(self, dep: _Deployment, now: float) -> None:
        ring = dep.window
        while ring and ring[0].start + self._bucket_s <= now - self.window_s:
            dep.total.subtract(ring.popleft())

    def _trim_hours(self, ring: deque[_Bucket], now: float) -> None:
        while ring and ring[0].start <= now - self._history_hours * 3600.0:
            ring.popleft()

    def _update_health(
        self, dep: _Deployment, ok: bool, kind: ErrorKind | None, now: float
    ) -> None:
        if ok:
            dep.consecutive_failures = 0
            dep.consecutive_successes += 1
            if dep.outage_start is not None and (
                not dep.down or dep.consecutive_successes >= self._up_after
            ):
                dep.recoveries.append(now - dep.outage_start)
                dep.outage_start = None
            if dep.down and dep.consecutive_successes >= self._up_after:
                dep.down = False
            return
        if kind in _REQUEST_ERRORS:
            return  # the provider answered; the request was at fault
        dep.consecutive_successes = 0
        dep.consecutive_failures += 1
        if dep.outage_start is None:
            dep.outage_start = now
        if dep.consecutive_failures >= self._down_after:
            dep.down = True

    # reading -----------------------------------------------------------------------------
    def deployments(self) -> list[str]:
        """Names of every deployment seen."""
        with self._lock:
            return sorted(self._deployments)

    def stats(self, deployment: str) -> ProviderStats:
        """Figures of ``deployment`` over the sliding window."""
        now = self._clock()
        with self._lock:
            dep = self._deployments.get(deployment) or _Deployment(deployment, self._alpha)
            self._trim_window(dep, now)
            last_minute = sum(
                b.requests for b in dep.window if b.start + self._bucket_s > now - 60.0
            )
            rpm = last_minute / min(60.0, self.window_s) * 60.0
            return self._figures(dep, dep.total, self.window_s, rpm, start=now - self.window_s)

    def history(self, deployment: str, hours: int = 24) -> list[ProviderStats]:
        """Hourly figures of ``deployment`` for the last ``hours`` hours, oldest first."""
        now = self._clock()
        with self._lock:
            dep = self._deployments.get(deployment)
            if dep is None:
                return []
            self._trim_hours(dep.hours, now)
            cutoff = math.floor(now / 3600.0) * 3600.0 - (hours - 1) * 3600.0
            return [
                self._figures(dep, b, 3600.0, b.requests / 60.0, live=False)
                for b in dep.hours
                if b.start >= cutoff
            ]

    def _figures(
        self,
        dep: _Deployment,
        b: _Bucket,
        window: float,
        rpm: float,
        *,
        live: bool = True,
        start: float | None = None,
    ) -> ProviderStats:
        lat = b.latency.quantiles((0.5, 0.95, 0.99))
        ttft = b.ttft.quantiles((0.5, 0.95, 0.99))
        recoveries = dep.recoveries
        return ProviderStats(
            deployment=dep.name,
            window_s=window,
            requests=b.requests,
            errors=b.errors,
            error_rate=b.errors / b.requests if b.requests else 0.0,
            availability=1.0 - b.avail_errors / b.requests if b.requests else 1.0,
            latency_p50_ms=lat[0],
            latency_p95_ms=lat[1],
            latency_p99_ms=lat[2],
            ttft_p50_ms=ttft[0],
            ttft_p95_ms=ttft[1],
            ttft_p99_ms=ttft[2],
            tokens_per_second=b.output_tokens / b.gen_seconds if b.gen_seconds > 0 else None,
            rpm=rpm,
            queue_depth=dep.queue_depth if live else None,
            down=dep.down if live else False,
            consecutive_failures=dep.consecutive_failures if live else 0,
            last_recovery_s=recoveries[-1] if recoveries and live else None,
            mean_recovery_s=sum(recoveries) / len(recoveries) if recoveries and live else None,
            start=b.start if start is None else start,
            latency_mean_ms=b.latency_sum / b.requests if b.requests else None,
        )

    # alerts ------------------------------------------------------------------------------
    def on_provider_down(
        self,
        callback: Callable[[Alert], object],
        *,
        deployment: str | None = None,
        on_resolved: Callable[[Alert], object] | None = None,
    ) -> Callable[[], None]:
        """Call ``callback`` when a deployment goes down (``down_after`` failures in a row).

        It fires once per outage; ``on_resolved`` is called when the deployment is up again.
        Returns a function that removes the alert.
        """
        return self._add(
            _Rule(
                "provider_down", self._down_after, 0, callback, deployment, on_resolved=on_resolved
            )
        )

    def on_high_latency(
        self,
        threshold_ms: float,
        callback: Callable[[Alert], object],
        *,
        deployment: str | None = None,
        quantile: str = "p95",
        clear_ratio: float = 0.8,
        min_requests: int = 5,
        on_resolved: Callable[[Alert], object] | None = None,
    ) -> Callable[[], None]:
        """Call ``callback`` when a latency quantile over the window exceeds ``threshold_ms``.

        Fires once per crossing; re-arms when the quantile falls below
        ``threshold_ms * clear_ratio`` (hysteresis). ``quantile`` is ``"p50"``, ``"p95"`` or
        ``"p99"``; fewer than ``min_requests`` calls in the window never alert.
        """
        if quantile not in ("p50", "p95", "p99"):
            raise ConfigurationError(f"quantile must be 'p50', 'p95' or 'p99', not {quantile!r}")
        if threshold_ms <= 0 or not 0 < clear_ratio <= 1:
            raise ConfigurationError("threshold_ms must be > 0 and clear_ratio in (0, 1]")
        return self._add(
            _Rule(
                "high_latency",
                threshold_ms,
                threshold_ms * clear_ratio,
                callback,
                deployment,
                f"latency_{quantile}_ms",
                min_requests,
                on_resolved,
            )
        )

    def on_high_error_rate(
        self,
        threshold: float,
        callback: Callable[[Alert], object],
        *,
        deployment: str | None = None,
        clear_ratio: float = 0.5,
        min_requests: int = 5,
        on_resolved: Callable[[Alert], object] | None = None,
    ) -> Callable[[], None]:
        """Call ``callback`` when the window's error rate exceeds ``threshold`` (0..1).

        Fires once per crossing; re-arms when the rate falls below ``threshold * clear_ratio``.
        """
        if not 0 < threshold < 1 or not 0 < clear_ratio <= 1:
            raise ConfigurationError("threshold must be in (0, 1) and clear_ratio in (0, 1]")
        return self._add(
            _Rule(
                "high_error_rate",
                threshold,
                threshold * clear_ratio,
                callback,
                deployment,
                "error_rate",
                min_requests,
                on_resolved,
            )
        )

    def _add(self, rule: _Rule) -> Callable[[], None]:
        with self._lock:
            self._rules.append(rule)
            self._ensure_timer()

        def remove() -> None:
            with self._lock:
                if rule in self._rules:
                    self._rules.remove(rule)

        self._evaluate(None)
        return remove

    def _ensure_timer(self) -> None:
        if self._timer is None or not self._timer.is_alive():
            self._stop.clear()
            ref = weakref.ref(self)
            interval = self._check_interval
            stop = self._stop
            self._timer = threading.Thread(
                target=_timer_loop,
                args=(ref, stop, interval),
                name="aipowertools-monitor",
                daemon=True,
            )
            self._timer.start()

    def close(self) -> None:
        """Stop the alert timer."""
        self._stop.set()
        timer = self._timer
        if timer is not None and timer is not threading.current_thread():
            timer.join(2.0)

    def check(self) -> None:
        """Evaluate every alert now (the timer does this every ``check_interval`` seconds)."""
        self._evaluate(None)

    def _evaluate(self, names: Iterable[str] | None) -> None:
        fire: list[tuple[Callable[[Alert], object], Alert]] = []
        with self._lock:
            if not self._rules:
                return
            targets = list(self._deployments) if names is None else list(names)
            for name in targets:
                stats = self.stats(name)
                for rule in self._rules:
                    if rule.deployment is not None and rule.deployment != name:
                        continue
                    alert = self._judge(rule, stats)
                    if alert is None:
                        continue
                    if alert.resolved:
                        rule.active.discard(name)
                        if rule.on_resolved is not None:
                            fire.append((rule.on_resolved, alert))
                    else:
                        rule.active.add(name)
                        fire.append((rule.callback, alert))
        for callback, alert in fire:
            try:
                callback(alert)
            except Exception:
                _log.exception("alert callback for %s %s failed", alert.kind, alert.deployment)

    def _judge(self, rule: _Rule, stats: ProviderStats) -> Alert | None:
        name = stats.deployment
        active = name in rule.active
        if rule.kind == "provider_down":
            value = float(stats.consecutive_failures)
            if stats.down and not active:
                return Alert(rule.kind, name, value, rule.threshold, stats)
            if not stats.down and active:
                return Alert(rule.kind, name, value, rule.threshold, stats, resolved=True)
            return None
        figure = getattr(stats, rule.quantile)
        enough = stats.requests >= rule.min_requests
        if not active and enough and figure is not None and figure > rule.threshold:
            return Alert(rule.kind, name, float(figure), rule.threshold, stats)
        if active and (figure is None or figure < rule.clear or not stats.requests):
            return Alert(
                rule.kind, name, float(figure or 0.0), rule.threshold, stats, resolved=True
            )
        return None

    # OpenTelemetry -----------------------------------------------------------------------
    def _export(
        self,
        deployment: str,
        latency_ms: float,
        ok: bool,
        kind: ErrorKind | None,
        input_tokens: int,
        output_tokens: int,
        cost_usd: float,
        provider: str | None,
        model: str | None,
        operation: str,
    ) -> None:
        try:
            if self._instruments is None:
                from opentelemetry import metrics

                meter = (self._meter_provider or metrics.get_meter_provider()).get_meter(
                    "aipowertools.core"
                )
                self._instruments = (
                    meter.create_histogram(
                        "gen_ai.client.operation.duration",
                        unit="s",
                        description="GenAI operation duration",
                    ),
                    meter.create_histogram(
                        "gen_ai.client.token.usage",
                        unit="{token}",
                        description="Measures number of input and output tokens used",
                    ),
                    meter.create_counter(
                        "aipowertools.gen_ai.client.cost",
                        unit="USD",
                        description="Cost of GenAI calls in US dollars",
                    ),
                )
            duration, tokens, cost = self._instruments
            attrs: dict[str, str] = {
                "gen_ai.operation.name": operation,
                "aipowertools.deployment": deployment,
            }
            if provider:
                attrs["gen_ai.provider.name"] = provider
            if model:
                attrs["gen_ai.request.model"] = model
            if not ok:
                attrs["error.type"] = kind.value if kind is not None else "error"
            duration.record(latency_ms / 1000.0, attrs)
            if input_tokens:
                tokens.record(input_tokens, {**attrs, "gen_ai.token.type": "input"})
            if output_tokens:
                tokens.record(output_tokens, {**attrs, "gen_ai.token.type": "output"})
            if cost_usd:
                cost.add(cost_usd, attrs)
        except Exception:  # pragma: no cover - metrics must never break a call
            _log.debug("exporting provider metrics failed", exc_info=True)


def _timer_loop(
    ref: weakref.ReferenceType[ProviderMonitor], stop: threading.Event, interval: float
) -> None:
    while not stop.wait(interval):
        monitor = ref()
        if monitor is None:
            return
        try:
            monitor.check()
        except Exception:  # pragma: no cover - the timer must keep running
            _log.exception("provider monitor check failed")
        del monitor

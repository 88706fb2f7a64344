"""What the simulated provider saw: per-request records and counters."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["ModelStats", "RequestRecord", "SimStats", "StatsBook"]


@dataclass
class RequestRecord:
    """One request as the simulator saw it.

    Attributes:
        id: Sequence number of the request (starts at 1).
        model: Name of the simulated model that handled it ("" when unknown).
        flavor: Wire format: ``"openai"``, ``"anthropic"`` or ``"ollama"``.
        path: HTTP path.
        stream: Whether a stream was asked for.
        status: HTTP status sent (0 when no response was sent: hang, disconnect, cancel).
        fault: Kind of the injected fault, if any.
        prompt_tokens: Prompt tokens counted.
        completion_tokens: Completion tokens of the reply (0 on errors).
        cached_tokens: Prompt tokens reported as read from the prompt cache.
        cache_creation_tokens: Prompt tokens reported as written to the prompt cache.
        started_at: Wall-clock start (``time.time()``).
        latency_ms: Time until the handler finished.
        cancelled: Whether the client went away before the answer was complete.
    """

    id: int
    model: str
    flavor: str
    path: str
    stream: bool = False
    status: int = 0
    fault: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_creation_tokens: int = 0
    started_at: float = 0.0
    latency_ms: float = 0.0
    cancelled: bool = False


@dataclass
class ModelStats:
    """Counters for one simulated model."""

    requests: int = 0
    served: int = 0
    rate_limited: int = 0
    errors: int = 0
    cancelled: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    in_flight: int = 0
    concurrent_peak: int = 0


@dataclass
class SimStats:
    """A snapshot of the simulator's counters.

    Attributes:
        requests: Chat requests received (all models).
        served: Requests answered with a success (2xx).
        rate_limited: Requests answered with 429 (enforced limits and injected faults).
        errors: Requests answered with any other error status.
        cancelled: Requests whose client went away before the answer was complete.
        faults: Injected faults by kind.
        status_counts: Responses by HTTP status.
        prompt_tokens: Prompt tokens of served requests.
        completion_tokens: Completion tokens of served requests.
        in_flight: Requests being handled right now.
        concurrent_peak: Most requests handled at the same time.
        by_model: The same counters per model.
    """

    requests: int = 0
    served: int = 0
    rate_limited: int = 0
    errors: int = 0
    cancelled: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    status_counts: dict[int, int] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    in_flight: int = 0
    concurrent_peak: int = 0
    by_model: dict[str, ModelStats] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The snapshot as plain JSON-ready data (what ``GET /_sim/stats`` returns)."""
        data = asdict(self)
        data["status_counts"] = {str(k): v for k, v in self.status_counts.items()}
        return data


class StatsBook:
    """Thread-safe counters, written by the server thread and read by tests."""

    def __init__(self, keep: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._records: deque[RequestRecord] = deque(maxlen=keep)
        self._totals = SimStats()
        self._next_id = 0

    def begin(self, model: str, flavor: str, path: str, stream: bool, now: float) -> RequestRecord:
        with self._lock:
            self._next_id += 1
            record = RequestRecord(self._next_id, model, flavor, path, stream, started_at=now)
            totals = self._totals
            per = totals.by_model.setdefault(model, ModelStats())
            for bucket in (totals, per):
                bucket.requests += 1
                bucket.in_flight += 1
                bucket.concurrent_peak = max(bucket.concurrent_peak, bucket.in_flight)
            self._records.append(record)
            return record

    def end(self, record: RequestRecord) -> None:
        with self._lock:
            totals = self._totals
            per = totals.by_model.setdefault(record.model, ModelStats())
            if record.status:
                totals.status_counts[record.status] = totals.status_counts.get(record.status, 0) + 1
            for bucket in (totals, per):
                bucket.in_flight -= 1
                if record.fault:
                    bucket.faults[record.fault] = bucket.faults.get(record.fault, 0) + 1
                if record.cancelled:
                    bucket.cancelled += 1
                elif 200 <= record.status < 300:
                    bucket.served += 1
                    bucket.prompt_tokens += record.prompt_tokens
                    bucket.completion_tokens += record.completion_tokens
                elif record.status == 429:
                    bucket.rate_limited += 1
                elif record.status:
                    bucket.errors += 1

    def snapshot(self) -> SimStats:
        with self._lock:
            totals = self._totals
            return SimStats(
                requests=totals.requests,
                served=totals.served,
                rate_limited=totals.rate_limited,
                errors=totals.errors,
                cancelled=totals.cancelled,
                faults=dict(totals.faults),
                status_counts=dict(totals.status_counts),
                prompt_tokens=totals.prompt_tokens,
                completion_tokens=totals.completion_tokens,
                in_flight=totals.in_flight,
                concurrent_peak=totals.concurrent_peak,
                by_model={
                    name: ModelStats(**{**asdict(m), "faults": dict(m.faults)})
                    for name, m in totals.by_model.items()
                },
            )

    def records(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def reset(self) -> None:
        with self._lock:
            in_flight = {name: m.in_flight for name, m in self._totals.by_model.items()}
            self._records.clear()
            self._totals = SimStats(in_flight=sum(in_flight.values()))
            for name, count in in_flight.items():
                if count:
                    self._totals.by_model[name] = ModelStats(in_flight=count)

"""The roadmap's interfaces under their Python names (docs/getting-started.md has the table).

python examples/roadmap_names.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from aipowertools.callbacks import StructuredLogger
from aipowertools.core import ModelCatalog, ProviderMonitor
from aipowertools.resilience import CircuitBreaker, RateLimiter, RequestQueue


def main() -> None:
    # CircuitBreaker.setState -> set_state
    breaker = CircuitBreaker("payments-llm", recovery_timeout=30)
    breaker.set_state("open")
    print("breaker forced:", breaker.state.value, "| available:", breaker.available())
    breaker.set_state("closed")

    # RateLimiter.getRemainingTokens / getRetryAfter -> remaining_tokens / retry_after
    limiter = RateLimiter(tokens_per_minute=10_000, requests_per_minute=600, smooth=False)
    limiter.try_acquire("gpt-4o", tokens=9_000)
    print("remaining tokens:", limiter.remaining_tokens("gpt-4o"))
    wait = limiter.retry_after("gpt-4o", tokens=2_000)
    print(f"retry after (2000 tokens): {wait:.0f} s")

    # RequestQueue: enqueue / dequeue / average wait / throughput
    queue: RequestQueue[str] = RequestQueue()
    for job in ("nightly report", "user question", "re-index"):
        queue.enqueue(job, priority="high" if job == "user question" else "low")
    print("first out:", queue.dequeue(), "| left:", len(queue))
    stats = queue.stats()
    print(f"average wait {stats.average_wait_s:.4f} s, throughput {stats.throughput_per_s:.1f}/s")

    # ProviderMonitor.avgLatency and ModelRegistry.getByLatency, fed by the monitor
    catalog = ModelCatalog()
    monitor = ProviderMonitor(catalog=catalog)
    for ms in (420, 380, 400):
        monitor.record("gpt-4o-mini", latency_ms=ms, ok=True, output_tokens=50)
    monitor.record("gpt-4o", latency_ms=1_900, ok=True, output_tokens=50)
    average = monitor.average_latency_ms("gpt-4o-mini")
    print(f"average latency gpt-4o-mini: {average:.0f} ms")
    print("under 1 s:", [m.id for m in catalog.by_latency(1_000)])

    # RequestLogger.exportLogs(format) -> StructuredLogger.export(format=...)
    with tempfile.TemporaryDirectory() as tmp:
        log = StructuredLogger("roadmap", store=f"sqlite:///{Path(tmp) / 'events.db'}")
        log.info("llm_call", model="gpt-4o-mini", latency_ms=400)
        print(log.export(format="csv").strip())
        log.close()


if __name__ == "__main__":
    main()

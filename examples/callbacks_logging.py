"""StructuredLogger: context, redaction, query, a tamper-evident audit trail, provider alerts.

python examples/callbacks_logging.py
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import sys
import tempfile
from pathlib import Path

from aipowertools.callbacks import ConsoleSink, SQLiteSink, StructuredLogger
from aipowertools.core import ProviderMonitor


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "events.db"
        log = StructuredLogger(
            "my_module",
            store=SQLiteSink(db),
            sinks=[ConsoleSink(sys.stdout, pretty=True)],
            redact_patterns=[r"ACME-[0-9a-f]{8}"],
        )
        log.set_context(user_id="user123", session_id="sess456")
        log.info(
            "llm_call_started",
            model="gpt-4o",
            tokens=1500,
            provider="openai",
            api_key="sk-proj-0123456789abcdefghij",
            note="internal id ACME-1a2b3c4d",
        )
        log.metric("code_generation_quality", value=0.85, tags={"model": "gpt-4o"})
        for action in ("create_pr", "merge_pr", "deploy"):
            log.audit(
                "security_event",
                action=action,
                resource="repo/x",
                actor="user123",
                result="success",
            )

        today = dt.datetime.now(dt.timezone.utc).date().isoformat()
        events = log.query(
            event_type="llm_call_started",
            start_time=today,
            end_time=today,
            filters={"model": "gpt-4o"},
        )
        print(f"found {len(events)} gpt-4o call(s); api_key stored as {events[0]['api_key']!r}")
        report = log.verify()
        print(f"audit chain: ok={report.ok}, {report.checked} records")

        # Someone edits the database behind our back...
        with sqlite3.connect(db) as conn:
            conn.execute(
                "UPDATE audit SET payload = replace(payload, 'merge_pr', 'force_push') "
                "WHERE seq = 2"
            )
        report = log.verify()
        print(
            f"after tampering: ok={report.ok}, "
            f"first bad record {report.first_bad_seq}: {report.reason}"
        )
        log.close()

    # Provider health with alerts (fired once per crossing).
    monitor = ProviderMonitor(down_after=3)
    monitor.on_provider_down(
        lambda a: print(f"ALERT {a.kind}: {a.deployment} after {a.value:.0f} failures")
    )
    monitor.on_high_latency(
        1000,
        lambda a: print(f"ALERT {a.kind}: {a.deployment} p95={a.value:.0f} ms"),
        min_requests=3,
    )
    for latency in (800, 1500, 1700, 1600):
        monitor.record("openai/gpt-4o", latency_ms=latency, ok=True, output_tokens=200)
    for _ in range(4):
        monitor.record("anthropic/claude", latency_ms=30_000, ok=False, error_kind="timeout")
    s = monitor.stats("openai/gpt-4o")
    print(
        f"openai/gpt-4o: p50={s.latency_p50_ms:.0f} ms p95={s.latency_p95_ms:.0f} ms, "
        f"{s.tokens_per_second:.0f} tokens/s, availability={s.availability:.0%}"
    )
    monitor.close()


if __name__ == "__main__":
    main()

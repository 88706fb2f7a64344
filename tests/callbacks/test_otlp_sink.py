from __future__ import annotations

import time

from aipowertools.callbacks import OTLPSink, StructuredLogger


def test_otlp_sink_exports_log_records() -> None:
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
    from opentelemetry.sdk.trace import TracerProvider

    exporter = InMemoryLogRecordExporter()
    log = StructuredLogger("otlp", store=None, sinks=[OTLPSink(exporter)])
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("op") as span:
        log.warning("llm_call", model="gpt-4o", tokens=12, tags={"a": 1})
    assert log.flush(5)
    (item,) = exporter.get_finished_logs()
    record = item.log_record
    assert record.body == "llm_call"
    assert record.severity_text == "WARNING"
    assert record.attributes["model"] == "gpt-4o"
    assert record.attributes["tokens"] == 12
    assert record.attributes["tags"] == '{"a":1}'
    assert record.trace_id == span.get_span_context().trace_id
    log.close()


def test_otlp_export_failures_are_retried_and_counted() -> None:
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, LogRecordExportResult

    class Flaky(InMemoryLogRecordExporter):
        fail = True

        def export(self, batch):
            if self.fail:
                return LogRecordExportResult.FAILURE
            return super().export(batch)

    exporter = Flaky()
    log = StructuredLogger("otlp_flaky", store=None, sinks=[OTLPSink(exporter)])
    log.info("one")
    deadline = time.monotonic() + 30  # waits for the writer's first failed export, not 0.3 s
    while log.stats()[0].failures < 1:
        assert time.monotonic() < deadline, "the writer never tried to export"
        time.sleep(0.005)
    assert not log.flush(0.05)  # the exporter still fails: nothing can be flushed
    (st,) = log.stats()
    assert "FAILURE" in (st.last_error or "")
    exporter.fail = False
    assert log.flush(30)
    assert [r.log_record.body for r in exporter.get_finished_logs()] == ["one"]
    log.close()

from __future__ import annotations

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

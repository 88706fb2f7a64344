import aipowertools.callbacks as callbacks
import aipowertools.callbacks.langchain as lc
import aipowertools.callbacks.llama_index as li


def test_public_api_is_locked() -> None:
    assert callbacks.__all__ == [
        "AuditReport",
        "ConsoleSink",
        "FileSink",
        "OTLPSink",
        "PostgresSink",
        "QueryableSink",
        "Redactor",
        "RedisStreamSink",
        "SQLiteSink",
        "Sink",
        "SinkStats",
        "StructuredLogger",
        "__version__",
        "bound_context",
        "clear_context",
        "get_context",
        "set_context",
        "write_events",
    ]
    assert lc.__all__ == [
        "AgentLogMiddleware",
        "AsyncCostCallbackHandler",
        "BudgetMiddleware",
        "CostCallbackHandler",
        "LoggingCallbackHandler",
    ]
    assert li.__all__ == [
        "Instrumentation",
        "LegacyCostCallbackHandler",
        "ObservabilityEventHandler",
        "ObservabilitySpanHandler",
        "instrument",
    ]
    for module in (callbacks, lc, li):
        for name in module.__all__:
            assert hasattr(module, name), name


def test_import_is_light() -> None:
    import subprocess
    import sys

    code = (
        "import sys, aipowertools.callbacks; "
        "print(any(m.split('.')[0] in {'langchain_core', 'llama_index', 'litellm'} "
        "for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

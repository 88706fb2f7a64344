"""LlamaIndex instrumentation and legacy handlers against the simulator."""

from __future__ import annotations

import pytest

from aipowertools.callbacks import StructuredLogger
from aipowertools.core import CostTracker
from aipowertools.testing import SimModel

KEY = "sk-test-not-a-real-key-000000"

# llama_index's LangChain bridge imports langchain-community when it is installed, which warns
# that it is being sunset; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:.*langchain-community.*:DeprecationWarning")


_HTTP_CLIENTS: list = []


@pytest.fixture(autouse=True)
def _close_http_clients():
    """Close the LLMs' HTTP clients, so no connection to a stopped simulator is left to the GC
    (an unclosed socket warns, and warnings are errors)."""
    yield
    while _HTTP_CLIENTS:
        _HTTP_CLIENTS.pop().close()


def _llm(sim, **kw):
    import httpx
    from llama_index.llms.openai import OpenAI

    client = httpx.Client()
    _HTTP_CLIENTS.append(client)
    return OpenAI(
        model="gpt-4o-mini",
        api_base=sim.base_url("openai"),
        api_key=KEY,
        max_retries=0,
        http_client=client,
        **kw,
    )


def _usage(**kw):
    return _llm(additional_kwargs={"stream_options": {"include_usage": True}}, **kw)


def _ledger(tracker):
    records = list(tracker.records())
    return len(records), sum(r.input_tokens for r in records), sum(r.output_tokens for r in records)


def _sim(sim):
    assert sim.wait_idle()  # a streamed answer can end before the simulator has counted it
    st = sim.stats()
    return st.served, st.prompt_tokens, st.completion_tokens


@pytest.fixture
def tracker():
    t = CostTracker(store="memory://")
    yield t
    t.close()


@pytest.fixture
def instrumented(tracker, spans):
    from aipowertools.callbacks.llama_index import instrument

    provider, exporter = spans
    log = StructuredLogger("li", store="memory://")
    handle = instrument(tracker=tracker, logger=log, tracer_provider=provider, user="ann")
    yield log, exporter
    handle.uninstrument()


async def test_chat_and_streams_match_simulator(llm_simulator, tracker, instrumented) -> None:
    from llama_index.core.llms import ChatMessage

    log, exporter = instrumented
    llm_simulator.add_model(SimModel("gpt-4o-mini", reply="LlamaIndex says hello."))
    llm = _llm(llm_simulator, additional_kwargs={"stream_options": {"include_usage": True}})
    msgs = [ChatMessage(role="user", content="hello index")]
    assert llm.chat(msgs).message.content == "LlamaIndex says hello."
    assert "".join(r.delta or "" for r in llm.stream_chat(msgs)) == "LlamaIndex says hello."
    await llm.achat(msgs)
    gen = await llm.astream_chat(msgs)
    async for _ in gen:
        pass
    assert llm.complete("complete this").text == "LlamaIndex says hello."
    assert _ledger(tracker) == _sim(llm_simulator)  # complete() is counted once, not twice
    records = list(tracker.records())
    assert len(records) == 5
    assert all(r.cost_exact for r in records)
    assert {r.user for r in records} == {"ann"}
    chat = [s for s in exporter.get_finished_spans() if s.name.endswith(" gpt-4o-mini")]
    assert len(chat) == 5
    assert sum(s.attributes["gen_ai.usage.input_tokens"] for s in chat) == _sim(llm_simulator)[1]
    assert all(s.attributes["gen_ai.provider.name"] == "openai" for s in chat)
    assert all(s.attributes["gen_ai.response.model"] for s in chat)
    ends = log.query(event_type="chat_model_end")
    assert len(ends) + len(log.query(event_type="llm_end")) == 5
    assert sum(1 for e in ends if e["streamed"]) == 2
    assert all(e["ttft_ms"] <= e["duration_ms"] for e in ends if e["streamed"])


def test_stream_without_usage_is_estimated(llm_simulator, tracker, instrumented) -> None:
    from llama_index.core.llms import ChatMessage

    llm_simulator.add_model(SimModel("gpt-4o-mini", reply="No usage in this stream."))
    llm = _llm(llm_simulator)
    for _ in llm.stream_chat([ChatMessage(role="user", content="count me")]):
        pass
    (record,) = tracker.records()
    assert record.cost_exact is False
    assert record.output_tokens == _sim(llm_simulator)[2]


def test_query_engine_spans_are_parented(llm_simulator, tracker, instrumented) -> None:
    from llama_index.core import Document, VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding

    log, exporter = instrumented
    llm_simulator.add_model(SimModel("gpt-4o-mini", reply="Paris is the capital."))
    index = VectorStoreIndex.from_documents(
        [Document(text="Paris is the capital of France."), Document(text="Berlin is in Germany.")],
        embed_model=MockEmbedding(embed_dim=8),
    )
    engine = index.as_query_engine(llm=_llm(llm_simulator), similarity_top_k=1)
    answer = engine.query("What is the capital of France?")
    assert str(answer) == "Paris is the capital."
    assert _ledger(tracker) == _sim(llm_simulator)
    finished = exporter.get_finished_spans()
    by_id = {s.context.span_id: s for s in finished}
    (chat,) = [s for s in finished if s.name == "chat gpt-4o-mini"]
    chain = []
    node = chat
    while node.parent is not None:
        node = by_id[node.parent.span_id]
        chain.append(node.name)
    assert chain[-1].endswith(".query")  # the query engine's span is the root
    same_trace = {s.name for s in finished if s.context.trace_id == chat.context.trace_id}
    assert any("retrieve" in n for n in same_trace)  # retrieval and the LLM call: one trace
    assert log.query(event_type="retrieval_end")[0]["nodes"] == 1


def test_legacy_callback_manager(llm_simulator) -> None:
    from llama_index.core.callbacks import CallbackManager
    from llama_index.core.llms import ChatMessage

    from aipowertools.callbacks.llama_index import LegacyCostCallbackHandler

    llm_simulator.add_model(SimModel("gpt-4o-mini", reply="legacy path"))
    tracker = CostTracker(store="memory://")
    log = StructuredLogger("legacy", store="memory://")
    handler = LegacyCostCallbackHandler(tracker, log, task="legacy")
    llm = _llm(
        llm_simulator,
        additional_kwargs={"stream_options": {"include_usage": True}},
        callback_manager=CallbackManager([handler]),
    )
    msgs = [ChatMessage(role="user", content="old style")]
    llm.chat(msgs)
    for _ in llm.stream_chat(msgs):
        pass
    llm.complete("complete me")
    assert _ledger(tracker) == _sim(llm_simulator)
    assert {r.task for r in tracker.records()} == {"legacy"}
    assert len(log.query(event_type="chat_model_end")) >= 2
    tracker.close()


def test_errors_are_logged_and_span_marked(llm_simulator, tracker, instrumented) -> None:
    from llama_index.core.llms import ChatMessage

    from aipowertools.callbacks.llama_index import instrument
    from aipowertools.core import ProviderMonitor

    log, exporter = instrumented
    monitor = ProviderMonitor()
    extra = instrument(monitor=monitor, spans=False)
    llm_simulator.add_model(SimModel("gpt-4o-mini", reply="x"))
    llm_simulator.fail_next("gpt-4o-mini", 1)
    with pytest.raises(Exception):  # noqa: B017 - the provider's own error type
        _llm(llm_simulator).chat([ChatMessage(role="user", content="boom")])
    assert _ledger(tracker)[0] == 0
    assert log.query(event_type="chat_model_error")
    errored = [s for s in exporter.get_finished_spans() if s.status.status_code.name == "ERROR"]
    assert errored
    _llm(llm_simulator).chat([ChatMessage(role="user", content="fine now")])
    extra.uninstrument()
    (name,) = monitor.deployments()
    stats = monitor.stats(name)
    assert (stats.requests, stats.errors) == (2, 1)
    monitor.close()

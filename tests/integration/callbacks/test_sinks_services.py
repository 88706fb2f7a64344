from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest

from aipowertools.callbacks import PostgresSink, RedisStreamSink, StructuredLogger
from aipowertools.core.errors import ConfigurationError, StoreUnavailableError


def _table() -> str:
    return f"ev_{uuid.uuid4().hex[:12]}"


def test_postgres_sink_query_filters_and_audit(postgres_url) -> None:
    sink = PostgresSink(postgres_url, table=_table())
    log = StructuredLogger("pg", store=sink)
    log.set_context(user_id="u1")
    log.info("llm_call", model="gpt-4o", tokens=3, meta={"team": "a"})
    log.info("llm_call", model="claude", tokens=4)
    log.metric("quality", value=0.5, tags={"model": "gpt-4o"})
    for i in range(3):
        log.audit("access", action=f"a{i}")
    today = time.strftime("%Y-%m-%d", time.gmtime())
    got = log.query(
        event_type="llm_call", start_time=today, end_time=today, filters={"model": "gpt-4o"}
    )
    assert [(e["tokens"], e["user_id"]) for e in got] == [(3, "u1")]
    assert len(log.query(filters={"model": ["gpt-4o", "claude"]})) == 2
    assert len(log.query(filters={"meta.team": "a"})) == 1
    assert [e["value"] for e in log.query(kind="metric", filters={"tags.model": "gpt-4o"})] == [0.5]
    assert log.query(start_time="2020-01-01", end_time="2020-01-02") == []
    assert len(log.query(limit=2)) == 2
    report = log.verify()
    assert report.ok
    assert report.checked == 3
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(
            f"UPDATE {sink.table}_audit SET payload = replace(payload, 'a1', 'zz') WHERE seq = 2"
        )
    bad = log.verify()
    assert not bad.ok
    assert bad.first_bad_seq == 2
    assert "changed" in bad.reason
    log.close()
    with pytest.raises(ConfigurationError):
        PostgresSink(postgres_url, table="x; drop table y")


lst_lock = threading.Lock()


class Proxy:
    """A TCP forwarder to PostgreSQL we can stop and restart on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._socks: list[socket.socket] = []
        self._listener: socket.socket | None = None

    def start(self) -> None:
        lst = socket.socket()
        lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lst.bind(("127.0.0.1", self.port))
        lst.listen(16)
        self._listener = lst
        threading.Thread(target=self._accept, args=(lst,), daemon=True).start()

    def _accept(self, lst: socket.socket) -> None:
        while True:
            try:
                client, _ = lst.accept()
            except OSError:
                return
            with lst_lock:
                if self._listener is not lst:
                    client.close()
                    return
            upstream = socket.create_connection(self.target)
            self._socks += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def stop(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
            self._listener.close()
            self._listener = None
        for s in self._socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        self._socks.clear()


def test_postgres_going_away_mid_run_never_breaks_callers(postgres_url) -> None:
    parts = urlsplit(postgres_url)
    proxy = Proxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    proxy.start()
    url = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
    sink = PostgresSink(url, table=_table(), connect_timeout=1)
    log = StructuredLogger("pg_flaky", store=sink)
    log.info("before", i=0)
    assert log.flush(5)
    proxy.stop()
    writers: set[int] = set()
    write = sink.write

    def tracked(events):  # which thread talks to the database
        writers.add(threading.get_ident())
        return write(events)

    sink.write = tracked  # type: ignore[method-assign]
    for i in range(1, 21):
        log.info("during", i=i)  # the database is gone: these calls must still return at once
    deadline = time.monotonic() + 30  # wait for the writer's first failed write, not seconds
    while log.stats()[0].failures < 1:
        assert time.monotonic() < deadline, "the writer never tried to write"
        time.sleep(0.005)
    assert threading.get_ident() not in writers  # callers never wait on the database
    assert not log.flush(timeout=0.05)
    st = log.stats()[0]
    assert st.pending == 20
    assert st.dropped == 0
    with pytest.raises(StoreUnavailableError) as info:
        sink.query()
    assert str(proxy.port) in str(info.value)
    proxy.start()
    assert log.flush(timeout=15)
    assert [e["i"] for e in log.query(event_type="during")] == list(range(1, 21))
    st = log.stats()[0]
    assert (st.delivered, st.dropped, st.pending) == (21, 0, 0)
    log.close()
    proxy.stop()


def test_postgres_down_with_small_buffer_counts_drops(postgres_url) -> None:
    sink = PostgresSink("postgresql://postgres@127.0.0.1:1/none", connect_timeout=1)
    log = StructuredLogger("pg_down", store=sink, max_buffer=3)
    for i in range(10):
        log.info("e", i=i)
    log.close(timeout=0.5)
    st = log.stats()[0]
    assert st.delivered == 0
    assert st.dropped == 10
    assert st.pending == 0


def test_redis_stream_sink(redis_url) -> None:
    import redis

    stream = f"test:{uuid.uuid4().hex}"
    log = StructuredLogger("rs", store=None, sinks=[RedisStreamSink(redis_url, stream=stream)])
    log.info("hello", n=1, api_key="sk-abcdefghijklmnopqrstu")
    log.info("hello", n=2)
    assert log.flush(5)
    client = redis.Redis.from_url(redis_url)
    entries = client.xrange(stream)
    events = [json.loads(fields[b"event"]) for _, fields in entries]
    assert [e["n"] for e in events] == [1, 2]
    assert events[0]["api_key"] == "[REDACTED]"
    client.delete(stream)
    client.close()
    log.close()


def test_langchain_calls_succeed_while_postgres_log_store_is_down(
    postgres_url, llm_simulator
) -> None:
    from langchain_openai import ChatOpenAI

    from aipowertools.callbacks.langchain import LoggingCallbackHandler
    from aipowertools.testing import SimModel

    parts = urlsplit(postgres_url)
    proxy = Proxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    proxy.start()
    url = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
    log = StructuredLogger("pg_app", store=PostgresSink(url, table=_table(), connect_timeout=1))
    llm_simulator.add_model(SimModel("gpt-4o-mini", reply="still answering"))
    model = ChatOpenAI(
        model="gpt-4o-mini",
        base_url=llm_simulator.base_url("openai"),
        api_key="sk-test-not-a-real-key-000000",
        max_retries=0,
    )
    cfg = {"callbacks": [LoggingCallbackHandler(log)]}
    assert model.invoke("before", config=cfg).content == "still answering"
    assert log.flush(5)
    proxy.stop()
    for i in range(3):  # the log database is gone; the application does not notice
        assert model.invoke(f"during {i}", config=cfg).content == "still answering"
    assert log.stats()[0].pending == 6
    proxy.start()
    assert log.flush(15)
    ends = log.query(event_type="chat_model_end")
    assert len(ends) == 4
    assert log.stats()[0].dropped == 0
    log.close()
    proxy.stop()


def test_store_url_for_postgres(postgres_url) -> None:
    log = StructuredLogger("pg_url", store=postgres_url)
    log.info("via_url", n=1)
    log.audit("access", action="read")
    assert [e["n"] for e in log.query(event_type="via_url")] == [1]
    assert log.verify().ok
    assert log.stats()[0].sink == "postgresql"

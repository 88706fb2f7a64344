"""The Redis append lane: its script call skips redis-py's command machinery, not guarantees."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from typing import Any, cast

import pytest
import redis

from aipowertools.core.errors import StoreUnavailableError
from aipowertools.sessions import Session, SessionLimitError
from aipowertools.sessions._redis import RedisBackend
from aipowertools.sessions._redis_lane import Lane


class _Counting(redis.Redis):  # type: ignore[type-arg]
    """A plain client that counts the commands sent through ``execute_command``."""

    sent: list[str]

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.sent.append(str(args[0]))
        return super().execute_command(*args, **options)


@pytest.fixture
def client(redis_url: str) -> Iterator[_Counting]:
    c = cast("_Counting", _Counting.from_url(redis_url))
    c.sent = []
    yield c
    c.close()


@pytest.fixture
def backend(redis_url: str, client: _Counting) -> Iterator[RedisBackend]:
    b = RedisBackend(redis_url, prefix=f"t{uuid.uuid4().hex[:8]}", client=client)
    yield b
    b.close()


def _lane(backend: RedisBackend) -> Lane:
    lane = backend._lane
    assert lane is not None
    return lane


def _client_ids(backend: RedisBackend) -> list[int]:
    """The server-side ids of the lane's idle connections (a reconnect gets a new id)."""
    ids = []
    for conn in _lane(backend)._idle:
        conn.send_command("CLIENT", "ID")
        ids.append(int(conn.read_response()))
    return ids


def test_appends_after_the_first_skip_execute_command(
    backend: RedisBackend, client: _Counting
) -> None:
    assert backend.append("n", "s", "h", [b"a"]) == 1  # creates the list: + register script
    client.sent.clear()
    for i in range(20):
        assert backend.append("n", "s", "h", [f"{i}".encode(), b"x"]) == 3 + 2 * i
    assert client.sent == []
    assert backend.read("n", "s", "h", 0, 5) == [b"a", b"0", b"x", b"1", b"x"]


def test_a_dropped_connection_falls_back_and_stores_the_item_once(
    backend: RedisBackend, client: _Counting, redis_url: str
) -> None:
    backend.append("n", "s", "h", [b"first"])
    [client_id] = _client_ids(backend)
    killer = redis.Redis.from_url(redis_url)
    assert killer.client_kill_filter(_id=client_id) == 1
    killer.close()
    client.sent.clear()
    assert backend.append("n", "s", "h", [b"second"]) == 2  # the lane failed; the client sent it
    assert client.sent == ["EVALSHA"]  # the same append id: stored once
    client.sent.clear()
    assert backend.append("n", "s", "h", [b"third"]) == 3  # the lane reconnected
    assert client.sent == []
    assert backend.read("n", "s", "h", 0, 10) == [b"first", b"second", b"third"]


def test_a_reply_error_is_raised_and_the_connection_kept(
    backend: RedisBackend, client: _Counting
) -> None:
    backend.append("n", "s", "h", [b"a"])
    client.set(backend._base("n", "s") + "l:text", "not a list")
    before = _client_ids(backend)
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        backend.append("n", "s", "text", [b"x"])
    assert _client_ids(backend) == before  # the same connection, not reconnected, in sync
    client.sent.clear()
    assert backend.append("n", "s", "h", [b"b"]) == 2
    assert client.sent == []


def test_an_unreachable_server_is_a_typed_error() -> None:
    backend = RedisBackend("redis://127.0.0.1:1/0")  # the shared client, which types failures
    assert backend._lane is not None
    with pytest.raises(StoreUnavailableError):
        Session("s", store=backend).append("h", 1)


def test_threads_share_the_lane_without_losing_or_mixing_replies(backend: RedisBackend) -> None:
    lengths: list[int] = []

    def writer(w: int) -> None:
        for i in range(100):
            lengths.append(backend.append("n", "s", "h", [f"{w}:{i}".encode()]))

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stored = backend.read("n", "s", "h", 0, 10_000)
    assert sorted(lengths) == list(range(1, 801))  # every reply went to its own caller
    assert sorted(stored) == sorted(f"{w}:{i}".encode() for w in range(8) for i in range(100))
    for w in range(8):  # each writer's items in its order
        mine = [x for x in stored if x.startswith(f"{w}:".encode())]
        assert mine == [f"{w}:{i}".encode() for i in range(100)]
    assert len(_lane(backend)._idle) <= Lane.KEEP


@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
def test_a_forked_child_does_not_use_the_parents_connection(backend: RedisBackend) -> None:
    backend.append("n", "s", "h", [b"parent-0"])
    parent_conn = _lane(backend)._idle[-1]
    pid = os.fork()
    if pid == 0:  # the child: append through the same backend object, then report
        ok = False
        try:
            ok = backend.append("n", "s", "h", [b"child"]) == 2
            ok = ok and parent_conn not in _lane(backend)._idle
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert backend.append("n", "s", "h", [b"parent-1"]) == 3
    assert _lane(backend)._idle[-1] is parent_conn
    assert backend.read("n", "s", "h", 0, 10) == [b"parent-0", b"child", b"parent-1"]


@pytest.mark.parametrize(
    "make",
    [
        lambda url: redis.Redis.from_url(url, single_connection_client=True),
        lambda url: redis.Redis(
            connection_pool=redis.BlockingConnectionPool.from_url(url, max_connections=4)
        ),
        lambda url: redis.Redis.from_url(url, max_connections=8),
    ],
    ids=["single-connection", "blocking-pool", "small-pool"],
)
def test_other_clients_use_the_full_path(redis_url: str, make: Any) -> None:
    client = make(redis_url)
    backend = RedisBackend(redis_url, prefix=f"t{uuid.uuid4().hex[:8]}", client=client)
    assert backend._lane is None
    assert [backend.append("n", "s", "h", [b"x"]) for _ in range(3)] == [1, 2, 3]
    client.close()


def test_backends_on_one_client_share_a_lane_and_close_returns_its_connections(
    redis_url: str, client: _Counting
) -> None:
    a = RedisBackend(redis_url, prefix=f"t{uuid.uuid4().hex[:8]}", client=client)
    b = RedisBackend(redis_url, prefix=f"t{uuid.uuid4().hex[:8]}", client=client)
    assert a._lane is b._lane
    a.append("n", "s", "h", [b"x"])
    pool = client.connection_pool
    assert len(_lane(a)._idle) == 1
    a.close()
    assert _lane(a)._idle == []
    assert len(pool._in_use_connections) == 0
    assert b.append("n", "s", "h", [b"y"]) == 1  # b's list, through the lane again


# -- max_items in one round trip ------------------------------------------------------------------


@pytest.mark.parametrize("trim", ["oldest", "error"])
def test_a_size_limited_append_is_one_command(
    backend: RedisBackend, client: _Counting, trim: Any
) -> None:
    s = Session("w", store=backend, namespace="n", max_items=3, trim=trim, ttl=60)
    s.append("h", 0)  # creates the list (registers it, copies the TTL) and touches the session
    assert client.pttl(backend._base("n", "w") + "l:h") > 0
    client.sent.clear()
    s.append("h", 1)
    s.append("h", 2)
    assert client.sent == []  # no LLEN, no separate trim: the lane sent one request each
    if trim == "oldest":
        s.extend("h", [3, 4])
        assert s.get("h") == [2, 3, 4]
    else:
        with pytest.raises(SessionLimitError, match="list has 3 items; 1 more exceed max_items=3"):
            s.append("h", 3)
        assert s.get("h") == [0, 1, 2]
    assert client.sent.count("RPUSH") == 0


def test_trim_error_is_atomic_under_concurrent_writers(backend: RedisBackend) -> None:
    """Check and append are one script: 8 racing writers never push the list past the limit."""
    refused: list[int] = []

    def writer(w: int) -> None:
        s = Session("strict", store=backend, namespace="n", max_items=50, trim="error")
        for i in range(20):
            try:
                s.append("h", [w, i])
            except SessionLimitError:
                refused.append(w)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert backend.length("n", "strict", "h") == 50
    assert len(refused) == 8 * 20 - 50


def test_an_unloaded_script_is_loaded_by_the_fallback(backend: RedisBackend) -> None:
    s = Session("strict", store=backend, namespace="n", max_items=2, trim="error")
    s.append("h", 1)
    real = backend._within.sha
    backend._within.sha = "0" * 40  # as after SCRIPT FLUSH or a fail-over: EVALSHA misses
    s.append("h", 2)
    assert backend._within.sha == real  # the Script object loaded it again
    assert s.get("h") == [1, 2]


async def test_async_size_limited_appends(backend: RedisBackend) -> None:
    window = Session("aw", store=backend, namespace="n", max_items=2, ttl=60)
    await window.aextend("h", [1, 2, 3])
    await window.aappend("h", 4)
    assert await window.aget("h") == [3, 4]
    assert backend._r.pttl(backend._base("n", "aw") + "l:h") > 0
    strict = Session("as", store=backend, namespace="n", max_items=2, trim="error", ttl=60)
    await strict.aextend("h", [1, 2])
    with pytest.raises(SessionLimitError):
        await strict.aappend("h", 3)
    assert await strict.aget("h") == [1, 2]
    assert backend._r.pttl(backend._base("n", "as") + "l:h") > 0


def test_size_limited_batches_past_one_command(backend: RedisBackend) -> None:
    big = [b"x"] * 4500
    assert backend.append_bounded("n", "b", "h", big, 4400, True) == (True, 4400)
    assert backend.length("n", "b", "h") == 4400
    assert backend.append_bounded("n", "c", "h", big, 4400, False) == (False, 0)
    assert backend.length("n", "c", "h") == 0

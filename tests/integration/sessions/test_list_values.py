"""One name holds one value: ``set(k, [])`` then ``append(k, ...)`` grows that list.

The seed's own example, on every backend (memory, diskcache, Redis, PostgreSQL, S3 on
moto): the appended item is where ``get`` and ``get_all`` look; concurrent appends to a list
value lose nothing (compare-and-set); appending to a non-list value is a typed error.
"""

from __future__ import annotations

import threading
import uuid

import pytest

from aipowertools.sessions import Session, SessionBackend, SessionTypeError


@pytest.fixture
def ns() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def test_the_seeds_set_then_append(backend: SessionBackend, ns: str) -> None:
    session = Session("project-abc", store=backend, namespace=ns)
    session.set("user_context", {"id": 123, "role": "admin"})
    session.set("conversation_history", [])
    session.append("conversation_history", {"role": "user", "content": "..."})
    session.extend("conversation_history", [{"role": "assistant", "content": "hi"}])
    expected = [{"role": "user", "content": "..."}, {"role": "assistant", "content": "hi"}]
    assert session.get("conversation_history") == expected
    assert session.get_all() == {
        "conversation_history": expected,
        "user_context": {"id": 123, "role": "admin"},
    }
    again = Session("project-abc", store=backend, namespace=ns)  # another process's view
    assert again.get("conversation_history") == expected
    with pytest.raises(SessionTypeError, match="holds a dict, not a list"):
        session.append("user_context", {"x": 1})
    assert session.get("user_context") == {"id": 123, "role": "admin"}


def test_concurrent_appends_to_a_list_value_lose_nothing(backend: SessionBackend, ns: str) -> None:
    Session("race", store=backend, namespace=ns).set("log", [])

    def work(w: int) -> None:
        s = Session("race", store=backend, namespace=ns)
        for i in range(5):
            s.append("log", f"{w}-{i}")

    threads = [threading.Thread(target=work, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = Session("race", store=backend, namespace=ns).get("log")
    assert sorted(got) == sorted(f"{w}-{i}" for w in range(3) for i in range(5))


async def test_async_append_to_a_list_value(backend: SessionBackend, ns: str) -> None:
    s = Session("async", store=backend, namespace=ns)
    await s.aset("history", [1])
    await s.aappend("history", 2)
    await s.aappend("native", 1)  # no value: the O(1) list, as before
    await s.aappend("native", 2)
    assert await s.aget("history") == [1, 2]
    assert await s.aget("native") == [1, 2]
    await s.aset("n", 5)
    with pytest.raises(SessionTypeError):
        await s.aappend("n", 6)


def test_max_items_applies_to_list_values(backend: SessionBackend, ns: str) -> None:
    from aipowertools.sessions import SessionLimitError

    s = Session("cap", store=backend, namespace=ns, max_items=2, trim="oldest")
    s.set("h", [1, 2])
    s.append("h", 3)
    assert s.get("h") == [2, 3]
    strict = Session("cap2", store=backend, namespace=ns, max_items=2, trim="error")
    strict.set("h", [1, 2])
    with pytest.raises(SessionLimitError):
        strict.append("h", 3)

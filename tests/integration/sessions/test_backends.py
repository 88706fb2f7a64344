"""Every backend keeps the same promises, checked through the public Session API."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pytest

from aipowertools.core.errors import SessionConflictError
from aipowertools.sessions import Session, SessionBackend, SessionLimitError, SessionLockError


@pytest.fixture
def ns() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def test_values_lists_and_keys(backend: SessionBackend, ns: str) -> None:
    s = Session("project-abc", store=backend, namespace=ns)
    assert s.get("user_context") is None
    assert s.set("user_context", {"id": 123, "role": "admin"}) == 1
    s.append("conversation_history", {"role": "user", "content": "hi"})
    s.extend("conversation_history", [{"role": "assistant", "content": "hello"}, {"n": 3}])
    assert s.get("user_context") == {"id": 123, "role": "admin"}
    assert s.get("conversation_history") == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"n": 3},
    ]
    assert s.keys() == ["conversation_history", "user_context"]
    assert s.get_all() == {
        "conversation_history": s.get("conversation_history"),
        "user_context": {"id": 123, "role": "admin"},
    }
    assert s.length("conversation_history") == 3
    assert s.items("conversation_history", 1, 2) == [{"role": "assistant", "content": "hello"}]
    assert s.items("conversation_history", -1) == [{"n": 3}]
    s.delete("conversation_history")
    assert s.keys() == ["user_context"]
    assert s.get("conversation_history", "gone") == "gone"


def test_compare_and_set(backend: SessionBackend, ns: str) -> None:
    s = Session("cas", store=backend, namespace=ns)
    assert s.set("n", 1, expected_version=0) == 1
    with pytest.raises(SessionConflictError) as err:
        s.set("n", 2, expected_version=0)
    assert err.value.session_id == "cas"
    value, version = s.get_versioned("n")
    assert (value, version) == (1, 1)
    assert s.set("n", 2, expected_version=1) == 2
    with pytest.raises(SessionConflictError):
        s.set("n", 3, expected_version=1)
    assert s.get("n") == 2
    assert s.set("n", 5) == 3  # unconditional still bumps the version


def test_update_under_threads_loses_nothing(backend: SessionBackend, ns: str) -> None:
    s = Session("counter", store=backend, namespace=ns)

    def work() -> None:
        for _ in range(5):
            s.update("count", lambda n: n + 1, default=0)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert s.get("count") == 20


def test_trim_oldest_and_error(backend: SessionBackend, ns: str) -> None:
    s = Session("window", store=backend, namespace=ns, max_items=3)
    for i in range(5):
        s.append("h", i)
    assert s.get("h") == [2, 3, 4]
    strict = Session("strict", store=backend, namespace=ns, max_items=2, trim="error")
    strict.extend("h", [1, 2])
    with pytest.raises(SessionLimitError):
        strict.append("h", 3)
    assert strict.get("h") == [1, 2]


def test_ttl_expiry_listing_and_cleanup(backend: SessionBackend, ns: str) -> None:
    keep = Session("keep", store=backend, namespace=ns)
    keep.set("a", 1)
    ttl = 0.6
    brief = Session("brief", store=backend, namespace=ns, ttl=ttl)
    started = time.monotonic()
    brief.set("a", 1)
    brief.append("h", "x")
    written = time.monotonic()  # the TTL started between `started` and now
    listed = Session.list_sessions(backend, namespace=ns)
    if time.monotonic() - started < ttl:  # (a loaded machine may take longer than the TTL)
        assert listed == ["brief", "keep"]
    time.sleep(max(0.0, written + ttl + 0.1 - time.monotonic()))
    assert brief.get("a") is None
    assert brief.get("h") is None
    assert Session.list_sessions(backend, namespace=ns) == ["keep"]
    Session.cleanup(backend, namespace=ns)
    assert Session.list_sessions(backend, namespace=ns) == ["keep"]
    assert keep.get("a") == 1
    # an expired (not yet cleaned up) session starts empty when written again
    dead = Session("dead", store=backend, namespace=ns, ttl=0.5)
    dead.append("h", "old")
    time.sleep(0.6)
    again = Session("dead", store=backend, namespace=ns)
    again.append("h", "new")
    assert again.get_all() == {"h": ["new"]}


def test_tenants_are_isolated(backend: SessionBackend, ns: str) -> None:
    a = Session("same-id", store=backend, namespace=ns + "a")
    b = Session("same-id", store=backend, namespace=ns + "b")
    a.set("secret", "alpha")
    a.append("h", 1)
    assert b.get("secret") is None
    assert b.keys() == []
    assert Session.list_sessions(backend, namespace=ns + "b") == []


def test_lock_excludes_other_holders(backend: SessionBackend, ns: str) -> None:
    s = Session("locked", store=backend, namespace=ns)
    with s.lock("edit"):
        other = Session("locked", store=backend, namespace=ns)
        with pytest.raises(SessionLockError), other.lock("edit", timeout=0.1):
            pass
    with s.lock("edit", timeout=1):
        pass


def test_clear_and_backup_roundtrip(backend: SessionBackend, ns: str, tmp_path: Path) -> None:
    s = Session("snap", store=backend, namespace=ns)
    s.set("profile", {"name": "Ada"})
    s.extend("h", list(range(25)))
    path = s.create_backup(tmp_path / "snap.backup")
    s.clear()
    assert s.get_all() == {}
    restored = Session.restore_backup(path, store=backend)
    assert restored.get_all() == {"h": list(range(25)), "profile": {"name": "Ada"}}
    copy = Session.restore_backup(path, store=backend, session_id="snap-copy")
    assert copy.get("h") == list(range(25))


async def test_async_twins(backend: SessionBackend, ns: str) -> None:
    s = Session("async", store=backend, namespace=ns)
    assert await s.aset("k", [1, 2]) == 1
    await s.aappend("h", "a")
    await s.aextend("h", ["b", "c"])
    assert await s.aget("k") == [1, 2]
    assert await s.aitems("h", 1) == ["b", "c"]
    assert await s.alength("h") == 3
    assert await s.akeys() == ["h", "k"]
    assert await s.aget_all() == {"h": ["a", "b", "c"], "k": [1, 2]}
    async with s.alock():
        assert await s.aupdate("n", lambda v: v + 1, default=0) == 1
    await s.adelete("k")
    assert await s.aget_versioned("k") == (None, 0)
    await s.aclear()
    assert await s.aget_all() == {}


class _Recorder:
    """A backend proxy recording every call the session makes, with the item counts."""

    def __init__(self, inner: SessionBackend) -> None:
        self._inner = inner
        self.calls: list[tuple[str, int]] = []

    def __getattr__(self, name: str) -> object:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def call(*args: object, **kwargs: object) -> object:
            items = args[3] if name == "append" else ()
            self.calls.append((name, len(items)))  # type: ignore[arg-type]
            return attr(*args, **kwargs)

        return call


def test_an_append_sends_only_the_new_item(backend: SessionBackend, ns: str) -> None:
    """O(1) appends: with 500 items stored, appending one hands the backend exactly that item
    and reads nothing back (no read-modify-write of the list)."""
    recorder = _Recorder(backend)
    s = Session("big", store=recorder, namespace=ns)  # type: ignore[arg-type]
    s.extend("history", [{"i": i} for i in range(500)])
    recorder.calls.clear()
    s.append("history", {"i": 500})
    s.append("history", {"i": 501})
    assert recorder.calls == [("append", 1), ("append", 1)]
    assert s.length("history") == 502


def test_diskcache_never_evicts_what_it_stored(tmp_path: Path) -> None:
    """diskcache culls entries past its size_limit unless told not to; a session store must not
    (here the limit is made tiny instead of writing its default 1 GiB)."""
    from aipowertools.sessions._diskcache import DiskCacheBackend

    backend = DiskCacheBackend(tmp_path / "sessions")
    backend._data.reset("size_limit", 2000)
    backend._index.reset("size_limit", 2000)
    s = Session("big", store=backend, ttl=3600)
    s.set("profile", {"name": "ada"})
    s.extend("history", [{"i": i, "pad": "x" * 100} for i in range(50)])
    for i in range(50, 100):
        s.append("history", {"i": i, "pad": "x" * 100})
    again = Session("big", store=DiskCacheBackend(tmp_path / "sessions"))
    assert [m["i"] for m in again.get("history")] == list(range(100))
    assert again.get("profile") == {"name": "ada"}
    assert Session.list_sessions(backend) == ["big"]
    backend.close()


class _NoLength:
    """A backend proxy that fails the test if the list's length is asked for."""

    def __init__(self, inner: SessionBackend) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> object:
        if name in ("length", "alength"):
            raise AssertionError(f"newest-N read called {name}(): O(n) on some backends")
        return getattr(self._inner, name)


async def test_newest_items_never_count_the_list(backend: SessionBackend, ns: str) -> None:
    s = Session("tail", store=backend, namespace=ns)
    s.extend("h", list(range(50)))
    s.backend = _NoLength(backend)  # type: ignore[assignment]
    assert s.items("h", -3) == [47, 48, 49]
    assert s.items("h", -5, -2) == [45, 46, 47]
    assert s.items("h", -3, -5) == []
    assert s.items("h", -200) == list(range(50))
    assert s.items("h", -200, -48) == [0, 1]
    assert s.items("missing", -3) == []
    assert await s.aitems("h", -2) == [48, 49]
    assert await s.aitems("h", -4, -3) == [46]

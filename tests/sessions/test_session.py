from __future__ import annotations

import pickle
import uuid
from pathlib import Path

import diskcache
import pytest

from aipowertools.core.errors import ConfigurationError, SessionConflictError, StoreURLError
from aipowertools.sessions import (
    AESGCMEncryption,
    Codec,
    MemoryBackend,
    Session,
    SessionIntegrityError,
    SessionLimitError,
    open_store,
)
from aipowertools.sessions._diskcache import DiskCacheBackend


class _Boom:
    def __reduce__(self) -> tuple[object, ...]:
        return (exec, ("import pathlib; pathlib.Path('PWNED').touch()",))


@pytest.fixture
def store() -> MemoryBackend:
    return MemoryBackend()


def test_seed_api_on_the_embedded_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIPOWERTOOLS_HOME", str(tmp_path))
    monkeypatch.delenv("AIPOWERTOOLS_STORE", raising=False)
    session = Session("project-abc", auto_save=True)
    assert isinstance(session.backend, DiskCacheBackend)
    assert session.backend.directory == tmp_path / "sessions"
    session.set("user_context", {"id": 123, "role": "admin"})
    session.append("conversation_history", {"role": "user", "content": "..."})
    session.save()
    recovered = Session.recover("project-abc")
    assert recovered.get("user_context") == {"id": 123, "role": "admin"}
    assert recovered.get_all() == {
        "conversation_history": [{"role": "user", "content": "..."}],
        "user_context": {"id": 123, "role": "admin"},
    }
    backup = session.create_backup(tmp_path / "project-abc.backup")
    session.clear()
    assert Session.restore_backup(backup).get("user_context") == {"id": 123, "role": "admin"}
    assert "project-abc" in Session.list_sessions()
    assert "diskcache" in repr(session)


def test_store_url_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIPOWERTOOLS_STORE", "memory://env-test")
    assert open_store() is open_store("memory://env-test")
    assert Session("x").backend.url == "memory://env-test"


def test_unusable_store_urls() -> None:
    with pytest.raises(StoreURLError, match="sessions cannot use"):
        open_store("sqlite:///tmp/x.db")
    with pytest.raises(StoreURLError):
        open_store("nosuch://x")


@pytest.mark.parametrize(
    "bad",
    ["../etc/passwd", "a/../../b", "..", "a/b", "x*", "k:{}", "", " a", "a b", "é", "a" * 201],
)
def test_path_traversal_and_pattern_ids_are_rejected(bad: str, store: MemoryBackend) -> None:
    with pytest.raises(ConfigurationError, match="invalid session id"):
        Session(bad, store=store)
    with pytest.raises(ConfigurationError, match="invalid namespace"):
        Session("ok", store=store, namespace=bad)
    session = Session("ok", store=store)
    with pytest.raises(ConfigurationError, match="invalid key"):
        session.set(bad, 1)
    with pytest.raises(ConfigurationError, match="invalid key"):
        session.append(bad, 1)


def test_non_string_id_rejected(store: MemoryBackend) -> None:
    with pytest.raises(ConfigurationError, match="must be a str"):
        Session(123, store=store)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "options",
    [
        {"ttl": 0},
        {"ttl": "5"},
        {"max_items": 0},
        {"max_items": "5"},
        {"max_value_bytes": 0},
        {"trim": "newest"},
    ],
)
def test_bad_options(options: dict[str, object], store: MemoryBackend) -> None:
    with pytest.raises(ConfigurationError):
        Session("s", store=store, **options)  # type: ignore[arg-type]


def test_buffered_session_saves_in_order(store: MemoryBackend) -> None:
    other = Session("buf", store=store)
    with Session("buf", store=store, auto_save=False) as s:
        assert s.set("a", 1) == -1
        s.append("h", 1)
        s.extend("h", [2, 3])
        s.extend("h", [])
        s.set("gone", True)
        s.delete("gone")
        assert s.dirty
        assert s.get("a") == 1
        assert s.get("h") == [1, 2, 3]
        assert s.get("gone") is None
        assert s.keys() == ["a", "h"]
        assert s.get_all() == {"a": 1, "h": [1, 2, 3]}
        assert other.get_all() == {}  # nothing written yet
    assert not s.dirty
    assert other.get_all() == {"a": 1, "h": [1, 2, 3]}


def test_buffered_overlay_on_stored_list_and_delete(store: MemoryBackend) -> None:
    Session("ov", store=store).extend("h", [1, 2])
    s = Session("ov", store=store, auto_save=False)
    s.append("h", 3)
    assert s.get("h") == [1, 2, 3]
    s.delete("h")
    s.append("h", 9)
    assert s.get("h") == [9]
    s.save()
    assert Session("ov", store=store).get("h") == [9]


def test_buffered_conflict_keeps_rest_pending(store: MemoryBackend) -> None:
    Session("c", store=store).set("a", 1)
    s = Session("c", store=store, auto_save=False)
    s.set("a", 2, expected_version=0)
    s.append("h", 1)
    with pytest.raises(SessionConflictError):
        s.save()
    assert s.dirty  # nothing after the failed compare-and-set was written
    assert Session("c", store=store).get_all() == {"a": 1}


def test_exception_in_with_block_does_not_save(store: MemoryBackend) -> None:
    def work() -> None:
        with Session("w", store=store, auto_save=False) as s:
            s.set("a", 1)
            raise RuntimeError

    with pytest.raises(RuntimeError):
        work()
    assert Session("w", store=store).get("a") is None


def test_value_size_limit(store: MemoryBackend) -> None:
    s = Session("big", store=store, max_value_bytes=100)
    s.set("small", "x" * 10)
    with pytest.raises(SessionLimitError, match="max_value_bytes"):
        s.set("large", "x" * 200)
    with pytest.raises(SessionLimitError):
        s.append("h", "x" * 200)
    assert s.keys() == ["small"]


def test_update_gives_up_after_retries(store: MemoryBackend) -> None:
    s = Session("u", store=store)

    def meddle(v: int) -> int:
        Session("u", store=store).set("n", -1)  # always changes under our feet
        return v + 1

    with pytest.raises(SessionConflictError):
        s.update("n", meddle, default=0, retries=3)


def test_items_paging_and_iteration(store: MemoryBackend) -> None:
    s = Session("p", store=store)
    s.extend("h", range(10))
    assert s.items("h", 2, 5) == [2, 3, 4]
    assert s.items("h", -3, -1) == [7, 8]
    assert s.items("h", 8, -1) == [8]
    assert s.items("h", -100) == list(range(10))
    assert list(s.iter_items("h", page_size=3)) == list(range(10))
    assert list(s.iter_items("h", page_size=5)) == list(range(10))
    with pytest.raises(ConfigurationError, match="start must be an int"):
        s.items("h", "2")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="stop must be an int"):
        s.items("h", 0, 2.0)  # type: ignore[arg-type]
    for bad in (0, -1, 2.5, True):  # a zero page used to loop forever
        with pytest.raises(ConfigurationError, match="page_size must be"):
            s.iter_items("h", page_size=bad)  # type: ignore[arg-type]


def test_ttl_touch_refreshes(store: MemoryBackend) -> None:
    s = Session("t", store=store, ttl=60)
    s.set("a", 1)
    s.touch()
    assert Session.list_sessions(store) == ["t"]
    assert Session.cleanup(store) == 0


def test_encrypted_session_and_tampered_store(tmp_path: Path) -> None:
    backend = DiskCacheBackend(tmp_path)
    codec = Codec(encryption=AESGCMEncryption({"k1": AESGCMEncryption.generate_key()}))
    s = Session("enc", store=backend, codec=codec)
    s.set("secret", {"card": "4111"})
    s.append("h", "private")
    raw = backend.get("default", "enc", "secret")
    assert raw is not None
    assert b"4111" not in raw.data
    backend.set("default", "enc", "secret", raw.data[:-1] + bytes([raw.data[-1] ^ 1]), None)
    with pytest.raises(SessionIntegrityError, match="tag mismatch"):
        s.get("secret")
    with pytest.raises(SessionIntegrityError):
        Session.recover("enc", store=backend, codec=codec)
    with pytest.raises(SessionIntegrityError):  # plain codec cannot read encrypted lists
        Session("enc", store=backend).get("h")


def test_planted_pickle_in_store_is_never_executed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    backend = DiskCacheBackend(tmp_path / "store")
    s = Session("victim", store=backend, codec=Codec(pickle_key=b"k" * 32))
    s.set("profile", {"ok": True})
    payload = pickle.dumps(_Boom())
    # 1. raw pickle bytes written over a value, and as a list item
    backend.set("default", "victim", "profile", payload, None)
    backend.append("default", "victim", "h", [payload])
    with pytest.raises(SessionIntegrityError):
        s.get("profile")
    with pytest.raises(SessionIntegrityError):
        s.get("h")
    # 2. a pickled row planted straight into the diskcache database (diskcache would unpickle)
    cache = diskcache.Cache(str(tmp_path / "store" / "data"))
    cache.set("v/default/victim/planted", _Boom())
    cache.close()
    with pytest.raises(SessionIntegrityError, match="unpickle"):
        s.get("planted")
    assert not (tmp_path / "PWNED").exists()


def test_restore_rejects_non_backups(tmp_path: Path, store: MemoryBackend) -> None:
    for content in ("not json", '{"format": "other"}', "[1]"):
        path = tmp_path / f"{uuid.uuid4().hex}.backup"
        path.write_text(content)
        with pytest.raises(SessionIntegrityError, match="not a session backup"):
            Session.restore_backup(path, store=store)


def test_backup_is_atomic_when_writing_fails(
    tmp_path: Path, store: MemoryBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = Session("b", store=store)
    s.set("a", 1)
    target = tmp_path / "b.backup"
    target.write_text("previous")

    def fail(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", fail)
    with pytest.raises(OSError, match="disk full"):
        s.create_backup(target)
    assert target.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["b.backup"]


def test_diskcache_store_across_instances(tmp_path: Path) -> None:
    a = Session("d", store=DiskCacheBackend(tmp_path))
    a.extend("h", [1, 2, 3])
    a.set("v", "x")
    b = Session("d", store=DiskCacheBackend(tmp_path))
    assert b.get_all() == {"h": [1, 2, 3], "v": "x"}
    b.delete("h")
    assert a.keys() == ["v"]

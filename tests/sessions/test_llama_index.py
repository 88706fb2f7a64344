from __future__ import annotations

import pytest
from llama_index.core.llms import ChatMessage, MessageRole
from llama_index.core.memory import ChatMemoryBuffer, Memory
from llama_index.core.storage.chat_store.base_db import MessageStatus

from aipowertools.sessions import MemoryBackend
from aipowertools.sessions.llama_index import SessionChatStore, SessionDBChatStore


def _m(text: str, role: str = "user") -> ChatMessage:
    return ChatMessage(role=role, content=text)


TOOL_CALL = ChatMessage(
    role=MessageRole.ASSISTANT,
    content="",
    additional_kwargs={
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ]
    },
)


def test_chat_store_sync() -> None:
    store = SessionChatStore(store=MemoryBackend(), namespace="app")
    store.add_message("u1", _m("a"))
    store.add_message("u1", TOOL_CALL)
    store.add_message("u1", _m("first"), idx=0)
    assert store.get_messages("u1") == [_m("first"), _m("a"), TOOL_CALL]
    assert store.get_keys() == ["u1"]
    assert store.delete_message("u1", 0) == _m("first")
    assert store.delete_message("u1", 9) is None
    assert store.delete_last_message("u1") == TOOL_CALL
    store.set_messages("u1", [_m("x"), _m("y")])
    assert store.get_messages("u1") == [_m("x"), _m("y")]
    assert store.delete_messages("u1") == [_m("x"), _m("y")]
    assert store.delete_messages("u1") is None
    assert store.get_messages("u1") == []


async def test_chat_store_async() -> None:
    store = SessionChatStore(store=MemoryBackend())
    await store.async_add_message("u2", _m("a"))
    await store.async_add_message("u2", _m("z"), idx=0)
    assert await store.aget_messages("u2") == [_m("z"), _m("a")]
    await store.aset_messages("u2", [_m("b"), _m("c")])
    assert await store.adelete_message("u2", 0) == _m("b")
    assert await store.adelete_last_message("u2") == _m("c")
    assert await store.aget_keys() == ["u2"]
    await store.aset_messages("u2", [_m("d")])
    assert await store.adelete_messages("u2") == [_m("d")]


def test_chat_memory_buffer() -> None:
    backend = MemoryBackend()
    memory = ChatMemoryBuffer.from_defaults(
        chat_store=SessionChatStore(store=backend), chat_store_key="user-1", token_limit=1000
    )
    memory.put(_m("hello"))
    memory.put(_m("hi there", "assistant"))
    again = ChatMemoryBuffer.from_defaults(
        chat_store=SessionChatStore(store=backend), chat_store_key="user-1", token_limit=1000
    )
    assert [m.content for m in again.get()] == ["hello", "hi there"]


async def test_db_chat_store_with_memory() -> None:
    store = SessionDBChatStore(store=MemoryBackend())
    memory = Memory.from_defaults(
        session_id="user-2", chat_store=store, token_limit=60, chat_history_token_ratio=0.5
    )
    for i in range(12):
        await memory.aput(_m(f"message number {i} with several words in it"))
    active = await store.count_messages("user-2")
    archived = await store.count_messages("user-2", status=MessageStatus.ARCHIVED)
    assert active + archived == 12
    assert archived > 0  # memory archived the overflow
    everything = await store.get_messages("user-2", status=None)
    assert [m.content for m in everything] == [
        f"message number {i} with several words in it" for i in range(12)
    ]
    assert len(await store.get_messages("user-2", status=None, limit=3, offset=2)) == 3
    assert await store.get_keys() == ["user-2"]


async def test_db_chat_store_operations() -> None:
    store = SessionDBChatStore(store=MemoryBackend())
    await store.add_messages("k", [_m("a"), _m("b"), _m("c"), _m("d")])
    await store.add_message("k", _m("old"), status=MessageStatus.ARCHIVED)
    assert await store.delete_oldest_messages("k", 1) == [_m("a")]
    assert await store.archive_oldest_messages("k", 1) == [_m("b")]
    assert await store.get_messages("k", status=MessageStatus.ARCHIVED) == [_m("old"), _m("b")]
    assert await store.delete_message("k", -1) == _m("d")
    assert await store.delete_message("k", 5) is None
    await store.set_messages("k", [_m("n")])
    assert await store.get_messages("k") == [_m("n")]
    await store.delete_messages("k", status=MessageStatus.ARCHIVED)
    assert await store.count_messages("k", status=None) == 1
    await store.delete_messages("k")
    assert await store.count_messages("k", status=None) == 0
    assert SessionDBChatStore.class_name() == "SessionDBChatStore"
    assert SessionChatStore.class_name() == "SessionChatStore"


@pytest.mark.parametrize("key", ["user:42", "team/alice", "a b", "b64=raw", "a..b", "ü"])
def test_chat_store_accepts_any_chat_key(key: str) -> None:
    from aipowertools.sessions.llama_index import decode_key, encode_key

    store = SessionChatStore(store=MemoryBackend(), namespace="keys")
    store.add_message(key, ChatMessage(role="user", content="hi"))
    assert [m.content for m in store.get_messages(key)] == ["hi"]
    assert store.get_keys() == [key]
    assert decode_key(encode_key(key)) == key
    assert encode_key("user-1") == "user-1"  # safe keys keep their id


def test_chat_key_errors() -> None:
    from aipowertools.core.errors import ConfigurationError
    from aipowertools.sessions.llama_index import decode_key, encode_key

    with pytest.raises(ConfigurationError):
        encode_key(42)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        encode_key("x" * 400)
    assert decode_key("b64=!!") == "b64=!!"

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables.history import RunnableWithMessageHistory
from langchain_core.stores import BaseStore
from langchain_tests.integration_tests import BaseStoreAsyncTests, BaseStoreSyncTests

from aipowertools.sessions import MemoryBackend, Session
from aipowertools.sessions.langchain import SessionChatMessageHistory, SessionKVStore

MESSAGES: list[BaseMessage] = [
    SystemMessage("You are terse.", id="s1"),
    HumanMessage(content=[{"type": "text", "text": "weather?"}], name="ada"),
    AIMessage(
        "",
        tool_calls=[
            {"name": "weather", "args": {"city": "Paris"}, "id": "call_1", "type": "tool_call"}
        ],
        additional_kwargs={"refusal": None, "raw": b"\x01"},
        response_metadata={"model_name": "gpt-4o-mini", "finish_reason": "tool_calls"},
        usage_metadata={"input_tokens": 10, "output_tokens": 5, "total_tokens": 15},
        id="run-1",
    ),
    ToolMessage("18C", tool_call_id="call_1", artifact={"raw": [18]}, status="success"),
    AIMessageChunk(content="It is 18C.", id="run-2"),
]


def test_messages_round_trip_exactly() -> None:
    history = SessionChatMessageHistory("u1", store=MemoryBackend())
    history.add_messages(MESSAGES)
    again = SessionChatMessageHistory("u1", store=history.session.backend)
    assert again.messages == MESSAGES
    assert [type(m) for m in again.messages] == [type(m) for m in MESSAGES]
    assert again.last(2) == MESSAGES[-2:]
    assert again.last(0) == []
    again.clear()
    assert history.messages == []


def test_add_message_one_at_a_time_round_trips_exactly() -> None:
    """The single-message fast path keeps what JSON alone would not (bytes, datetimes, sets)."""
    odd = HumanMessage(
        "when?",
        additional_kwargs={"at": dt.datetime(2025, 1, 2, tzinfo=dt.timezone.utc), "tags": {"a"}},
    )
    history = SessionChatMessageHistory("u5", store=MemoryBackend())
    for message in [*MESSAGES, odd]:
        history.add_message(message)
    again = SessionChatMessageHistory("u5", store=history.session.backend).messages
    assert again == [*MESSAGES, odd]
    assert [type(m) for m in again] == [type(m) for m in [*MESSAGES, odd]]
    assert again[-1].additional_kwargs["at"] == odd.additional_kwargs["at"]
    assert again[2].additional_kwargs["raw"] == b"\x01"


async def test_async_history() -> None:
    history = SessionChatMessageHistory("u2", store=MemoryBackend(), namespace="tenant-a")
    await history.aadd_messages(MESSAGES[:2])
    await history.aadd_messages(MESSAGES[2:])
    assert await history.aget_messages() == MESSAGES
    await history.aclear()
    assert await history.aget_messages() == []


def test_add_messages_is_one_round_trip() -> None:
    backend = MemoryBackend()
    calls: list[int] = []
    original = backend.append

    def counting(ns: str, sid: str, key: str, items: Any) -> int:
        calls.append(len(items))
        return original(ns, sid, key, items)

    backend.append = counting  # type: ignore[method-assign]
    SessionChatMessageHistory("u3", store=backend).add_messages(MESSAGES)
    assert calls == [len(MESSAGES)]


def _chain(store: MemoryBackend, replies: list[str]) -> RunnableWithMessageHistory:
    prompt = ChatPromptTemplate.from_messages(
        [("system", "Be brief."), MessagesPlaceholder("history"), ("human", "{question}")]
    )
    model = GenericFakeChatModel(messages=iter([AIMessage(r) for r in replies]))
    # deprecated upstream (langchain-core 1.3.3, removal in 2.0): the legacy path still works
    with pytest.warns(DeprecationWarning, match="RunnableWithMessageHistory is deprecated"):
        return RunnableWithMessageHistory(
            prompt | model,
            lambda session_id: SessionChatMessageHistory(session_id, store=store),
            input_messages_key="question",
            history_messages_key="history",
        )


def test_runnable_with_message_history() -> None:
    store = MemoryBackend()
    chain = _chain(store, ["Hi Ada.", "Your name is Ada."])
    config: Any = {"configurable": {"session_id": "conv-1"}}
    chain.invoke({"question": "I am Ada."}, config=config)
    chain.invoke({"question": "Who am I?"}, config=config)
    stored = SessionChatMessageHistory("conv-1", store=store).messages
    assert [m.content for m in stored] == ["I am Ada.", "Hi Ada.", "Who am I?", "Your name is Ada."]


def test_plain_lcel_with_history() -> None:
    history = SessionChatMessageHistory("lcel", store=MemoryBackend())
    model = GenericFakeChatModel(messages=iter([AIMessage("pong")]))
    question = HumanMessage("ping")
    reply = model.invoke([*history.messages, question])
    history.add_messages([question, reply])
    assert [m.content for m in history.messages] == ["ping", "pong"]


def test_existing_session_and_plain_session_reading() -> None:
    session = Session("shared", store=MemoryBackend())
    SessionChatMessageHistory(session=session, key="chat").add_messages(MESSAGES[:1])
    assert session.get("chat") == MESSAGES[:1]


def test_kv_store_long_and_odd_keys() -> None:
    kv = SessionKVStore("kv", store=MemoryBackend())
    long_key = "k/" * 200
    kv.mset([("a b/c:*", 1), (long_key, {"x": b"\x00"}), ("", "empty")])
    assert kv.mget(["a b/c:*", long_key, "", "missing"]) == [1, {"x": b"\x00"}, "empty", None]
    assert sorted(kv.yield_keys()) == sorted(["a b/c:*", long_key, ""])
    assert list(kv.yield_keys(prefix="k/")) == [long_key]
    kv.mdelete([long_key, "never"])
    assert sorted(kv.yield_keys()) == ["", "a b/c:*"]


class TestSessionKVStoreSync(BaseStoreSyncTests[Any]):
    @pytest.fixture
    def kv_store(self) -> BaseStore[str, Any]:
        return SessionKVStore(f"kv-{uuid.uuid4().hex}", store=MemoryBackend())

    @pytest.fixture
    def three_values(self) -> tuple[Any, Any, Any]:
        return b"foo", {"bar": [1, 2]}, "buzz"


class TestSessionKVStoreAsync(BaseStoreAsyncTests[Any]):
    @pytest.fixture
    async def kv_store(self) -> BaseStore[str, Any]:
        return SessionKVStore(f"kv-{uuid.uuid4().hex}", store=MemoryBackend())

    @pytest.fixture
    def three_values(self) -> tuple[Any, Any, Any]:
        return b"foo", {"bar": [1, 2]}, "buzz"

"""LangChain adapters: a chat message history and a key-value store on :class:`Session`.

``SessionChatMessageHistory`` works with plain LCEL code and with the legacy (deprecated)
``RunnableWithMessageHistory`` (LangGraph apps use :mod:`aipowertools.sessions.langgraph`);
messages round-trip exactly (tool calls, additional kwargs, response metadata, ids).
``SessionKVStore`` is a ``langchain_core.stores.BaseStore`` (e.g. for ``CacheBackedEmbeddings``).

Example:
    >>> from aipowertools.sessions.langchain import SessionChatMessageHistory
    >>> from langchain_core.messages import HumanMessage
    >>> history = SessionChatMessageHistory("user-42", store="memory://")
    >>> history.add_messages([HumanMessage("hi")])
    >>> history.messages
    [HumanMessage(content='hi', additional_kwargs={}, response_metadata={})]
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import BaseMessage, message_to_dict, messages_from_dict
from langchain_core.stores import BaseStore

from aipowertools.sessions._backend import SessionBackend
from aipowertools.sessions._codec import types
from aipowertools.sessions._session import Session

__all__ = ["SessionChatMessageHistory", "SessionKVStore", "register_langchain_types"]

_TYPE_NAME = "langchain.message"


def _decode_message(data: dict[str, Any]) -> BaseMessage:
    return messages_from_dict([data])[0]


def register_langchain_types() -> None:
    """Register LangChain messages with the session type registry (done by the adapters).

    Call it yourself to read LangChain messages back through a plain :class:`Session`.
    """
    if types.by_name(_TYPE_NAME) is None:
        types.register(BaseMessage, name=_TYPE_NAME, encode=message_to_dict, decode=_decode_message)


def _session(
    session_id: str, store: str | SessionBackend | None, session: Session | None, options: Any
) -> Session:
    register_langchain_types()
    return session if session is not None else Session(session_id, store=store, **options)


class SessionChatMessageHistory(BaseChatMessageHistory):
    """Chat history of one session, for ``RunnableWithMessageHistory`` or your own LCEL code.

    Messages are stored as an append-only list: ``add_messages`` is one round trip whatever
    the history length, and concurrent writers never lose a message. ``messages`` returns
    the whole history (never silently truncated); use :meth:`last` for a window.

    Args:
        session_id: the conversation id.
        store: store URL or backend (default: ``AIPOWERTOOLS_STORE`` or embedded diskcache).
        key: the list holding the messages.
        session: an existing :class:`Session` to use instead of ``session_id``/``store``.
        **options: passed to :class:`Session` (``namespace``, ``ttl``, ``max_items``...).

    Example:
        >>> from langchain_core.runnables.history import RunnableWithMessageHistory
        >>> def get_history(session_id: str) -> SessionChatMessageHistory:
        ...     return SessionChatMessageHistory(session_id, store="memory://")
        >>> # RunnableWithMessageHistory(chain, get_history, input_messages_key="question")
    """

    def __init__(
        self,
        session_id: str = "",
        store: str | SessionBackend | None = None,
        *,
        key: str = "messages",
        session: Session | None = None,
        **options: Any,
    ) -> None:
        self.session = _session(session_id, store, session, options)
        self.session_id = self.session.session_id
        self.key = key

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        """Every message of the session, oldest first."""
        found: list[BaseMessage] = self.session.get(self.key, [])
        return found

    async def aget_messages(self) -> list[BaseMessage]:
        """Every message of the session, oldest first."""
        found: list[BaseMessage] = await self.session.aget(self.key, [])
        return found

    def last(self, n: int) -> list[BaseMessage]:
        """The ``n`` newest messages (an explicit window; ``messages`` has them all)."""
        found: list[BaseMessage] = self.session.items(self.key, -n) if n > 0 else []
        return found

    def add_message(self, message: BaseMessage) -> None:
        """Append one message in one round trip."""
        self.session.append(self.key, message)

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Append ``messages`` in one round trip, in order."""
        self.session.extend(self.key, messages)

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Append ``messages`` in one round trip, in order."""
        await self.session.aextend(self.key, messages)

    def clear(self) -> None:
        """Delete every message of the session."""
        self.session.delete(self.key)

    async def aclear(self) -> None:
        """Delete every message of the session."""
        await self.session.adelete(self.key)


def _name(key: str) -> str:
    raw = key.encode()
    encoded = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    if len(encoded) <= 190:
        return "k" + encoded.replace("_", ".")  # '_' stays free for hashed names
    return "h_" + hashlib.sha256(raw).hexdigest()


def _key_of(name: str) -> str | None:
    if not name.startswith("k"):
        return None
    encoded = name[1:].replace(".", "_")
    return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()


class SessionKVStore(BaseStore[str, Any]):
    """A LangChain ``BaseStore`` kept in one session: any string key, any storable value.

    Args:
        session_id: the session holding the entries.
        store: store URL or backend.
        session: an existing :class:`Session` to use instead.
        **options: passed to :class:`Session`.

    Example:
        >>> kv = SessionKVStore("embeddings-cache", store="memory://")
        >>> kv.mset([("doc-1", b"vector bytes")])
        >>> kv.mget(["doc-1", "missing"])
        [b'vector bytes', None]
    """

    def __init__(
        self,
        session_id: str = "kv",
        store: str | SessionBackend | None = None,
        *,
        session: Session | None = None,
        **options: Any,
    ) -> None:
        self.session = _session(session_id, store, session, options)

    def mget(self, keys: Sequence[str]) -> list[Any | None]:
        """Values of ``keys`` (None where missing)."""
        out: list[Any | None] = []
        for key in keys:
            found = self.session.get(_name(key))
            out.append(found[1] if found is not None else None)
        return out

    def mset(self, key_value_pairs: Sequence[tuple[str, Any]]) -> None:
        """Store each pair (last write wins)."""
        for key, value in key_value_pairs:
            self.session.set(_name(key), [key, value])

    def mdelete(self, keys: Sequence[str]) -> None:
        """Delete ``keys``; missing ones are ignored."""
        for key in keys:
            self.session.delete(_name(key))

    def yield_keys(self, *, prefix: str | None = None) -> Iterator[str]:
        """Every key, or those starting with ``prefix``."""
        for name in self.session.keys():  # noqa: SIM118 - a Session, not a dict
            key = _key_of(name)
            if key is None:
                found = self.session.get(name)
                key = found[0] if found is not None else None
            if key is not None and (prefix is None or key.startswith(prefix)):
                yield key

    async def amget(self, keys: Sequence[str]) -> list[Any | None]:
        """Async :meth:`mget`."""
        import asyncio

        return await asyncio.to_thread(self.mget, keys)

    async def amset(self, key_value_pairs: Sequence[tuple[str, Any]]) -> None:
        """Async :meth:`mset`."""
        import asyncio

        await asyncio.to_thread(self.mset, key_value_pairs)

    async def amdelete(self, keys: Sequence[str]) -> None:
        """Async :meth:`mdelete`."""
        import asyncio

        await asyncio.to_thread(self.mdelete, keys)

    async def ayield_keys(self, *, prefix: str | None = None) -> AsyncIterator[str]:
        """Async :meth:`yield_keys`."""
        import asyncio

        for key in await asyncio.to_thread(lambda: list(self.yield_keys(prefix=prefix))):
            yield key

"""LlamaIndex adapters: chat stores on :class:`Session`.

* :class:`SessionChatStore` is a ``BaseChatStore`` (sync and async) for
  ``ChatMemoryBuffer.from_defaults(chat_store=...)`` and chat engines.
* :class:`SessionDBChatStore` is an ``AsyncDBChatStore`` for the newer
  ``Memory.from_defaults(chat_store=...)``, with active and archived messages.

Each chat-store key is one session (``namespace`` keeps applications apart); messages are an
append-only list, so adding one is a single O(1) write and concurrent writers lose nothing.

Example:
    >>> from llama_index.core.memory import ChatMemoryBuffer
    >>> store = SessionChatStore(store="memory://")
    >>> memory = ChatMemoryBuffer.from_defaults(chat_store=store, chat_store_key="user-42")
"""

from __future__ import annotations

import base64
from typing import Any

from llama_index.core.llms import ChatMessage
from llama_index.core.storage.chat_store.base import BaseChatStore
from llama_index.core.storage.chat_store.base_db import AsyncDBChatStore, MessageStatus
from pydantic import PrivateAttr

from aipowertools.core.errors import ConfigurationError
from aipowertools.sessions._backend import SessionBackend
from aipowertools.sessions._codec import types
from aipowertools.sessions._ids import check_name
from aipowertools.sessions._session import Session

__all__ = ["SessionChatStore", "SessionDBChatStore", "register_llama_index_types"]

_TYPE_NAME = "llama_index.chat_message"


def register_llama_index_types() -> None:
    """Register LlamaIndex ``ChatMessage`` with the session type registry (adapters do this)."""
    if types.by_name(_TYPE_NAME) is None:
        types.register(ChatMessage, name=_TYPE_NAME)


_ENCODED = "b64="


def encode_key(key: str) -> str:
    """The session id of a chat key: itself when it is a safe id, else ``b64=`` + base64url.

    LlamaIndex apps key chats as they like (``user:42``, ``team/alice``, e-mail addresses with
    spaces ...); every such key is accepted and stored under a reversible, safe id.
    """
    if not isinstance(key, str):
        raise ConfigurationError(f"a chat key is a str, got {type(key).__name__}")
    try:
        if not key.startswith(_ENCODED):
            return check_name(key, "chat key")
    except ConfigurationError:
        pass
    encoded = _ENCODED + base64.urlsafe_b64encode(key.encode()).decode()
    return check_name(encoded, "chat key (encoded)")


def decode_key(sid: str) -> str:
    """The chat key of a session id written by :func:`encode_key`."""
    if sid.startswith(_ENCODED):
        try:
            raw = base64.b64decode(sid[len(_ENCODED) :], altchars=b"-_", validate=True)
            return raw.decode()
        except ValueError:  # not one of ours: show it as it is
            return sid
    return sid


class _Sessions:
    """Opens one Session per chat key with shared options."""

    def __init__(self, store: str | SessionBackend | None, options: dict[str, Any]) -> None:
        register_llama_index_types()
        self.options = options
        self.backend = Session("probe", store=store, **options).backend

        self._open: dict[str, Session] = {}

    def __call__(self, key: str) -> Session:
        session = self._open.get(key)
        if session is None:
            if len(self._open) >= 1024:
                self._open.clear()
            session = self._open[key] = Session(encode_key(key), store=self.backend, **self.options)
        return session


class SessionChatStore(BaseChatStore):
    """A LlamaIndex ``BaseChatStore`` on any session store.

    Args:
        store: store URL or backend (default: ``AIPOWERTOOLS_STORE`` or embedded diskcache).
        list_key: the session list that holds the messages.
        **options: passed to :class:`Session` (``namespace``, ``ttl``, ``codec``...).

    Example:
        >>> from llama_index.core.llms import ChatMessage
        >>> store = SessionChatStore(store="memory://")
        >>> store.add_message("user-42", ChatMessage(role="user", content="hi"))
        >>> store.get_messages("user-42")[0].content
        'hi'
    """

    list_key: str = "messages"
    _sessions: _Sessions = PrivateAttr()

    def __init__(
        self,
        store: str | SessionBackend | None = None,
        *,
        list_key: str = "messages",
        **options: Any,
    ) -> None:
        super().__init__()
        self.list_key = list_key
        self._sessions = _Sessions(store, options)

    @classmethod
    def class_name(cls) -> str:
        """The LlamaIndex class name."""
        return "SessionChatStore"

    def _s(self, key: str) -> Session:
        # straight from pydantic's private-attribute dict: its __getattr__ costs microseconds
        private: dict[str, Any] = self.__pydantic_private__  # type: ignore[assignment]
        session: Session = private["_sessions"](key)
        return session

    def set_messages(self, key: str, messages: list[ChatMessage]) -> None:
        """Replace the messages of ``key`` (under the session lock)."""
        s = self._s(key)
        with s.lock("chat"):
            s.delete(self.list_key)
            s.extend(self.list_key, messages)

    def get_messages(self, key: str) -> list[ChatMessage]:
        """Every message of ``key``, oldest first."""
        found: list[ChatMessage] = self._s(key).get(self.list_key, [])
        return found

    def add_message(self, key: str, message: ChatMessage, idx: int | None = None) -> None:
        """Append ``message`` (O(1)); with ``idx``, insert it there (rewrites the list)."""
        s = self._s(key)
        if idx is None:
            s.append(self.list_key, message)
            return
        with s.lock("chat"):
            messages = s.get(self.list_key, [])
            messages.insert(idx, message)
            s.delete(self.list_key)
            s.extend(self.list_key, messages)

    def delete_messages(self, key: str) -> list[ChatMessage] | None:
        """Delete and return every message of ``key`` (None if there were none)."""
        s = self._s(key)
        with s.lock("chat"):
            messages: list[ChatMessage] = s.get(self.list_key, [])
            s.delete(self.list_key)
        return messages or None

    def delete_message(self, key: str, idx: int) -> ChatMessage | None:
        """Delete and return the message at ``idx`` (None if out of range)."""
        s = self._s(key)
        with s.lock("chat"):
            messages = s.get(self.list_key, [])
            if not -len(messages) <= idx < len(messages):
                return None
            gone: ChatMessage = messages.pop(idx)
            s.delete(self.list_key)
            s.extend(self.list_key, messages)
        return gone

    def delete_last_message(self, key: str) -> ChatMessage | None:
        """Delete and return the newest message of ``key``."""
        return self.delete_message(key, -1)

    def get_keys(self) -> list[str]:
        """Every chat key with a live session."""
        return [
            decode_key(sid)
            for sid in Session.list_sessions(
                self._sessions.backend,
                namespace=self._sessions.options.get("namespace", "default"),
            )
        ]

    async def aset_messages(self, key: str, messages: list[ChatMessage]) -> None:
        """Async :meth:`set_messages`."""
        import asyncio

        await asyncio.to_thread(self.set_messages, key, messages)

    async def aget_messages(self, key: str) -> list[ChatMessage]:
        """Async :meth:`get_messages`."""
        found: list[ChatMessage] = await self._s(key).aget(self.list_key, [])
        return found

    async def async_add_message(
        self, key: str, message: ChatMessage, idx: int | None = None
    ) -> None:
        """Async :meth:`add_message`."""
        if idx is None:
            await self._s(key).aappend(self.list_key, message)
            return
        import asyncio

        await asyncio.to_thread(self.add_message, key, message, idx)

    async def adelete_messages(self, key: str) -> list[ChatMessage] | None:
        """Async :meth:`delete_messages`."""
        import asyncio

        return await asyncio.to_thread(self.delete_messages, key)

    async def adelete_message(self, key: str, idx: int) -> ChatMessage | None:
        """Async :meth:`delete_message`."""
        import asyncio

        return await asyncio.to_thread(self.delete_message, key, idx)

    async def adelete_last_message(self, key: str) -> ChatMessage | None:
        """Async :meth:`delete_last_message`."""
        return await self.adelete_message(key, -1)

    async def aget_keys(self) -> list[str]:
        """Async :meth:`get_keys`."""
        import asyncio

        return await asyncio.to_thread(self.get_keys)


_ACTIVE, _ARCHIVED = "active", "archived"


class SessionDBChatStore(AsyncDBChatStore):
    """An ``AsyncDBChatStore`` for ``llama_index.core.memory.Memory`` on any session store.

    Active and archived messages are two append-only lists of the key's session; archiving
    moves the oldest active messages to the archive under the session lock.

    Args:
        store: store URL or backend.
        **options: passed to :class:`Session`.

    Example:
        >>> from llama_index.core.memory import Memory
        >>> store = SessionDBChatStore(store="memory://")
        >>> memory = Memory.from_defaults(session_id="user-42", chat_store=store)
    """

    _sessions: _Sessions = PrivateAttr()

    def __init__(self, store: str | SessionBackend | None = None, **options: Any) -> None:
        super().__init__()
        self._sessions = _Sessions(store, options)

    @classmethod
    def class_name(cls) -> str:
        """The LlamaIndex class name."""
        return "SessionDBChatStore"

    @staticmethod
    def _lists(status: MessageStatus | None) -> list[str]:
        if status is None:
            return [_ARCHIVED, _ACTIVE]
        return [_ACTIVE if status == MessageStatus.ACTIVE else _ARCHIVED]

    async def get_messages(
        self,
        key: str,
        status: MessageStatus | None = MessageStatus.ACTIVE,
        limit: int | None = None,
        offset: int | None = None,
    ) -> list[ChatMessage]:
        """Messages of ``key`` with ``status`` (None: archived then active), paged."""
        s = self._sessions(key)
        out: list[ChatMessage] = []
        for name in self._lists(status):
            out.extend(await s.aget(name, []))
        start = offset or 0
        return out[start : None if limit is None else start + limit]

    async def count_messages(
        self, key: str, status: MessageStatus | None = MessageStatus.ACTIVE
    ) -> int:
        """How many messages ``key`` has with ``status``."""
        s = self._sessions(key)
        return sum([await s.alength(name) for name in self._lists(status)])

    async def add_message(
        self, key: str, message: ChatMessage, status: MessageStatus = MessageStatus.ACTIVE
    ) -> None:
        """Append one message (O(1))."""
        await self._sessions(key).aappend(self._lists(status)[0], message)

    async def add_messages(
        self,
        key: str,
        messages: list[ChatMessage],
        status: MessageStatus = MessageStatus.ACTIVE,
    ) -> None:
        """Append ``messages`` in one round trip."""
        await self._sessions(key).aextend(self._lists(status)[0], messages)

    async def set_messages(
        self,
        key: str,
        messages: list[ChatMessage],
        status: MessageStatus = MessageStatus.ACTIVE,
    ) -> None:
        """Replace the messages of ``key`` with ``status``."""
        s = self._sessions(key)
        name = self._lists(status)[0]
        async with s.alock("chat"):
            await s.adelete(name)
            await s.aextend(name, messages)

    async def delete_message(self, key: str, idx: int) -> ChatMessage | None:
        """Delete and return the active message at ``idx``."""
        s = self._sessions(key)
        async with s.alock("chat"):
            messages = await s.aget(_ACTIVE, [])
            if not -len(messages) <= idx < len(messages):
                return None
            gone: ChatMessage = messages.pop(idx)
            await s.adelete(_ACTIVE)
            await s.aextend(_ACTIVE, messages)
        return gone

    async def delete_messages(self, key: str, status: MessageStatus | None = None) -> None:
        """Delete the messages of ``key`` with ``status`` (None: all)."""
        s = self._sessions(key)
        for name in self._lists(status):
            await s.adelete(name)

    async def _take_oldest(self, key: str, n: int, archive: bool) -> list[ChatMessage]:
        s = self._sessions(key)
        async with s.alock("chat"):
            active = await s.aget(_ACTIVE, [])
            taken: list[ChatMessage] = active[:n]
            if taken:
                if archive:
                    await s.aextend(_ARCHIVED, taken)
                await s.adelete(_ACTIVE)
                await s.aextend(_ACTIVE, active[n:])
        return taken

    async def delete_oldest_messages(self, key: str, n: int) -> list[ChatMessage]:
        """Delete and return the ``n`` oldest active messages."""
        return await self._take_oldest(key, n, archive=False)

    async def archive_oldest_messages(self, key: str, n: int) -> list[ChatMessage]:
        """Move the ``n`` oldest active messages to the archive and return them."""
        return await self._take_oldest(key, n, archive=True)

    async def get_keys(self) -> list[str]:
        """Every chat key with a live session."""
        import asyncio

        sids = await asyncio.to_thread(
            Session.list_sessions,
            self._sessions.backend,
            namespace=self._sessions.options.get("namespace", "default"),
        )
        return [decode_key(sid) for sid in sids]

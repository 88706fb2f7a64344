"""aipowertools.sessions: a session store that never loses a message, and LangGraph persistence.

Named values and append-only lists per session, on an embedded diskcache store by default and
on Redis, PostgreSQL or S3 by URL; chat-history adapters for LangChain
(:mod:`aipowertools.sessions.langchain`) and LlamaIndex (:mod:`aipowertools.sessions.llama_index`);
a LangGraph checkpointer and store on the same stores (:mod:`aipowertools.sessions.langgraph`).

Example:
    >>> from aipowertools.sessions import Session
    >>> session = Session("project-abc", store="memory://")
    >>> session.append("conversation_history", {"role": "user", "content": "hello"})
    >>> session.get("conversation_history")
    [{'role': 'user', 'content': 'hello'}]
"""

from importlib.metadata import version as _version

from aipowertools.sessions._backend import MemoryBackend, SessionBackend, Versioned
from aipowertools.sessions._codec import (
    AESGCMEncryption,
    Codec,
    Encryption,
    FernetEncryption,
    TypeRegistry,
    register_type,
)
from aipowertools.sessions._errors import SessionIntegrityError, SessionLimitError, SessionLockError
from aipowertools.sessions._session import Session
from aipowertools.sessions._stores import default_store_url, open_store

__version__ = _version("aipowertools-sessions")

__all__ = [
    "AESGCMEncryption",
    "Codec",
    "Encryption",
    "FernetEncryption",
    "MemoryBackend",
    "Session",
    "SessionBackend",
    "SessionIntegrityError",
    "SessionLimitError",
    "SessionLockError",
    "TypeRegistry",
    "Versioned",
    "__version__",
    "default_store_url",
    "open_store",
    "register_type",
]

"""LangGraph persistence on the sessions' stores: a checkpointer and a long-term memory store.

``CheckpointSaver`` (short-term memory: a graph's checkpoints per thread) and ``Store``
(long-term memory: JSON items in namespaces, with search) run on the embedded store, plain
Redis or PostgreSQL, chosen by the same store URL as every other piece of the suite, with the
sessions codec's compression and encryption.

Example:
    >>> from aipowertools.sessions.langgraph import CheckpointSaver, Store  # doctest: +SKIP
    >>> graph = builder.compile(  # doctest: +SKIP
    ...     checkpointer=CheckpointSaver("postgresql://localhost/app"),
    ...     store=Store("postgresql://localhost/app"),
    ... )
"""

from aipowertools.sessions.langgraph._saver import CheckpointSaver
from aipowertools.sessions.langgraph._store import Store

__all__ = ["CheckpointSaver", "Store"]

"""A lane of kept Redis connections for the session append's single command.

redis-py's ``execute_command`` (retry wrapper, metrics, events, a poll of every borrowed
connection) costs about twice the loopback round trip itself; the Redis backend's append sends
its one RPUSH through a :class:`Lane` instead when the client allows it, and hands anything
unusual back to the full path.
"""

from __future__ import annotations

import inspect
import os
import threading
import weakref
from typing import Any

#: Returned by :meth:`Lane.call` when the connection failed: the caller uses the full path.
FAILED: Any = object()


class Lane:
    """A few connections of one redis-py pool, kept checked out to send single commands cheaply.

    A command is sent with ``send_command`` and its reply read with ``read_response`` on a
    connection popped from this lane's idle list (borrowed from the pool when the list is
    empty, so concurrent threads never share one). Only a large, plain
    ``redis.ConnectionPool`` without client-side caching gets a lane (:func:`lane_for`); at
    most ``KEEP`` connections stay idle here, the rest go back to the pool.

    On a connection failure (the connection has already closed itself) :meth:`call` returns
    :data:`FAILED` without raising, and the caller sends the command through the client's
    ``execute_command``, with the client's retry policy and typed errors — the same retry
    redis-py applies to every command. A reply error (``WRONGTYPE``) is raised as redis-py
    raises it. After a fork the parent's connections are left alone and new ones borrowed.
    """

    KEEP = 4

    def __init__(self, pool: Any) -> None:
        self._pool = weakref.ref(pool)
        self._idle: list[Any] = []
        self._pid = os.getpid()
        # redis-py < 5.3 needs a command name; later versions warn when given one.
        params = list(inspect.signature(pool.get_connection).parameters.values())
        required = params and params[0].default is inspect.Parameter.empty
        self._borrow_args: tuple[str, ...] = ("RPUSH",) if required else ()
        import redis.exceptions

        self._failures = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
        self._reply_error = redis.exceptions.ResponseError
        self.no_script = redis.exceptions.NoScriptError

    def _take(self) -> Any:
        """An idle connection, or one borrowed from the pool; None if there is none to be had."""
        if self._pid != os.getpid():  # forked: the parent's sockets are not ours to use
            self._idle, self._pid = [], os.getpid()
        try:
            return self._idle.pop()
        except IndexError:
            pool = self._pool()
            if pool is None:
                return None
            try:
                return pool.get_connection(*self._borrow_args)
            except self._failures:
                return None

    def call(self, *args: Any) -> Any:
        """Send one command and return its reply, or :data:`FAILED` if the connection failed."""
        conn = self._take()
        if conn is None:
            return FAILED
        try:
            conn.send_command(*args)
            reply = conn.read_response()
        except self._reply_error:  # the whole reply was read: the connection is clean
            self._put(conn)
            raise
        except self._failures:  # redis-py closed the connection; it reconnects on next use
            self._put(conn)
            return FAILED
        except BaseException:  # interrupted mid-command: do not reuse the half-read socket
            conn.disconnect()
            self._put(conn)
            raise
        self._put(conn)
        return reply

    def call_many(self, *commands: tuple[Any, ...]) -> Any:
        """Send ``commands`` together and return their replies (one round trip), or FAILED.

        Every reply is read before a reply error is raised, so the connection stays in step.
        """
        conn = self._take()
        if conn is None:
            return FAILED
        replies: list[Any] = []
        error: Exception | None = None
        try:
            conn.send_packed_command(conn.pack_commands(commands))
            for _ in commands:
                try:
                    replies.append(conn.read_response())
                except self._reply_error as exc:
                    error = error or exc
                    replies.append(exc)
        except self._failures:
            self._put(conn)
            return FAILED
        except BaseException:
            conn.disconnect()
            self._put(conn)
            raise
        self._put(conn)
        if error is not None:
            raise error
        return replies

    def _put(self, conn: Any) -> None:
        should_reconnect = getattr(conn, "should_reconnect", None)  # redis-py >= 6
        if len(self._idle) < self.KEEP and not (should_reconnect and should_reconnect()):
            self._idle.append(conn)
            return
        pool = self._pool()
        if pool is not None:
            pool.release(conn)

    def drain(self) -> None:
        """Give every idle connection back to the pool."""
        pool = self._pool()
        while self._idle:
            conn = self._idle.pop()
            if pool is not None and self._pid == os.getpid():
                pool.release(conn)


_lanes: weakref.WeakKeyDictionary[Any, Lane] = weakref.WeakKeyDictionary()
_lanes_mutex = threading.Lock()


def lane_for(client: Any) -> Lane | None:
    """The lane shared by every backend on ``client``'s pool, or None if the pool is unusual.

    Only a plain synchronous ``redis.Redis`` on a ``redis.ConnectionPool`` of at least 64
    connections (redis-py's default is 100) without client-side caching qualifies: a small or
    blocking pool should not lose connections to an idle lane, a cluster client routes
    commands itself, and a single-connection client already holds its connection.
    """
    try:
        import redis
    except ImportError:  # pragma: no cover - the backend needs redis anyway
        return None
    pool = getattr(client, "connection_pool", None)
    if (
        not isinstance(client, redis.Redis)
        or getattr(client, "connection", None) is not None
        or type(pool) is not redis.ConnectionPool
        or getattr(pool, "cache", None) is not None
        or getattr(pool, "max_connections", 0) < 16 * Lane.KEEP
    ):
        return None
    with _lanes_mutex:
        lane = _lanes.get(pool)
        if lane is None:
            lane = _lanes[pool] = Lane(pool)
        return lane

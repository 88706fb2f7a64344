"""Errors specific to sessions, rooted in the core error tree."""

from __future__ import annotations

from typing import Any

from aipowertools.core.errors import AIPowerToolsError, ConfigurationError


class SessionIntegrityError(AIPowerToolsError):
    """Stored session data failed an integrity check (tampered, foreign or undecryptable).

    Raised instead of ever returning or executing data the session did not write itself: a
    bad HMAC on a pickle, an AES-GCM tag mismatch, a Fernet token that no configured key opens,
    or an unknown envelope.
    """

    def __init__(self, where: str, reason: str) -> None:
        self.where = where
        self.reason = reason
        super().__init__(
            f"{where}: {reason}. The stored bytes were not written by this session's codec "
            "(or were changed since); check the encryption / signing keys, or delete the entry."
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.where, self.reason))


class SessionLimitError(ConfigurationError):
    """A write would exceed a size limit of the session (``max_value_bytes``, ``max_items``)."""

    def __init__(self, session_id: str, key: str, reason: str) -> None:
        self.session_id = session_id
        self.key = key
        self.reason = reason
        super().__init__(
            f"session {session_id!r}, key {key!r}: {reason}. Raise the limit, store less, or "
            "use trim='oldest' to drop the oldest list items instead."
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.session_id, self.key, self.reason))


class SessionLockError(AIPowerToolsError, TimeoutError):
    """A session lock could not be acquired within its timeout."""

    def __init__(self, session_id: str, name: str, timeout: float) -> None:
        self.session_id = session_id
        self.name = name
        self.timeout = timeout
        super().__init__(
            f"session {session_id!r}: lock {name!r} is held by another writer and was not "
            f"released within {timeout:g} s; retry later or raise the timeout"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.session_id, self.name, self.timeout))


class SessionTypeError(ConfigurationError, TypeError):
    """A list operation on a name that holds a value of another type (``append`` to a dict)."""

    def __init__(self, session_id: str, key: str, found: str) -> None:
        self.session_id = session_id
        self.key = key
        self.found = found
        super().__init__(
            f"session {session_id!r}, key {key!r} holds a {found}, not a list: append and "
            f"extend add to lists only. set({key!r}, [...]) to start a list under this name, "
            "or use another name"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.session_id, self.key, self.found))

"""Which store a limiter or breaker uses: an explicit URL, ``AIPOWERTOOLS_STORE``, or memory."""

from __future__ import annotations

import logging
import os

from aipowertools.core.errors import StoreURLError

logger = logging.getLogger("aipowertools.resilience")

SHARED_SCHEMES = ("redis",)


def resolve_store(url: str | None, what: str) -> tuple[str, bool]:
    """Return ``(url, shared)`` for a limiter or breaker.

    An explicit URL must be ``memory://`` or ``redis://`` / ``rediss://``. Without one, a Redis
    ``AIPOWERTOOLS_STORE`` is used (so one variable shares every stateful piece); any other
    default store (SQLite, PostgreSQL, ...) cannot hold live limits, so state stays in memory.
    """
    from aipowertools.core.stores import parse_store_url

    explicit = url is not None
    if not explicit and not os.environ.get("AIPOWERTOOLS_STORE", "").strip():
        return "memory://", False
    parsed = parse_store_url(url, default="memory://")
    if parsed.scheme == "memory":
        return parsed.raw, False
    if parsed.scheme in SHARED_SCHEMES:
        return parsed.raw, True
    if explicit:
        raise StoreURLError(
            parsed.raw, f"{what} state lives in memory:// (one process) or redis:// (shared)"
        )
    logger.info(
        "%s keeps its state in memory: AIPOWERTOOLS_STORE=%s is not a Redis URL",
        what,
        parsed.masked(),
    )
    return "memory://", False

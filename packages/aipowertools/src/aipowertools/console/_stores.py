"""Which stores the operator's tools read: the same URLs, in the same order, as the library.

* the ledger (costs, budgets): ``--store``, else ``$AIPOWERTOOLS_STORE``, else
  ``ledger.db`` in the data directory (what :class:`~aipowertools.core.CostTracker` does);
* the log store (events, audit chain): ``--log-store``, else ``$AIPOWERTOOLS_LOG_STORE``, else
  the ledger's URL when it is PostgreSQL, else ``events.db`` in the data directory (what
  :class:`~aipowertools.callbacks.StructuredLogger` does);
* sessions: the ledger's URL when it is Redis, PostgreSQL or memory, else the embedded
  diskcache directory (what :class:`~aipowertools.sessions.Session` does).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aipowertools.core.errors import ConfigurationError

if TYPE_CHECKING:
    from aipowertools.core import CostTracker


@dataclass(frozen=True)
class Stores:
    """The resolved store URLs (``None`` for the library's embedded default)."""

    ledger: str
    logs: str
    sessions: str
    namespace: str = "default"

    @classmethod
    def resolve(
        cls,
        store: str | None = None,
        log_store: str | None = None,
        namespace: str = "default",
        *,
        home: str | Path | None = None,
    ) -> Stores:
        """Resolve the URLs from the arguments and the environment.

        ``home`` is a data directory whose embedded stores are read instead of the
        environment's defaults (``store`` and ``log_store`` still win).
        """
        from aipowertools.core.stores import data_dir, parse_store_url

        if home is not None:
            base = Path(home).expanduser().resolve()
            ledger = parse_store_url(store or f"sqlite:///{base / 'ledger.db'}", default="")
            logs = log_store or (ledger.raw if ledger.scheme == "postgresql" else "")
        else:
            base = data_dir()
            ledger = parse_store_url(store, default=f"sqlite:///{base / 'ledger.db'}")
            logs = log_store or os.environ.get("AIPOWERTOOLS_LOG_STORE") or ""
            if not logs and ledger.scheme == "postgresql":
                logs = ledger.raw
        logs = logs or f"sqlite:///{base / 'events.db'}"
        sessions = (
            ledger.raw
            if ledger.scheme in ("redis", "postgresql", "memory")
            else f"diskcache://{base / 'sessions'}"
        )
        return cls(ledger.raw, logs, sessions, namespace)

    def tracker(self) -> CostTracker:
        """A :class:`CostTracker` on the ledger store (no budget of its own)."""
        from aipowertools.core import CostTracker

        return CostTracker(store=self.ledger, namespace=self.namespace)

    def log_sink(self) -> Any:
        """The queryable sink of the log store (SQLite or PostgreSQL)."""
        from aipowertools.callbacks import PostgresSink, SQLiteSink

        url = self.logs
        if url.startswith("sqlite:///"):
            return SQLiteSink(url[len("sqlite:///") :])
        if url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
            return PostgresSink(url.replace("postgresql+psycopg://", "postgresql://"))
        raise ConfigurationError(
            f"log store {mask(url)!r} cannot be queried: use sqlite:///path or postgresql://..."
            " (--log-store or AIPOWERTOOLS_LOG_STORE)"
        )

    def describe(self) -> dict[str, str]:
        """The URLs with passwords masked."""
        return {
            "ledger": mask(self.ledger),
            "logs": mask(self.logs),
            "sessions": mask(self.sessions),
        }


def mask(url: str) -> str:
    """``url`` with its password replaced by ``***``."""
    from aipowertools.core.stores import parse_store_url

    try:
        return parse_store_url(url, default="memory://").masked()
    except ConfigurationError:
        return url.split("@")[-1]

"""A durable local journal of ledger writes the store did not take (settle during an outage).

When the provider has answered, its cost must be recorded even if the ledger's store (Redis,
PostgreSQL) is down at that moment. :class:`SettleJournal` appends the record, with the id of
the reservation it settles, to a JSON-lines file under the data directory and fsyncs it; the
tracker replays the journal on its next write (in this process or the next one) and removes
what landed. Ledger writes are idempotent by request id, so a record replayed twice is counted
once. The reservation's hold stays in the store until the replayed write settles it (or it
expires), so the budget never looks freer than it is.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from aipowertools.core._errors import StoreUnavailableError
from aipowertools.core._ledger import LedgerRecord

try:  # POSIX: one replaying process at a time, appends never interleave with a rewrite
    import fcntl
except ImportError:  # pragma: no cover - Windows: the in-process lock only
    fcntl = None  # type: ignore[assignment]


class SettleJournal:
    """Records waiting for their store, one JSON line each, fsynced before ``add`` returns.

    Args:
        path: The journal file (created on first ``add``).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    @classmethod
    def for_store(cls, store_key: str) -> SettleJournal:
        """The journal of one store (URL and namespace) under the data directory."""
        from aipowertools.core.stores import data_dir

        digest = hashlib.sha256(store_key.encode()).hexdigest()[:16]
        return cls(data_dir() / "journal" / f"ledger-{digest}.jsonl")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[Any]:
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a+", encoding="utf-8") as fh:
                if fcntl is not None:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
                try:
                    yield fh
                finally:
                    if fcntl is not None:
                        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def add(self, record: LedgerRecord, reservation_id: str | None) -> None:
        """Append one record durably (written and fsynced before this returns)."""
        data = asdict(record)
        data["tags"] = list(record.tags)
        line = json.dumps({"record": data, "reservation_id": reservation_id}) + "\n"
        with self._locked() as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    def pending(self) -> int:
        """How many records wait in the journal."""
        try:
            with open(self.path, encoding="utf-8") as fh:
                return sum(1 for line in fh if line.strip())
        except FileNotFoundError:
            return 0

    def has_pending(self) -> bool:
        """Whether the journal holds anything (a cheap stat)."""
        try:
            return self.path.stat().st_size > 0
        except FileNotFoundError:
            return False

    def replay(self, write: Callable[[LedgerRecord, str | None], None]) -> int:
        """Write every journaled record with ``write``; keep what the store still refuses.

        Stops at the first :class:`StoreUnavailableError` (the store is still down). A line
        that cannot be read is kept aside in ``<journal>.bad`` rather than lost or retried for
        ever. Returns how many records landed.
        """
        with self._locked() as fh:
            fh.seek(0)
            lines = [line for line in fh.read().splitlines() if line.strip()]
            landed = 0
            kept: list[str] = []
            bad: list[str] = []
            for i, line in enumerate(lines):
                try:
                    entry = json.loads(line)
                    data = dict(entry["record"])
                    data["tags"] = tuple(data.get("tags") or ())
                    record = LedgerRecord(**data)
                    reservation_id = entry.get("reservation_id")
                except (ValueError, TypeError, KeyError):
                    bad.append(line)
                    continue
                try:
                    write(record, reservation_id)
                except StoreUnavailableError:
                    kept = lines[i:]
                    break
                landed += 1
            if bad:
                with open(self.path.with_suffix(".bad"), "a", encoding="utf-8") as out:
                    out.write("".join(b + "\n" for b in bad))
            fh.seek(0)
            fh.truncate()
            fh.write("".join(k + "\n" for k in kept))
            fh.flush()
            os.fsync(fh.fileno())
            return landed

"""The audit hash chain: each audit record stores the hash of the one before it.

``hash_n = H(prev_hash | seq | canonical_json(event))`` with ``H`` = SHA-256, or HMAC-SHA-256
when a key is configured (then nobody without the key can forge a consistent chain). Records
are numbered 1, 2, 3 ... so deleting, inserting or reordering a record breaks either the
numbering or the link, and changing one breaks its own hash. ``verify`` walks the chain and
names the first record that does not check out.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

GENESIS = "0" * 64


def canonical(event: dict[str, Any]) -> str:
    """Serialise an event deterministically (sorted keys, no spaces)."""
    return json.dumps(event, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)


def chain_hash(prev_hash: str, seq: int, payload: str, key: bytes | None = None) -> str:
    """Return the hash of record ``seq`` whose canonical JSON is ``payload``."""
    message = f"{prev_hash}|{seq}|{payload}".encode()
    if key is not None:
        return hmac.new(key, message, hashlib.sha256).hexdigest()
    return hashlib.sha256(message).hexdigest()


@dataclass(frozen=True)
class AuditReport:
    """Result of ``StructuredLogger.verify()``.

    Attributes:
        ok: Whether the whole chain checks out.
        checked: How many records were checked.
        first_bad_seq: Sequence number of the first record that fails, if any.
        reason: Why it fails (changed, missing record before it, inserted or reordered).
        record: The failing record's event, as stored.
        head_hash: Hash of the last good record (store it elsewhere to detect truncation).
    """

    ok: bool
    checked: int
    first_bad_seq: int | None = None
    reason: str = ""
    record: dict[str, Any] | None = field(default=None, compare=False)
    head_hash: str = GENESIS

    def __bool__(self) -> bool:
        return self.ok


def verify_rows(
    rows: Iterable[tuple[int, str, str, str]],
    *,
    key: bytes | None = None,
    expected_head: str | None = None,
) -> AuditReport:
    """Check rows ``(seq, prev_hash, hash, payload)`` ordered as stored by ``seq``."""
    expected_seq = 1
    prev = GENESIS
    checked = 0
    for seq, prev_hash, stored_hash, payload in rows:
        record = _load(payload)
        if seq != expected_seq:
            what = (
                f"record {expected_seq}"
                if seq > expected_seq
                else "a record with a repeated number"
            )
            return AuditReport(
                False,
                checked,
                seq,
                f"audit record {seq}: expected number {expected_seq}: {what} was deleted, "
                "inserted or reordered before it",
                record,
                prev,
            )
        if prev_hash != prev:
            return AuditReport(
                False,
                checked,
                seq,
                f"audit record {seq}: its previous-hash link does not match record {seq - 1}: "
                "a record before it was inserted, deleted, changed or reordered",
                record,
                prev,
            )
        if chain_hash(prev_hash, seq, payload, key) != stored_hash:
            return AuditReport(
                False,
                checked,
                seq,
                f"audit record {seq}: its content does not match its hash: it was changed",
                record,
                prev,
            )
        checked += 1
        expected_seq += 1
        prev = stored_hash
    if expected_head is not None and expected_head != prev:
        return AuditReport(
            False,
            checked,
            expected_seq,
            f"the chain ends at record {expected_seq - 1}, whose hash is not the expected head: "
            "records were deleted from the end",
            None,
            prev,
        )
    return AuditReport(True, checked, head_hash=prev)


def _load(payload: str) -> dict[str, Any] | None:
    try:
        value = json.loads(payload)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None

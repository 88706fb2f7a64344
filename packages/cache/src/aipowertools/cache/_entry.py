"""A cached answer as stored: JSON bytes with the value, whom it was for, and its expiry."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

FORMAT = 1


class CorruptEntry(Exception):
    """Stored bytes that do not decode to an entry for the key they were read under."""


@dataclass(frozen=True)
class Entry:
    """One cached answer.

    Attributes:
        key: the request key it answers.
        value: the answer (any JSON value: text, a serialized message, generations...).
        chunks: for a streamed answer, its chunks in order (usage last), else None.
        model: the model that answered.
        user: the user it was for (None outside the ``user`` scope).
        tags: the request's tags (for ``invalidate("tag:...")``).
        input_tokens: prompt tokens the answer cost.
        output_tokens: completion tokens the answer cost.
        cost_usd: what the answer cost at catalog prices.
        created: epoch seconds it was stored.
        expires: epoch seconds after which it is a miss (None: never).
        partition: semantic partition (None: no semantic lookup for it).
        vector: unit embedding of its text (semantic caches), else None.
    """

    key: str
    value: Any
    model: str
    chunks: list[Any] | None = None
    user: str | None = None
    tags: tuple[str, ...] = ()
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    created: float = 0.0
    expires: float | None = None
    partition: str | None = None
    vector: list[float] | None = field(default=None, repr=False)

    def encode(self) -> bytes:
        """The stored bytes."""
        data = {
            "f": FORMAT,
            "k": self.key,
            "v": self.value,
            "c": self.chunks,
            "m": self.model,
            "u": self.user,
            "t": list(self.tags),
            "i": self.input_tokens,
            "o": self.output_tokens,
            "$": self.cost_usd,
            "at": self.created,
            "x": self.expires,
        }
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    @classmethod
    def decode(cls, blob: bytes | str, key: str | None = None) -> Entry:
        """An entry from stored bytes, checked against the key it was read under.

        Raises:
            CorruptEntry: the bytes are not an entry (or not this key's).
        """
        try:
            data = json.loads(blob)
            if not isinstance(data, dict) or data.get("f") != FORMAT:
                raise CorruptEntry("not a cache entry")
            entry = cls(
                key=str(data["k"]),
                value=data["v"],
                chunks=data.get("c"),
                model=str(data["m"]),
                user=data.get("u"),
                tags=tuple(str(t) for t in data.get("t") or ()),
                input_tokens=int(data.get("i") or 0),
                output_tokens=int(data.get("o") or 0),
                cost_usd=float(data.get("$") or 0.0),
                created=float(data.get("at") or 0.0),
                expires=None if data.get("x") is None else float(data["x"]),
            )
        except CorruptEntry:
            raise
        except (ValueError, TypeError, KeyError) as exc:
            raise CorruptEntry(f"cannot decode: {exc}") from exc
        if key is not None and entry.key != key:
            raise CorruptEntry("stored under another key")
        return entry

    def expired(self, now: float) -> bool:
        """Whether the entry's TTL has run out at ``now``."""
        return self.expires is not None and now >= self.expires

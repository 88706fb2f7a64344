"""Sealed byte records: the sessions codec's compression and encryption around opaque bytes.

The LangGraph checkpointer and store serialize with LangGraph's own serializer (which knows
LangChain messages, pydantic models, dataclasses, ...) and seal what it produces here, so the
same :class:`~aipowertools.sessions.Codec` settings (zstd/zlib, AES-GCM/Fernet with key
rotation) protect checkpoints, writes and store items as they protect session values.

A sealed record is::

    0xA8 | flags | body
    flags: bits 2-3 compression (0 none, 1 zlib, 2 zstd), bit 4 encrypted

Records are framed lists of byte strings (:func:`frame` / :func:`unframe`): a 4-byte big-endian
length before each field.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from typing import Any

from aipowertools.sessions._codec import Codec
from aipowertools.sessions._errors import SessionIntegrityError

MAGIC = 0xA8
_COMP_ZLIB, _COMP_ZSTD = 1, 2
_ENCRYPTED = 0x10
_LEN = struct.Struct(">I")


def frame(fields: Sequence[bytes]) -> bytes:
    """Length-prefixed concatenation of ``fields``."""
    return b"".join(_LEN.pack(len(f)) + f for f in fields)


def unframe(data: bytes, where: str) -> list[bytes]:
    """The fields of a :func:`frame`; refuses truncated input."""
    out, pos, end = [], 0, len(data)
    while pos < end:
        if pos + 4 > end:
            raise SessionIntegrityError(where, "truncated record")
        (n,) = _LEN.unpack_from(data, pos)
        pos += 4
        if pos + n > end:
            raise SessionIntegrityError(where, "truncated record")
        out.append(data[pos : pos + n])
        pos += n
    return out


class Sealer:
    """Compresses and encrypts bytes as a :class:`Codec` is configured to.

    Args:
        codec: the codec whose ``compression``, ``compress_min_bytes`` and ``encryption``
            apply (None: no compression, no encryption).
    """

    def __init__(self, codec: Codec | None = None) -> None:
        self.codec = codec or Codec()
        self._zstd_c: Any = None
        self._zstd_d: Any = None

    def seal(self, data: bytes) -> bytes:
        """``data`` compressed and encrypted per the codec."""
        codec, flags = self.codec, 0
        if codec.compression is not None and len(data) >= codec.compress_min_bytes:
            if codec.compression == "zstd":
                if self._zstd_c is None:
                    import zstandard

                    self._zstd_c = zstandard.ZstdCompressor(level=3)
                data = self._zstd_c.compress(data)
                flags |= _COMP_ZSTD << 2
            else:
                data = zlib.compress(data, 6)
                flags |= _COMP_ZLIB << 2
        if codec.encryption is not None:
            data = codec.encryption.encrypt(data)
            flags |= _ENCRYPTED
        return bytes((MAGIC, flags)) + data

    def unseal(self, data: bytes, where: str) -> bytes:
        """The bytes :meth:`seal` was given; anything else raises SessionIntegrityError."""
        if len(data) < 2 or data[0] != MAGIC:
            raise SessionIntegrityError(where, "not a sealed record (unknown leading bytes)")
        flags, body = data[1], data[2:]
        if flags & ~(_ENCRYPTED | 0x0C):
            raise SessionIntegrityError(where, f"unknown record flags {flags:#x}")
        if flags & _ENCRYPTED:
            if self.codec.encryption is None:
                raise SessionIntegrityError(where, "record is encrypted but no keys are configured")
            body = self.codec.encryption.decrypt(body)
        comp = (flags >> 2) & 0x3
        try:
            if comp == _COMP_ZSTD:
                if self._zstd_d is None:
                    import zstandard

                    self._zstd_d = zstandard.ZstdDecompressor()
                return bytes(self._zstd_d.decompress(body))
            if comp == _COMP_ZLIB:
                return zlib.decompress(body)
        except Exception as exc:  # zstd and zlib raise their own error types
            raise SessionIntegrityError(where, f"corrupt compressed data ({exc})") from None
        if comp:
            raise SessionIntegrityError(where, f"unknown compression id {comp}")
        return bytes(body)

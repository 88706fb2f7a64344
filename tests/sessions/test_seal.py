"""Sealed records: the codec's compression and encryption around opaque bytes, and framing."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from aipowertools.sessions import AESGCMEncryption, Codec, FernetEncryption, SessionIntegrityError
from aipowertools.sessions._seal import Sealer, frame, unframe

DATA = b"checkpoint " * 100


@pytest.mark.parametrize(
    "codec",
    [
        Codec(),
        Codec(compression="zstd", compress_min_bytes=1),
        Codec(compression="zlib", compress_min_bytes=1),
        Codec(compression="zstd", encryption=AESGCMEncryption({"k": bytes(32)})),
        Codec(encryption=FernetEncryption([Fernet.generate_key()])),
    ],
)
def test_round_trip(codec: Codec) -> None:
    sealer = Sealer(codec)
    sealed = sealer.seal(DATA)
    assert sealer.unseal(sealed, "x") == DATA
    if codec.compression:
        assert len(sealed) < len(DATA)
    if codec.encryption:
        assert b"checkpoint" not in sealed


def test_short_bodies_stay_uncompressed() -> None:
    sealer = Sealer(Codec(compression="zstd"))  # compress_min_bytes=512
    assert sealer.seal(b"tiny") == b"\xa8\x00tiny"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "not a sealed record"),
        (b"\xa7\x00abc", "not a sealed record"),
        (b"\xa8\x01abc", "unknown record flags"),
        (b"\xa8\x0cabc", "unknown compression id 3"),
        (b"\xa8\x08not zstd", "corrupt compressed data"),
        (b"\xa8\x04not zlib", "corrupt compressed data"),
        (b"\xa8\x10sealed", "no keys"),
    ],
)
def test_foreign_or_damaged_records_are_refused(data: bytes, reason: str) -> None:
    with pytest.raises(SessionIntegrityError, match=reason):
        Sealer().unseal(data, "checkpoint")


def test_frames() -> None:
    fields = [b"", b"a", b"\x00" * 300]
    assert unframe(frame(fields), "x") == fields
    assert unframe(b"", "x") == []
    with pytest.raises(SessionIntegrityError, match="truncated"):
        unframe(b"\x00\x00", "x")
    with pytest.raises(SessionIntegrityError, match="truncated"):
        unframe(b"\x00\x00\x00\x05ab", "x")

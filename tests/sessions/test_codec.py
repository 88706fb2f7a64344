from __future__ import annotations

import datetime as dt
import pickle
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import BaseModel

from aipowertools.core.errors import ConfigurationError
from aipowertools.sessions import (
    AESGCMEncryption,
    Codec,
    FernetEncryption,
    SessionIntegrityError,
    TypeRegistry,
    register_type,
)


class Point(BaseModel):
    x: int
    y: int


class Unregistered(BaseModel):
    name: str


def test_json_roundtrip_of_builtin_extras() -> None:
    codec = Codec()
    value = {
        "when": dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc),
        "day": dt.date(2025, 1, 2),
        "raw": b"\x00\xff",
        "id": uuid.UUID(int=7),
        "price": Decimal("1.10"),
        "tags": {"a"},
        "nested": [1, "two", None, 3.5, True],
    }
    assert codec.decode(codec.encode(value)) == value


def test_pydantic_registered_roundtrip_and_unregistered_as_dict() -> None:
    registry = TypeRegistry()
    registry.register(Point)
    codec = Codec(registry=registry)
    assert codec.decode(codec.encode(Point(x=1, y=2))) == Point(x=1, y=2)
    assert codec.decode(codec.encode(Unregistered(name="n"))) == {"name": "n"}


def test_default_registry_and_custom_codec() -> None:
    class Money:
        def __init__(self, cents: int) -> None:
            self.cents = cents

    register_type(Money, name="test.money", encode=lambda m: m.cents, decode=Money)
    codec = Codec()
    back = codec.decode(codec.encode({"m": Money(250)}))
    assert isinstance(back["m"], Money)
    assert back["m"].cents == 250
    top = codec.encode(Money(7))  # a registered value at the top level: the same tagged form
    assert top[2:] == b'{"__aipt__":"test.money","v":7}'
    assert codec.decode(top).cents == 7
    with pytest.raises(ConfigurationError, match="encode= and decode="):
        TypeRegistry().register(Money)


def test_unserializable_without_pickle_is_a_clear_error() -> None:
    with pytest.raises(ConfigurationError, match="register_type"):
        Codec().encode(object())


def test_signed_pickle_roundtrip_and_tamper() -> None:
    codec = Codec(pickle_key=b"k" * 32)
    data = codec.encode(complex(1, 2))
    assert codec.decode(data) == complex(1, 2)
    bad = data[:-1] + bytes([data[-1] ^ 1])
    with pytest.raises(SessionIntegrityError, match="signature"):
        codec.decode(bad)
    with pytest.raises(SessionIntegrityError, match="not enabled"):
        Codec().decode(data)
    with pytest.raises(SessionIntegrityError, match="signature"):
        Codec(pickle_key=b"z" * 32).decode(data)
    with pytest.raises(ConfigurationError):
        Codec(pickle_key=b"short")


class _Boom:
    def __reduce__(self) -> tuple[object, ...]:
        return (exec, ("import pathlib; pathlib.Path('PWNED').touch()",))


def test_planted_pickle_is_never_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    planted = pickle.dumps(_Boom())
    codec = Codec(pickle_key=b"k" * 32)
    for data in (planted, bytes((0xA7, 0x01)) + b"\x00" * 32 + planted, b"\xa7\x01" + planted):
        with pytest.raises(SessionIntegrityError):
            codec.decode(data)
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("compression", ["zstd", "zlib"])
def test_compression(compression: str) -> None:
    codec = Codec(compression=compression, compress_min_bytes=10)  # type: ignore[arg-type]
    value = {"text": "hello " * 500}
    data = codec.encode(value)
    assert len(data) < 500
    assert codec.decode(data) == value
    assert Codec().decode(data) == value  # any codec reads compressed data
    with pytest.raises(SessionIntegrityError, match="corrupt"):
        codec.decode(data[:20])
    with pytest.raises(ConfigurationError):
        Codec(compression="lz4")  # type: ignore[arg-type]


def test_aesgcm_rotation_and_tamper() -> None:
    old_key, new_key = AESGCMEncryption.generate_key(), AESGCMEncryption.generate_key()
    old = Codec(encryption=AESGCMEncryption({"2024": old_key}))
    token = old.encode({"secret": 1})
    assert b"secret" not in token
    rotated = Codec(encryption=AESGCMEncryption({"2025": new_key, "2024": old_key}))
    assert rotated.decode(token) == {"secret": 1}
    new_token = rotated.encode({"secret": 2})
    with pytest.raises(SessionIntegrityError, match="no configured key"):
        old.decode(new_token)
    tampered = token[:-3] + bytes([token[-3] ^ 0x55]) + token[-2:]
    with pytest.raises(SessionIntegrityError, match="tag mismatch"):
        rotated.decode(tampered)
    with pytest.raises(SessionIntegrityError, match="no keys"):
        Codec().decode(token)
    with pytest.raises(ConfigurationError):
        AESGCMEncryption({"k": b"short"})
    with pytest.raises(ConfigurationError):
        AESGCMEncryption({})
    with pytest.raises(ConfigurationError):
        AESGCMEncryption({"k": new_key}, active="other")


def test_fernet_rotation_and_tamper() -> None:
    k1, k2 = Fernet.generate_key(), Fernet.generate_key()
    token = Codec(encryption=FernetEncryption([k1])).encode("hello")
    both = Codec(encryption=FernetEncryption([k2, k1]), compression="zstd", compress_min_bytes=1)
    assert both.decode(token) == "hello"
    assert both.decode(both.encode("x" * 100)) == "x" * 100
    with pytest.raises(SessionIntegrityError, match="Fernet"):
        both.decode(token[:-4] + b"AAAA")
    with pytest.raises(ConfigurationError):
        FernetEncryption([])
    with pytest.raises(ConfigurationError):
        FernetEncryption(["not-a-key"])


def test_foreign_bytes_are_refused() -> None:
    codec = Codec()
    for data in (b"", b"{}", b"\xa7\xe0{}", b"\xa7\x03{}", b"\xa7\x0c{}", b"\xa7\x00{not json"):
        with pytest.raises(SessionIntegrityError):
            codec.decode(data)


def test_reserved_tag_with_unknown_name_passes_value_through() -> None:
    codec = Codec()
    assert codec.decode(b'\xa7\x00{"__aipt__":"nope","v":[1]}') == [1]
    assert codec.decode(b'\xa7\x00{"__aipt__":"x"}') == {"__aipt__": "x"}

"""Bytes on the wire: JSON with a type registry, signed pickle, compression and encryption.

Every stored value is an *envelope*::

    0xA7 | flags | body
    flags: bits 0-1 format (0 JSON, 1 signed pickle), bits 2-3 compression (0 none, 1 zlib,
           2 zstd), bit 4 encrypted (body is then an encryption token of the compressed bytes)

Anything that does not start with the magic byte, or whose flags ask for something this codec
was not configured for (pickle without a key, encryption without keys), is refused with
:class:`SessionIntegrityError` before any of it is interpreted; pickle bytes are only loaded
after their HMAC-SHA256 has been checked in constant time.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import hmac
import json
import os
import pickle
import uuid
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, Protocol, runtime_checkable

from aipowertools.core.errors import ConfigurationError
from aipowertools.sessions._errors import SessionIntegrityError

MAGIC = 0xA7
_FMT_JSON, _FMT_PICKLE = 0, 1
_COMP_NONE, _COMP_ZLIB, _COMP_ZSTD = 0, 1, 2
_ENCRYPTED = 0x10
TAG = "__aipt__"

Compression = Literal["zstd", "zlib"]


@dataclass(frozen=True)
class _TypeCodec:
    name: str
    cls: type
    encode: Callable[[Any], Any]
    decode: Callable[[Any], Any]
    # Fast path for pydantic models: their serializer writes the JSON bytes directly.
    encode_json: Callable[[Any], bytes] | None = None
    header: bytes = b""

    def __post_init__(self) -> None:
        object.__setattr__(self, "header", f'{{"{TAG}":{json.dumps(self.name)},"v":'.encode())


class TypeRegistry:
    """Maps Python types to JSON-safe forms and back, by a stable name stored with the data."""

    def __init__(self) -> None:
        self._by_type: dict[type, _TypeCodec] = {}
        self._by_name: dict[str, _TypeCodec] = {}

    def register(
        self,
        cls: type,
        *,
        name: str | None = None,
        encode: Callable[[Any], Any] | None = None,
        decode: Callable[[Any], Any] | None = None,
    ) -> None:
        """Register ``cls`` (and its subclasses) under ``name``.

        Pydantic models need no ``encode``/``decode``: ``model_dump(mode="json")`` and
        ``model_validate`` are used.
        """
        encode_json = None
        if encode is None or decode is None:
            if not (hasattr(cls, "model_dump") and hasattr(cls, "model_validate")):
                raise ConfigurationError(
                    f"register {cls.__qualname__} with encode= and decode= functions "
                    "(only pydantic models work without them)"
                )
            if encode is None:
                encode = lambda obj: obj.model_dump(mode="json")  # noqa: E731
                serializer = getattr(cls, "__pydantic_serializer__", None)
                encode_json = (
                    serializer.to_json  # bytes straight from pydantic-core
                    if serializer is not None
                    else lambda obj: obj.model_dump_json().encode()
                )
            decode = decode or cls.model_validate
        codec = _TypeCodec(name or _qualname(cls), cls, encode, decode, encode_json)
        self._by_type[cls] = codec
        self._by_name[codec.name] = codec

    def find(self, cls: type) -> _TypeCodec | None:
        """The codec registered for ``cls`` or its nearest registered base class."""
        for base in cls.__mro__:
            codec = self._by_type.get(base)
            if codec is not None:
                if base is not cls:
                    self._by_type[cls] = codec
                return codec
        return None

    def exact(self, cls: type) -> _TypeCodec | None:
        """The codec registered for exactly ``cls`` (a dict lookup, for the fast path)."""
        return self._by_type.get(cls)

    def by_name(self, name: str) -> _TypeCodec | None:
        """The codec stored under ``name``."""
        return self._by_name.get(name)


def _qualname(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


#: The registry used by default codecs; framework adapters register their message types here.
types = TypeRegistry()


def register_type(
    cls: type,
    *,
    name: str | None = None,
    encode: Callable[[Any], Any] | None = None,
    decode: Callable[[Any], Any] | None = None,
) -> None:
    """Register ``cls`` in the default type registry (see :meth:`TypeRegistry.register`)."""
    types.register(cls, name=name, encode=encode, decode=decode)


@runtime_checkable
class Encryption(Protocol):
    """Turns bytes into a token and back; ``decrypt`` raises SessionIntegrityError on tampering."""

    def encrypt(self, data: bytes) -> bytes:
        """Encrypt ``data`` with the active key."""
        ...

    def decrypt(self, token: bytes) -> bytes:
        """Decrypt a token made with any configured key."""
        ...


class AESGCMEncryption:
    """AES-256-GCM with named keys: the active key encrypts, every listed key decrypts.

    Rotate by adding a new key and making it active; data written under old keys stays
    readable as long as those keys stay listed.

    Example:
        >>> enc = AESGCMEncryption({"k2": AESGCMEncryption.generate_key()})
    """

    _AAD = b"aipowertools.sessions/v1"

    def __init__(self, keys: Mapping[str, bytes], *, active: str | None = None) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if not keys:
            raise ConfigurationError("AESGCMEncryption needs at least one key")
        self._ciphers: dict[bytes, AESGCM] = {}
        for key_id, key in keys.items():
            if len(key) not in (16, 24, 32):
                raise ConfigurationError(
                    f"AES-GCM key {key_id!r} is {len(key)} bytes; use 16, 24 or 32 bytes "
                    "(AESGCMEncryption.generate_key() makes one)"
                )
            raw_id = key_id.encode()
            if not 0 < len(raw_id) < 256:
                raise ConfigurationError(f"key id {key_id!r} must be 1-255 bytes")
            self._ciphers[raw_id] = AESGCM(key)
        active = active if active is not None else next(iter(keys))
        if active not in keys:
            raise ConfigurationError(f"active key {active!r} is not among the keys {list(keys)}")
        self._active = active.encode()

    @staticmethod
    def generate_key() -> bytes:
        """A fresh random 256-bit key."""
        return os.urandom(32)

    def encrypt(self, data: bytes) -> bytes:
        """Encrypt ``data`` under the active key; the key id travels with the token."""
        nonce = os.urandom(12)
        sealed = self._ciphers[self._active].encrypt(nonce, data, self._AAD + self._active)
        return bytes([len(self._active)]) + self._active + nonce + sealed

    def decrypt(self, token: bytes) -> bytes:
        """Decrypt a token from any configured key; tampering raises SessionIntegrityError."""
        from cryptography.exceptions import InvalidTag

        if not token:
            raise SessionIntegrityError("AES-GCM", "empty ciphertext")
        n = token[0]
        key_id, nonce, sealed = token[1 : 1 + n], token[1 + n : 13 + n], token[13 + n :]
        cipher = self._ciphers.get(key_id)
        if cipher is None or len(nonce) != 12:
            raise SessionIntegrityError(
                "AES-GCM", f"no configured key has id {key_id.decode(errors='replace')!r}"
            )
        try:
            return cipher.decrypt(nonce, sealed, self._AAD + key_id)
        except InvalidTag:
            raise SessionIntegrityError("AES-GCM", "authentication tag mismatch") from None


class FernetEncryption:
    """Fernet (AES-128-CBC + HMAC) with rotation: the first key encrypts, all keys decrypt.

    Example:
        >>> from cryptography.fernet import Fernet
        >>> enc = FernetEncryption([Fernet.generate_key()])
    """

    def __init__(self, keys: Sequence[str | bytes]) -> None:
        from cryptography.fernet import Fernet, MultiFernet

        if not keys:
            raise ConfigurationError("FernetEncryption needs at least one key")
        try:
            self._fernet = MultiFernet([Fernet(k) for k in keys])
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(
                f"invalid Fernet key: {exc}; make one with "
                "cryptography.fernet.Fernet.generate_key()"
            ) from exc

    def encrypt(self, data: bytes) -> bytes:
        """Encrypt ``data`` with the first key."""
        return self._fernet.encrypt(data)

    def decrypt(self, token: bytes) -> bytes:
        """Decrypt with any key; a bad token raises SessionIntegrityError."""
        from cryptography.fernet import InvalidToken

        try:
            return self._fernet.decrypt(token)
        except InvalidToken:
            raise SessionIntegrityError(
                "Fernet", "token is invalid for every configured key"
            ) from None


class Codec:
    """Serializes session values to bytes and back.

    Args:
        compression: ``"zstd"``, ``"zlib"`` or None; bodies shorter than
            ``compress_min_bytes`` are stored uncompressed.
        encryption: an :class:`AESGCMEncryption`, :class:`FernetEncryption` or any
            :class:`Encryption`.
        pickle_key: enable pickle for values JSON cannot hold, signed with HMAC-SHA256 under this
            key (at least 16 bytes). Without it, pickle data is never loaded.
        registry: type registry for JSON (default: the shared one adapters register into).

    Example:
        >>> codec = Codec(compression="zlib")
        >>> codec.decode(codec.encode({"a": 1}))
        {'a': 1}
    """

    def __init__(
        self,
        *,
        compression: Compression | None = None,
        compress_min_bytes: int = 512,
        encryption: Encryption | None = None,
        pickle_key: bytes | None = None,
        registry: TypeRegistry | None = None,
    ) -> None:
        if compression not in (None, "zstd", "zlib"):
            raise ConfigurationError(
                f"compression must be 'zstd', 'zlib' or None, not {compression!r}"
            )
        if pickle_key is not None and len(pickle_key) < 16:
            raise ConfigurationError("pickle_key must be at least 16 random bytes")
        self.compression = compression
        self.compress_min_bytes = compress_min_bytes
        self.encryption = encryption
        self._pickle_key = pickle_key
        self.registry = registry or types
        self._zstd_c: Any = None
        self._zstd_d: Any = None
        # One encoder for every call (json.dumps would build one per call); it is stateless.
        self._dumps = json.JSONEncoder(
            default=self._default, separators=(",", ":"), ensure_ascii=False
        ).encode

    # -- encoding -----------------------------------------------------------------------------

    def encode(self, value: Any) -> bytes:
        """Serialize ``value`` into an envelope."""
        fmt = _FMT_JSON
        fast = self.registry.exact(type(value))
        try:
            if fast is None:
                body = self._dumps(value).encode()
                if _TAG_BYTES in body:  # rare: a tag of ours, or a user dict using our key
                    body = self._dumps(_escape(value)).encode()
            elif fast.encode_json is not None:  # pydantic: JSON bytes from pydantic-core
                body = fast.header + fast.encode_json(value) + b"}"
            else:  # the bytes _default would give, without the round trip through it
                body = fast.header + self._dumps(fast.encode(value)).encode() + b"}"
        except (TypeError, ValueError) as exc:
            if self._pickle_key is None:
                raise ConfigurationError(
                    f"cannot store a {type(value).__name__} as JSON ({exc}); register its type "
                    "with aipowertools.sessions.register_type(...) or enable signed pickle "
                    "with Codec(pickle_key=...)"
                ) from exc
            pickled = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
            body = hmac.new(self._pickle_key, pickled, hashlib.sha256).digest() + pickled
            fmt = _FMT_PICKLE
        if self.compression is None and self.encryption is None:  # the common case
            return bytes((MAGIC, fmt)) + body
        flags = fmt
        if self.compression is not None and len(body) >= self.compress_min_bytes:
            if self.compression == "zstd":
                if self._zstd_c is None:
                    import zstandard

                    self._zstd_c = zstandard.ZstdCompressor(level=3)
                body = self._zstd_c.compress(body)
                flags |= _COMP_ZSTD << 2
            else:
                body = zlib.compress(body, 6)
                flags |= _COMP_ZLIB << 2
        if self.encryption is not None:
            body = self.encryption.encrypt(body)
            flags |= _ENCRYPTED
        return bytes((MAGIC, flags)) + body

    def _default(self, obj: Any) -> Any:
        codec = self.registry.find(type(obj))
        if codec is not None:
            return {TAG: codec.name, "v": codec.encode(obj)}
        if isinstance(obj, _dt.datetime):
            return {TAG: "datetime", "v": obj.isoformat()}
        if isinstance(obj, _dt.date):
            return {TAG: "date", "v": obj.isoformat()}
        if isinstance(obj, (bytes, bytearray)):
            return {TAG: "bytes", "v": base64.b64encode(obj).decode()}
        if isinstance(obj, uuid.UUID):
            return {TAG: "uuid", "v": str(obj)}
        if isinstance(obj, Decimal):
            return {TAG: "decimal", "v": str(obj)}
        if isinstance(obj, (set, frozenset)):
            return {TAG: "set", "v": list(obj)}
        dump = getattr(obj, "model_dump", None)
        if callable(dump) and hasattr(type(obj), "model_validate"):
            # An unregistered pydantic model: stored as its JSON form, read back as a dict
            # unless its class is registered by then (we never import a class named by data).
            return {TAG: _qualname(type(obj)), "v": dump(mode="json")}
        raise TypeError(f"{type(obj).__name__} is not JSON serializable")

    # -- decoding -----------------------------------------------------------------------------

    def decode(self, data: bytes, where: str = "session value") -> Any:
        """Deserialize an envelope written by :meth:`encode`; refuse anything else."""
        if len(data) < 2 or data[0] != MAGIC:
            raise SessionIntegrityError(where, "not a session envelope (unknown leading bytes)")
        flags = data[1]
        body = data[2:]
        if flags & ~0x1F:
            raise SessionIntegrityError(where, f"unknown envelope flags {flags:#x}")
        if flags & _ENCRYPTED:
            if self.encryption is None:
                raise SessionIntegrityError(where, "value is encrypted but no keys are configured")
            body = self.encryption.decrypt(body)
        comp = (flags >> 2) & 0x3
        try:
            if comp == _COMP_ZSTD:
                if self._zstd_d is None:
                    import zstandard

                    self._zstd_d = zstandard.ZstdDecompressor()
                body = self._zstd_d.decompress(body)
            elif comp == _COMP_ZLIB:
                body = zlib.decompress(body)
            elif comp != _COMP_NONE:
                raise SessionIntegrityError(where, f"unknown compression id {comp}")
        except SessionIntegrityError:
            raise
        except Exception as exc:  # zstd and zlib raise their own error types
            raise SessionIntegrityError(where, f"corrupt compressed data ({exc})") from None
        fmt = flags & 0x3
        if fmt == _FMT_JSON:
            try:
                return json.loads(body, object_hook=self._object_hook)
            except ValueError as exc:
                raise SessionIntegrityError(where, f"corrupt JSON ({exc})") from None
        if fmt == _FMT_PICKLE:
            if self._pickle_key is None:
                raise SessionIntegrityError(
                    where, "pickle data found but pickle is not enabled; it was not loaded"
                )
            mac, payload = body[:32], body[32:]
            expected = hmac.new(self._pickle_key, payload, hashlib.sha256).digest()
            if not hmac.compare_digest(mac, expected):
                raise SessionIntegrityError(where, "pickle signature mismatch; it was not loaded")
            return pickle.loads(payload)
        raise SessionIntegrityError(where, f"unknown format id {fmt}")

    def _object_hook(self, obj: dict[str, Any]) -> Any:
        name = obj.get(TAG)
        if name is None or len(obj) != 2 or "v" not in obj:
            return obj
        value = obj["v"]
        try:
            codec = self.registry.by_name(name)
            if codec is not None:
                return codec.decode(value)
            decoder = _BUILTIN_DECODERS.get(name)
            if decoder is not None:
                return decoder(value)
        except Exception as exc:  # bad stored data: decode() makes it a SessionIntegrityError
            raise ValueError(f"{name!r} value does not decode ({exc!r})") from exc
        return value  # unknown or unregistered pydantic type: its JSON form


_TAG_BYTES = f'"{TAG}"'.encode()


def _escape(value: Any) -> Any:
    """A copy of ``value`` where user dicts holding our tag key are stored as pair lists.

    ``{"__aipt__": "bytes", "v": "..."}`` written by a user must read back as that dict, not
    as bytes: such a dict is written as ``{"__aipt__": "dict", "v": [[key, value], ...]}``.
    """
    if isinstance(value, dict):
        if TAG in value:
            return {TAG: "dict", "v": [[k, _escape(v)] for k, v in value.items()]}
        return {k: _escape(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_escape(v) for v in value]
    return value


def _pairs(value: Any) -> dict[str, Any]:
    if not isinstance(value, list) or not all(
        isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) for p in value
    ):
        raise TypeError("an escaped dict is a list of [key, value] pairs")
    return dict(value)


_BUILTIN_DECODERS: dict[str, Callable[[Any], Any]] = {
    "dict": _pairs,
    "datetime": _dt.datetime.fromisoformat,
    "date": _dt.date.fromisoformat,
    "bytes": base64.b64decode,
    "uuid": uuid.UUID,
    "decimal": Decimal,
    "set": set,
}

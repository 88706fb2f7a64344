"""The S3 backend (``s3://bucket/prefix``): an object per value, an object per appended chunk.

Layout under ``{prefix}/{ns}/{sid}/``::

    meta                 JSON {"expires_at": float | null}
    v/<key>              envelope; the version is in the object's metadata; compare-and-set
                         with S3 conditional writes (If-Match on the ETag / If-None-Match: *)
    l/<key>/<t>-<w>      one chunk = the items of one append call; ``t`` is a microsecond
                         timestamp made strictly increasing per writer, ``w`` a random writer
                         id, and the PUT carries If-None-Match: * so nothing is overwritten
    lock/<name>          lock object (If-None-Match: *), stolen only once expired

Appends never contend (no shared counter to race for: one PUT each). Items of one writer keep
their exact order; items of different writers are ordered by their clocks (microseconds), which
is the order of any two appends that are further apart than the hosts' clock skew.

Chunks are immutable, so their item counts and bodies are cached in-process by key and ETag.
``trim`` drops whole chunks: a list can keep up to one batch more than ``keep_last``.
"""

from __future__ import annotations

import json
import secrets
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aipowertools.core.errors import StoreURLError
from aipowertools.sessions._backend import ABSENT, Versioned, conflict
from aipowertools.sessions._errors import SessionIntegrityError, SessionLockError

_MAGIC = b"AC1"
_CACHE_BYTES = 64 << 20


def _pack(items: Sequence[bytes]) -> bytes:
    parts = [_MAGIC, struct.pack(">I", len(items))]
    for item in items:
        parts.append(struct.pack(">I", len(item)))
        parts.append(item)
    return b"".join(parts)


def _unpack(body: bytes, where: str) -> list[bytes]:
    if body[:3] != _MAGIC:
        raise SessionIntegrityError(where, "not a session chunk")
    (count,) = struct.unpack_from(">I", body, 3)
    out, pos = [], 7
    for _ in range(count):
        (size,) = struct.unpack_from(">I", body, pos)
        out.append(body[pos + 4 : pos + 4 + size])
        pos += 4 + size
    if len(out) != count or pos != len(body):
        raise SessionIntegrityError(where, "truncated session chunk")
    return out


def _code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


class S3Backend:
    """Sessions in an S3 bucket (or any S3 API with conditional writes: MinIO, R2, moto)."""

    def __init__(self, url: str, *, client: Any = None) -> None:
        parts = urlsplit(url)
        if not parts.netloc:
            raise StoreURLError(url, "an S3 URL needs a bucket: s3://bucket/prefix")
        self.url = url
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        if client is None:
            import boto3

            query = parse_qs(parts.query)
            options: dict[str, Any] = {}
            if "endpoint_url" in query:
                options["endpoint_url"] = query["endpoint_url"][0]
            if "region" in query:
                options["region_name"] = query["region"][0]
            client = boto3.client("s3", **options)
        self._s3 = client
        self._writer = secrets.token_hex(6)
        self._last = 0
        self._chunks: dict[tuple[str, str], list[bytes]] = {}
        self._cached_bytes = 0
        self._mutex = threading.Lock()
        self._pool = ThreadPoolExecutor(8, thread_name_prefix="aipt-s3")

    def _base(self, ns: str, sid: str) -> str:
        return f"{self.prefix}/{ns}/{sid}/" if self.prefix else f"{ns}/{sid}/"

    def _list(self, prefix: str, start_after: str = "") -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        if start_after:
            kwargs["StartAfter"] = start_after
        while True:
            page = self._s3.list_objects_v2(**kwargs)
            yield from page.get("Contents", ())
            if not page.get("IsTruncated"):
                return
            kwargs["ContinuationToken"] = page["NextContinuationToken"]

    def _get(self, key: str) -> tuple[bytes, dict[str, str], str] | None:
        try:
            obj = self._s3.get_object(Bucket=self.bucket, Key=key)
        except self._s3.exceptions.NoSuchKey:
            return None
        return obj["Body"].read(), obj.get("Metadata", {}), obj["ETag"]

    def _expired(self, ns: str, sid: str) -> bool:
        found = self._get(self._base(ns, sid) + "meta")
        if found is None:
            return False
        expires = json.loads(found[0]).get("expires_at")
        return expires is not None and expires <= time.time()

    # -- values -------------------------------------------------------------------------------

    def get(self, ns: str, sid: str, key: str) -> Versioned | None:
        if self._expired(ns, sid):
            return None
        found = self._get(self._base(ns, sid) + "v/" + key)
        if found is None:
            return None
        return Versioned(found[0], int(found[1].get("version", "1")))

    def get_values(self, ns: str, sid: str) -> dict[str, Versioned]:
        if self._expired(ns, sid):
            return {}
        prefix = self._base(ns, sid) + "v/"
        names = [obj["Key"][len(prefix) :] for obj in self._list(prefix)]
        found = self._pool.map(lambda k: self._get(prefix + k), names)
        return {
            k: Versioned(f[0], int(f[1].get("version", "1")))
            for k, f in zip(names, found, strict=True)
            if f is not None
        }

    def set(self, ns: str, sid: str, key: str, data: bytes, expected: int | None) -> int:
        okey = self._base(ns, sid) + "v/" + key
        while True:
            try:
                head = self._s3.head_object(Bucket=self.bucket, Key=okey)
            except Exception as exc:
                if _code(exc) not in ("404", "NoSuchKey", "NotFound"):
                    raise
                head = None
            actual = int(head["Metadata"].get("version", "1")) if head else ABSENT
            if expected is not None and expected != actual:
                raise conflict(sid, key, expected, actual)
            cond = {"IfMatch": head["ETag"]} if head else {"IfNoneMatch": "*"}
            try:
                self._s3.put_object(
                    Bucket=self.bucket,
                    Key=okey,
                    Body=data,
                    Metadata={"version": str(actual + 1)},
                    **cond,
                )
                return actual + 1
            except Exception as exc:
                if _code(exc) not in ("PreconditionFailed", "ConditionalRequestConflict"):
                    raise
                # Someone else wrote in between: re-read (and, with ``expected``, conflict).

    def delete(self, ns: str, sid: str, key: str) -> None:
        base = self._base(ns, sid)
        self._delete_keys([base + "v/" + key, *(o["Key"] for o in self._list(f"{base}l/{key}/"))])

    def _delete_keys(self, keys: list[str]) -> None:
        for i in range(0, len(keys), 1000):
            self._s3.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": k} for k in keys[i : i + 1000]], "Quiet": True},
            )

    # -- lists --------------------------------------------------------------------------------

    def append(self, ns: str, sid: str, key: str, items: Sequence[bytes]) -> int:
        prefix = f"{self._base(ns, sid)}l/{key}/"
        body = _pack(items)
        while True:
            with self._mutex:  # strictly increasing per backend object, in microseconds
                self._last = max(self._last + 1, time.time_ns() // 1000)
                name = f"{prefix}{self._last:016d}-{self._writer}"
            try:
                self._s3.put_object(Bucket=self.bucket, Key=name, Body=body, IfNoneMatch="*")
                break
            except Exception as exc:  # only if two writers drew the same random id
                if _code(exc) not in ("PreconditionFailed", "ConditionalRequestConflict"):
                    raise
        # The length is only needed when a size limit is set; the Session asks for it then.
        return -1

    def _chunk(self, obj: dict[str, Any]) -> list[bytes]:
        ck = (obj["Key"], obj["ETag"])
        with self._mutex:
            cached = self._chunks.get(ck)
        if cached is not None:
            return cached
        found = self._get(obj["Key"])
        items = _unpack(found[0], obj["Key"]) if found else []
        with self._mutex:
            size = sum(len(i) for i in items)
            if self._cached_bytes + size > _CACHE_BYTES:
                self._chunks.clear()
                self._cached_bytes = 0
            self._chunks[ck] = items
            self._cached_bytes += size
        return items

    def _all_chunks(self, ns: str, sid: str, key: str) -> list[list[bytes]]:
        if self._expired(ns, sid):
            return []
        objs = list(self._list(f"{self._base(ns, sid)}l/{key}/"))
        return list(self._pool.map(self._chunk, objs))

    def length(self, ns: str, sid: str, key: str) -> int:
        return sum(len(c) for c in self._all_chunks(ns, sid, key))

    def read_tail(self, ns: str, sid: str, key: str, count: int) -> list[bytes]:
        # Chunks are listed (a key listing, 1,000 per page) but only the newest ones are
        # fetched, back to front, until ``count`` items are in hand.
        if count <= 0 or self._expired(ns, sid):
            return []
        objs = list(self._list(f"{self._base(ns, sid)}l/{key}/"))
        out: list[bytes] = []
        for obj in reversed(objs):
            out[:0] = self._chunk(obj)
            if len(out) >= count:
                break
        return out[len(out) - count :] if len(out) > count else out

    def read(self, ns: str, sid: str, key: str, start: int, stop: int) -> list[bytes]:
        if stop <= start:
            return []
        out: list[bytes] = []
        pos = 0
        for chunk in self._all_chunks(ns, sid, key):
            end = pos + len(chunk)
            if end > start and pos < stop:
                out.extend(chunk[max(start - pos, 0) : stop - pos])
            pos = end
            if pos >= stop:
                break
        return out

    def trim(self, ns: str, sid: str, key: str, keep_last: int) -> int:
        objs = list(self._list(f"{self._base(ns, sid)}l/{key}/"))
        counts = [len(c) for c in self._pool.map(self._chunk, objs)]
        total, gone, doomed = sum(counts), 0, []
        for obj, n in zip(objs, counts, strict=True):
            if total - gone - n < keep_last:
                break
            doomed.append(obj["Key"])
            gone += n
        self._delete_keys(doomed)
        return gone

    # -- sessions -----------------------------------------------------------------------------

    def keys(self, ns: str, sid: str) -> list[str]:
        if self._expired(ns, sid):
            return []
        base = self._base(ns, sid)
        names = set()
        for obj in self._list(base):
            rest = obj["Key"][len(base) :]
            kind, _, tail = rest.partition("/")
            if kind == "v":
                names.add(tail)
            elif kind == "l":
                names.add(tail.partition("/")[0])
        return sorted(names)

    def touch(self, ns: str, sid: str, ttl: float | None) -> None:
        if self._expired(ns, sid):  # an expired session's data goes before it is renewed
            self.drop(ns, sid)
        meta = {"expires_at": None if ttl is None else time.time() + ttl}
        self._s3.put_object(
            Bucket=self.bucket, Key=self._base(ns, sid) + "meta", Body=json.dumps(meta).encode()
        )

    def _sids(self, ns: str) -> list[str]:
        prefix = f"{self.prefix}/{ns}/" if self.prefix else f"{ns}/"
        sids = []
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "Delimiter": "/"}
        while True:
            page = self._s3.list_objects_v2(**kwargs)
            sids += [p["Prefix"][len(prefix) :].rstrip("/") for p in page.get("CommonPrefixes", ())]
            if not page.get("IsTruncated"):
                return sids
            kwargs["ContinuationToken"] = page["NextContinuationToken"]

    def sessions(self, ns: str) -> list[str]:
        sids = self._sids(ns)
        expired = self._pool.map(lambda s: self._expired(ns, s), sids)
        return sorted(s for s, dead in zip(sids, expired, strict=True) if not dead)

    def drop(self, ns: str, sid: str) -> None:
        base = self._base(ns, sid)
        self._delete_keys([o["Key"] for o in self._list(base)])

    def cleanup(self, ns: str) -> int:
        dead = [s for s in self._sids(ns) if self._expired(ns, s)]
        for sid in dead:
            self.drop(ns, sid)
        return len(dead)

    def lock(
        self, ns: str, sid: str, name: str, timeout: float, ttl: float
    ) -> AbstractContextManager[None]:
        okey = f"{self._base(ns, sid)}lock/{name}"
        token = secrets.token_hex(8)

        def try_acquire() -> bool:
            body = json.dumps({"token": token, "expires_at": time.time() + ttl}).encode()
            try:
                self._s3.put_object(Bucket=self.bucket, Key=okey, Body=body, IfNoneMatch="*")
                return True
            except Exception as exc:
                if _code(exc) not in ("PreconditionFailed", "ConditionalRequestConflict"):
                    raise
            found = self._get(okey)
            if found is None or json.loads(found[0])["expires_at"] > time.time():
                return False
            try:  # the holder died: take over, unless someone else just did
                self._s3.put_object(Bucket=self.bucket, Key=okey, Body=body, IfMatch=found[2])
                return True
            except Exception as exc:
                if _code(exc) not in ("PreconditionFailed", "ConditionalRequestConflict"):
                    raise
                return False

        @contextmanager
        def _cm() -> Iterator[None]:
            deadline = time.monotonic() + timeout
            delay = 0.005
            while not try_acquire():
                if time.monotonic() >= deadline:
                    raise SessionLockError(sid, name, timeout)
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
            try:
                yield
            finally:
                found = self._get(okey)
                if found is not None and json.loads(found[0]).get("token") == token:
                    self._s3.delete_object(Bucket=self.bucket, Key=okey)

        return _cm()

    def close(self) -> None:
        self._pool.shutdown(wait=False)

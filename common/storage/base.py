"""The storage backend contract. Every backend (local directory, S3, memory) implements it,
and every backend passes the one shared test suite in ``tests/unit/storage/test_contract.py``.

Keys are relative, '/'-separated paths (``volkeeper/archives/host/vol/x.tar.zst``); a key
never starts with '/' and never contains '..' or empty segments (``check_key`` enforces it).

Errors: a missing object raises ``common.errors.NotFound("object", key)``. Anything that
may succeed when simply tried again (timeouts, throttling, 5xx, connection resets) raises
``TransientStorageError``; everything else (bad credentials, missing bucket, permission
denied, invalid key) raises ``PermanentStorageError``. Messages name the target and the
cause and never contain credentials.

Put-if-absent: ``put_bytes_if_absent(key, data)`` creates a small object only when the key
does not exist yet, atomically where the backend can (local: ``link`` of a finished temp
file; S3: ``PutObject`` with ``If-None-Match: *``; memory: under its lock), and raises
``common.errors.Conflict`` when another object is already there. If the key already holds
exactly ``data`` the call succeeds (a retry whose first answer was lost). Repository
initialisation and locks rely on it.

Ranged reads: ``read_range(key, offset, length)`` fetches part of an object (a pack's
header, one blob) without transferring the rest; a negative offset is a suffix, like HTTP
``Range: bytes=-N``. Every backend answers it; the base class has a slow generic version.
"""

from __future__ import annotations

import abc
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

from common.errors import Conflict, InvalidInput, NotFound


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    modified: datetime | None = None


class ObjectWriter(abc.ABC):
    """A streaming upload. Bytes go in with ``write``; nothing is visible under ``key``
    until ``commit`` returns, and ``abort`` removes every trace of the upload (partial
    files, multipart uploads). Used as a context manager it aborts on an exception and
    aborts if the block ends without ``commit``. Memory held is bounded by the backend's
    part size times its upload concurrency, never by the object size."""

    key: str

    @abc.abstractmethod
    def write(self, data: bytes | memoryview) -> None: ...

    @abc.abstractmethod
    def commit(self) -> ObjectInfo:
        """Make the object visible under its final key, atomically. Returns its info."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Discard the upload. Safe to call more than once and after a failed commit."""

    @property
    @abc.abstractmethod
    def bytes_written(self) -> int: ...

    def __enter__(self) -> ObjectWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if not getattr(self, "_committed", False):
            self.abort()


class Backend(abc.ABC):
    """A place where backups are stored. Implementations must be thread-safe."""

    #: A human name for messages, e.g. ``s3://bucket/prefix`` (never with credentials).
    display: str

    @abc.abstractmethod
    def open_writer(self, key: str) -> ObjectWriter:
        """Start a streaming upload to ``key``. An existing object is replaced at commit."""

    @abc.abstractmethod
    def open_reader(self, key: str) -> BinaryIO:
        """A sequential, file-like reader of the object (``read(n)``, ``close``).
        Raises NotFound when the key does not exist."""

    @abc.abstractmethod
    def stat(self, key: str) -> ObjectInfo:
        """Raises NotFound when the key does not exist."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every committed object whose key starts with ``prefix``, in key order. In-flight
        uploads are never listed."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove an object. Deleting a missing key is not an error."""

    def check(self) -> None:
        """Raise a StorageError if the backend cannot be reached or used right now."""
        next(iter(self.list("volkeeper/")), None)

    def put_bytes(self, key: str, data: bytes) -> ObjectInfo:
        with self.open_writer(key) as w:
            w.write(data)
            return w.commit()

    def get_bytes(self, key: str) -> bytes:
        with self.open_reader(key) as r:
            return r.read()

    def put_bytes_if_absent(self, key: str, data: bytes) -> ObjectInfo:
        """Create ``key`` holding ``data`` unless it exists; Conflict when it holds other bytes.

        Backends override this with an atomic version. This generic fallback is *best
        effort*: it checks with ``stat``, writes, then reads the object back and raises
        Conflict when a racing writer's bytes are there instead of ours — two writers can
        still both succeed if their writes and read-backs interleave exactly.
        """
        try:
            existing = self.get_bytes(key)
        except NotFound:
            pass
        else:
            return self._existing(key, existing, data)
        info = self.put_bytes(key, data)
        return self._existing(key, self.get_bytes(key), data, info)

    def _existing(
        self, key: str, existing: bytes, data: bytes, info: ObjectInfo | None = None
    ) -> ObjectInfo:
        """The outcome of a put-if-absent that found ``existing`` under ``key``."""
        if existing != data:
            raise object_exists(key, self.display)
        return info if info is not None else self.stat(key)

    def read_range(self, key: str, offset: int, length: int | None = None) -> bytes:
        """Bytes ``[offset, offset + length)`` of the object, in one request where possible.

        ``length`` None reads to the end. A negative ``offset`` counts from the end, like an
        HTTP suffix range ``bytes=-N``: ``read_range(key, -N)`` is the last N bytes (the
        whole object when it is shorter), found without a ``stat``; ``length`` then limits
        how many of them are returned. A range reaching past the end returns the bytes that
        exist, and an offset at or past the end returns ``b""``; a short result is never an
        error here (callers that need exactly ``length`` bytes check the length). Raises
        NotFound when the key does not exist (also for ``length == 0``) and InvalidInput for
        a negative ``length``.

        This default reads through ``open_reader`` and discards the bytes before ``offset``
        (correct for any backend, but slow); backends override it with a real ranged read.
        """
        check_range(offset, length)
        if offset < 0:
            offset = max(0, self.stat(key).size + offset)
        with self.open_reader(key) as reader:
            if offset:
                _skip(reader, offset)
            if length is None:
                return reader.read()
            parts: list[bytes] = []
            while length > 0 and (got := reader.read(length)):
                parts.append(got)
                length -= len(got)
            return b"".join(parts)

    def discard_partials(self, prefix: str, marker: str) -> tuple[str, ...]:
        """Remove the unfinished uploads under ``prefix`` whose name holds ``marker`` (a
        writer killed mid-upload leaves them; ``list`` never shows them); returns their
        names. Backends whose unfinished uploads are invisible have none."""
        return ()

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and thread pools."""


def object_exists(key: str, display: str) -> Conflict:
    """The Conflict raised by ``put_bytes_if_absent`` when the key is taken."""
    return Conflict(
        f"object {key!r} already exists on {display}",
        "another writer created it first; read it instead of writing it",
    )


def check_range(offset: int, length: int | None) -> None:
    """Validate the arguments of ``Backend.read_range``; raises InvalidInput."""
    if length is not None and length < 0:
        raise InvalidInput(
            f"invalid read range: length {length} at offset {offset}",
            "pass a length of 0 or more, or None to read to the end",
        )


def range_bounds(offset: int, length: int | None, size: int) -> tuple[int, int]:
    """The ``[start, end)`` slice of an object of ``size`` bytes that ``read_range`` returns."""
    start = max(0, size + offset) if offset < 0 else min(offset, size)
    end = size if length is None else min(size, start + length)
    return start, end


def _skip(reader: BinaryIO, n: int) -> None:
    """Advance a reader by ``n`` bytes: seek when it can, else read and discard."""
    seekable = getattr(reader, "seekable", None)
    if seekable is not None and seekable():
        reader.seek(n, io.SEEK_CUR)
        return
    while n > 0:
        got = reader.read(min(n, 1 << 20))
        if not got:
            return
        n -= len(got)


def check_key(key: str) -> str:
    """Validate a storage key; returns it unchanged or raises InvalidInput."""
    if not key or key.startswith("/") or "\\" in key or "\x00" in key:
        raise InvalidInput(f"invalid storage key {key!r}", "keys are relative '/' paths")
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise InvalidInput(f"invalid storage key {key!r}", "no empty, '.' or '..' segments")
    return key

"""The storage backend contract. Every backend (local directory, S3, memory) implements it,
and every backend passes the one shared test suite in ``tests/unit/test_storage_contract.py``.

Keys are relative, '/'-separated paths (``volkeeper/archives/host/vol/x.tar.zst``); a key
never starts with '/' and never contains '..' or empty segments (``check_key`` enforces it).

Errors: a missing object raises ``common.errors.NotFound("object", key)``. Anything that
may succeed when simply tried again (timeouts, throttling, 5xx, connection resets) raises
``TransientStorageError``; everything else (bad credentials, missing bucket, permission
denied, invalid key) raises ``PermanentStorageError``. Messages name the target and the
cause and never contain credentials.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

from common.errors import InvalidInput


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

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and thread pools."""


def check_key(key: str) -> str:
    """Validate a storage key; returns it unchanged or raises InvalidInput."""
    if not key or key.startswith("/") or "\\" in key or "\x00" in key:
        raise InvalidInput(f"invalid storage key {key!r}", "keys are relative '/' paths")
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise InvalidInput(f"invalid storage key {key!r}", "no empty, '.' or '..' segments")
    return key

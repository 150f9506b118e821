"""An in-memory backend: a dict of committed objects behind a lock.

It passes the same contract suite as the real backends, so higher layers (repository,
archive, engine) test against it quickly. Nothing survives the process.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import BinaryIO

from common.errors import NotFound
from common.storage.base import (
    Backend,
    ObjectInfo,
    ObjectWriter,
    check_key,
    check_range,
    object_exists,
    range_bounds,
)


class MemoryBackend(Backend):
    """Thread-safe dict-backed storage; ``name`` only shows up in ``display``."""

    def __init__(self, name: str = "default") -> None:
        self.display = f"memory://{name}"
        self._objects: dict[str, tuple[bytes, datetime]] = {}
        self._lock = threading.Lock()

    def open_writer(self, key: str) -> ObjectWriter:
        return _MemoryWriter(self, check_key(key))

    def open_reader(self, key: str) -> BinaryIO:
        data, _ = self._get(key)
        return io.BytesIO(data)  # shares the immutable bytes, no copy

    def read_range(self, key: str, offset: int, length: int | None = None) -> bytes:
        """A slice of the stored bytes (see ``Backend.read_range``)."""
        check_range(offset, length)
        data, _ = self._get(key)
        start, end = range_bounds(offset, length, len(data))
        return data[start:end]

    def put_bytes_if_absent(self, key: str, data: bytes) -> ObjectInfo:
        """Create ``key`` atomically under the lock; Conflict when it holds other bytes."""
        check_key(key)
        data = bytes(data)
        with self._lock:
            found = self._objects.get(key)
            if found is None:
                modified = datetime.now(UTC)
                self._objects[key] = (data, modified)
                return ObjectInfo(key, len(data), modified)
        if found[0] != data:
            raise object_exists(key, self.display)
        return ObjectInfo(key, len(data), found[1])

    def stat(self, key: str) -> ObjectInfo:
        data, modified = self._get(key)
        return ObjectInfo(key, len(data), modified)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        with self._lock:
            items = [(k, len(d), m) for k, (d, m) in self._objects.items() if k.startswith(prefix)]
        for key, size, modified in sorted(items):
            yield ObjectInfo(key, size, modified)

    def delete(self, key: str) -> None:
        check_key(key)
        with self._lock:
            self._objects.pop(key, None)

    def clear(self) -> None:
        """Drop every object (for tests)."""
        with self._lock:
            self._objects.clear()

    def _get(self, key: str) -> tuple[bytes, datetime]:
        check_key(key)
        with self._lock:
            try:
                return self._objects[key]
            except KeyError:
                raise NotFound("object", key) from None

    def _store(self, key: str, data: bytes) -> datetime:
        modified = datetime.now(UTC)
        with self._lock:
            self._objects[key] = (data, modified)
        return modified


class _MemoryWriter(ObjectWriter):
    def __init__(self, backend: MemoryBackend, key: str) -> None:
        self._backend = backend
        self.key = key
        self._buf = bytearray()
        self._committed = False
        self._aborted = False
        self._n = 0

    def write(self, data: bytes | memoryview) -> None:
        if self._committed or self._aborted:
            raise ValueError(f"writer for {self.key!r} is already finished")
        self._buf += data
        self._n += len(data) if isinstance(data, bytes) else memoryview(data).nbytes

    def commit(self) -> ObjectInfo:
        if self._aborted:
            raise ValueError(f"writer for {self.key!r} was aborted")
        if self._committed:
            raise ValueError(f"writer for {self.key!r} is already committed")
        data = bytes(self._buf)
        self._buf = bytearray()
        modified = self._backend._store(self.key, data)
        self._committed = True
        return ObjectInfo(self.key, len(data), modified)

    def abort(self) -> None:
        if not self._committed:
            self._aborted = True
            self._buf = bytearray()

    @property
    def bytes_written(self) -> int:
        return self._n

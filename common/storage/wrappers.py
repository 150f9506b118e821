"""Cross-cutting behaviour composed around any backend, restic style.

``RetryingBackend`` retries operations that failed with ``TransientStorageError`` using
exponential backoff with jitter (``retry_call`` is the shared helper; the S3 writer uses it
for individual part uploads, since a streaming writer cannot be replayed as a whole).
``RateLimitedBackend`` bounds throughput with a token bucket applied to writer ``write``
and reader ``read``, and to the bytes ``read_range`` returns.
"""

from __future__ import annotations

import io
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import BinaryIO, TypeVar, cast

from common.errors import InvalidInput, TransientStorageError
from common.storage.base import Backend, ObjectInfo, ObjectWriter

T = TypeVar("T")
Sleep = Callable[[float], None]
Clock = Callable[[], float]


def backoff_delay(attempt: int, base_delay: float, max_delay: float) -> float:
    """Delay before retry number ``attempt`` (0-based): exponential, capped, equal jitter."""
    ceiling = min(max_delay, base_delay * (2**attempt))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def retry_call(
    fn: Callable[[], T],
    *,
    attempts: int,
    base_delay: float,
    max_delay: float,
    sleep: Sleep = time.sleep,
) -> T:
    """Call ``fn`` until it does not raise TransientStorageError, at most ``attempts`` times.

    Other exceptions propagate at once. After the last attempt a TransientStorageError
    saying "gave up after N attempts: <cause>" is raised, chained to the last cause.
    """
    attempts = max(1, attempts)
    for attempt in range(attempts):
        try:
            return fn()
        except TransientStorageError as e:
            if attempt == attempts - 1:
                if attempts == 1:
                    raise
                raise TransientStorageError(
                    f"gave up after {attempts} attempts: {e.message}", e.hint
                ) from e
            sleep(backoff_delay(attempt, base_delay, max_delay))
    raise AssertionError("unreachable")  # pragma: no cover


class RetryingBackend(Backend):
    """Retries transient failures of stat/list/delete/open_reader/read_range/put_bytes/get_bytes.

    Writers pass through untouched: a stream cannot be replayed, so backends retry their
    own pieces (the S3 writer retries each part). ``list`` resumes after the last key it
    already yielded, so a retried listing never yields a key twice.
    """

    def __init__(
        self,
        inner: Backend,
        attempts: int = 5,
        base_delay: float = 0.5,
        max_delay: float = 30.0,
        *,
        sleep: Sleep = time.sleep,
    ) -> None:
        if attempts < 1:
            raise InvalidInput(f"retry attempts must be at least 1, not {attempts}")
        self.inner = inner
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._sleep = sleep
        self.display = inner.display

    def _retry(self, fn: Callable[[], T]) -> T:
        return retry_call(
            fn,
            attempts=self.attempts,
            base_delay=self.base_delay,
            max_delay=self.max_delay,
            sleep=self._sleep,
        )

    def open_writer(self, key: str) -> ObjectWriter:
        return self.inner.open_writer(key)

    def open_reader(self, key: str) -> BinaryIO:
        return self._retry(lambda: self.inner.open_reader(key))

    def stat(self, key: str) -> ObjectInfo:
        return self._retry(lambda: self.inner.stat(key))

    def delete(self, key: str) -> None:
        self._retry(lambda: self.inner.delete(key))

    def put_bytes(self, key: str, data: bytes) -> ObjectInfo:
        return self._retry(lambda: self.inner.put_bytes(key, data))

    def get_bytes(self, key: str) -> bytes:
        return self._retry(lambda: self.inner.get_bytes(key))

    def put_bytes_if_absent(self, key: str, data: bytes) -> ObjectInfo:
        """Retried on transient errors only; a Conflict is an answer, never retried. (A
        retry finding our own earlier write is not a Conflict: the bytes are equal.)"""
        return self._retry(lambda: self.inner.put_bytes_if_absent(key, data))

    def read_range(self, key: str, offset: int, length: int | None = None) -> bytes:
        """The inner ranged read, replayed whole on transient errors (it is idempotent)."""
        return self._retry(lambda: self.inner.read_range(key, offset, length))

    def check(self) -> None:
        self._retry(self.inner.check)

    def discard_partials(self, prefix: str, marker: str) -> tuple[str, ...]:
        return self.inner.discard_partials(prefix, marker)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        last: str | None = None
        for attempt in range(self.attempts):
            try:
                for info in self.inner.list(prefix):
                    if last is not None and info.key <= last:
                        continue  # already yielded before the retry
                    last = info.key
                    yield info
                return
            except TransientStorageError as e:
                if attempt == self.attempts - 1:
                    if self.attempts == 1:
                        raise
                    raise TransientStorageError(
                        f"gave up after {self.attempts} attempts: {e.message}", e.hint
                    ) from e
                self._sleep(backoff_delay(attempt, self.base_delay, self.max_delay))

    def close(self) -> None:
        self.inner.close()


class TokenBucket:
    """A thread-safe token bucket; ``consume(n)`` sleeps until ``n`` bytes may pass.

    Tokens refill at ``rate`` per second up to ``capacity`` (default: one second's worth).
    A request larger than the balance goes into debt and sleeps it off, so large chunks
    need no splitting and concurrent callers queue behind each other.
    """

    def __init__(
        self,
        rate: float,
        capacity: float | None = None,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        if rate <= 0:
            raise InvalidInput(f"bandwidth limit must be positive, not {rate}")
        self.rate = float(rate)
        self.capacity = float(capacity if capacity is not None else rate)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.capacity
        self._last = clock()
        self._lock = threading.Lock()

    def consume(self, n: int) -> None:
        if n <= 0:
            return
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= n
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)


class _LimitedWriter(ObjectWriter):
    def __init__(self, inner: ObjectWriter, bucket: TokenBucket) -> None:
        self._inner = inner
        self._bucket = bucket
        self.key = inner.key
        self._committed = False

    def write(self, data: bytes | memoryview) -> None:
        self._bucket.consume(len(data) if isinstance(data, bytes) else data.nbytes)
        self._inner.write(data)

    def commit(self) -> ObjectInfo:
        info = self._inner.commit()
        self._committed = True
        return info

    def abort(self) -> None:
        self._inner.abort()

    @property
    def bytes_written(self) -> int:
        return self._inner.bytes_written


class _LimitedReader(io.RawIOBase):
    def __init__(self, inner: BinaryIO, bucket: TokenBucket) -> None:
        self._inner = inner
        self._bucket = bucket

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        data = self._inner.read(-1 if size is None else size)
        self._bucket.consume(len(data))
        return data

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        data = self._inner.read(len(view))
        view[: len(data)] = data
        self._bucket.consume(len(data))
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._inner.close()
        super().close()


class RateLimitedBackend(Backend):
    """Bounds the bytes per second written and read through this backend (one shared bucket)."""

    def __init__(
        self,
        inner: Backend,
        bytes_per_second: int,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        self.inner = inner
        self.bucket = TokenBucket(bytes_per_second, clock=clock, sleep=sleep)
        self.display = inner.display

    def open_writer(self, key: str) -> ObjectWriter:
        return _LimitedWriter(self.inner.open_writer(key), self.bucket)

    def open_reader(self, key: str) -> BinaryIO:
        return cast(BinaryIO, _LimitedReader(self.inner.open_reader(key), self.bucket))

    def read_range(self, key: str, offset: int, length: int | None = None) -> bytes:
        """The inner ranged read; the bytes it returned are charged to the bucket."""
        data = self.inner.read_range(key, offset, length)
        self.bucket.consume(len(data))
        return data

    def stat(self, key: str) -> ObjectInfo:
        return self.inner.stat(key)

    def put_bytes_if_absent(self, key: str, data: bytes) -> ObjectInfo:
        """The inner put-if-absent; its bytes are charged to the bucket first."""
        self.bucket.consume(len(data))
        return self.inner.put_bytes_if_absent(key, data)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self.inner.list(prefix)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def check(self) -> None:
        self.inner.check()

    def discard_partials(self, prefix: str, marker: str) -> tuple[str, ...]:
        return self.inner.discard_partials(prefix, marker)

    def close(self) -> None:
        self.inner.close()

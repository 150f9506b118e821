"""``Backend.read_range`` on every backend (memory, local, the base class's generic version,
the retry and bandwidth wrappers). The tests taking ``backend`` also run against S3 (moto
over HTTP) in ``tests/integration/storage/test_s3_ranges.py``, with proof that S3 transfers
only the requested bytes."""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

import pytest

from common.errors import InvalidInput, NotFound, TransientStorageError
from common.storage.base import Backend, ObjectInfo, ObjectWriter
from common.storage.local import LocalBackend
from common.storage.memory import MemoryBackend
from common.storage.wrappers import RateLimitedBackend, RetryingBackend
from tests.fixtures.util import FakeClock

MiB = 1024 * 1024
PART = 5 * MiB
DATA = bytes((i * 7 + 3) % 251 for i in range(1000))


class GenericBackend(Backend):
    """A backend that does not override ``read_range``, with a reader that cannot seek: it
    exercises the base class's read-and-discard version."""

    def __init__(self) -> None:
        self.inner = MemoryBackend("generic")
        self.display = "generic://"

    def open_writer(self, key: str) -> ObjectWriter:
        return self.inner.open_writer(key)

    def open_reader(self, key: str) -> BinaryIO:
        return cast(BinaryIO, _Unseekable(self.inner.get_bytes(key)))

    def stat(self, key: str) -> ObjectInfo:
        return self.inner.stat(key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self.inner.list(prefix)

    def delete(self, key: str) -> None:
        self.inner.delete(key)


class _Unseekable(io.RawIOBase):
    """Hands out at most 100 bytes per read, like a network stream."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")[:100]
        return self._data.readinto(view)


@pytest.fixture(params=["memory", "local", "generic", "wrapped"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "memory":
        yield MemoryBackend("ranges")
    elif request.param == "local":
        yield LocalBackend(tmp_path / "root")
    elif request.param == "generic":
        yield GenericBackend()
    else:
        yield RetryingBackend(RateLimitedBackend(MemoryBackend("wrapped"), 10**12), attempts=2)


# (offset, length) → the same slice Python would give; the names read as sentences.
RANGES = {
    "a_middle_range": (100, 50, DATA[100:150]),
    "the_first_byte": (0, 1, DATA[:1]),
    "the_last_byte": (999, 1, DATA[999:]),
    "everything_from_an_offset_to_the_end": (900, None, DATA[900:]),
    "the_whole_object": (0, None, DATA),
    "a_range_reaching_past_the_end_cut_at_the_end": (990, 50, DATA[990:]),
    "a_suffix": (-64, None, DATA[-64:]),
    "a_suffix_longer_than_the_object_as_the_whole_object": (-5000, None, DATA),
    "the_start_of_a_suffix_when_a_length_is_given": (-64, 10, DATA[-64:-54]),
    "nothing_for_a_zero_length": (100, 0, b""),
    "nothing_for_an_offset_at_the_end": (1000, None, b""),
    "nothing_for_a_range_starting_at_the_end": (1000, 10, b""),
    "nothing_for_an_offset_past_the_end": (5000, 10, b""),
}


@pytest.mark.parametrize(("offset", "length", "expected"), RANGES.values(), ids=RANGES.keys())
def test_read_range_returns(
    backend: Backend, offset: int, length: int | None, expected: bytes
) -> None:
    backend.put_bytes("v/obj", DATA)
    assert backend.read_range("v/obj", offset, length) == expected


def test_read_range_of_an_empty_object_is_always_empty(backend: Backend) -> None:
    backend.put_bytes("empty", b"")
    for offset, length in ((0, None), (0, 10), (0, 0), (3, None), (-10, None), (-1, 1)):
        assert backend.read_range("empty", offset, length) == b"", (offset, length)


@pytest.mark.parametrize(("offset", "length"), [(0, None), (5, 10), (-10, None), (0, 0)])
def test_read_range_of_a_missing_key_raises_not_found(
    backend: Backend, offset: int, length: int | None
) -> None:
    backend.put_bytes("present", DATA)
    with pytest.raises(NotFound) as e:
        backend.read_range("absent/key", offset, length)
    assert (e.value.kind, e.value.name) == ("object", "absent/key")


def test_read_range_refuses_a_negative_length_and_an_invalid_key(backend: Backend) -> None:
    backend.put_bytes("k", DATA)
    with pytest.raises(InvalidInput) as e:
        backend.read_range("k", 10, -1)
    assert e.value.hint and "length" in e.value.hint
    with pytest.raises(InvalidInput):
        backend.read_range("a/../k", 0, 10)


def test_read_range_sees_the_bytes_of_a_streamed_multipart_object(backend: Backend) -> None:
    data = bytes(range(256)) * (PART // 256) + DATA  # one byte past a part on S3
    with backend.open_writer("big") as w:
        w.write(data)
        w.commit()
    assert backend.read_range("big", PART - 500, 1000) == data[PART - 500 : PART + 500]
    assert backend.read_range("big", -1500) == data[-1500:]


# -- wrappers ------------------------------------------------------------------------------


class FlakyRanges(MemoryBackend):
    """Fails the first ``failures`` ranged reads with a transient error."""

    def __init__(self, failures: int) -> None:
        super().__init__("flaky")
        self.failures = failures
        self.calls = 0

    def read_range(self, key: str, offset: int, length: int | None = None) -> bytes:
        self.calls += 1
        if self.calls <= self.failures:
            raise TransientStorageError(f"ranged read {self.calls} timed out")
        return super().read_range(key, offset, length)


def test_retrying_replays_a_ranged_read_that_failed_transiently() -> None:
    inner = FlakyRanges(failures=2)
    inner.put_bytes("k", DATA)
    backend = RetryingBackend(inner, attempts=3, base_delay=0, sleep=lambda s: None)
    assert backend.read_range("k", -10) == DATA[-10:]
    assert inner.calls == 3
    with pytest.raises(NotFound):
        backend.read_range("missing", 0)
    assert inner.calls == 4  # NotFound is not retried


def test_rate_limiting_charges_the_bytes_a_ranged_read_returned() -> None:
    clock = FakeClock()
    inner = MemoryBackend()
    inner.put_bytes("obj", bytes(100_000))
    backend = RateLimitedBackend(inner, 10_000, clock=clock, sleep=clock.sleep)
    assert len(backend.read_range("obj", 0, 10_000)) == 10_000  # the one-second burst
    assert clock.slept == 0
    assert len(backend.read_range("obj", -30_000, None)) == 30_000
    assert math.isclose(clock.slept, 3.0)
    assert backend.read_range("obj", 200_000, 10) == b""  # nothing returned, nothing charged
    assert math.isclose(clock.slept, 3.0)

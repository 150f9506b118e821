"""Content-defined chunking: lossless, bounded, deterministic and shift-resistant."""

from __future__ import annotations

import io
import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.errors import InvalidInput
from common.repository.core.chunker import DEFAULT_CHUNKER, Chunker, ChunkerParams

SMALL = ChunkerParams(min_size=1024, avg_size=4096, max_size=16384)


def _random(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=60000), seed=st.integers(1, 2**63 - 1))
def test_chunks_concatenate_to_the_input_and_respect_the_bounds(data, seed) -> None:
    chunker = Chunker(SMALL, seed)
    chunks = list(chunker.chunk_stream(io.BytesIO(data)))
    assert b"".join(chunks) == data
    assert all(len(c) > 0 for c in chunks)
    for c in chunks[:-1]:
        assert SMALL.min_size <= len(c) <= SMALL.max_size
    if chunks:
        assert len(chunks[-1]) <= SMALL.max_size
    assert list(chunker.chunk_bytes(data)) == chunks


def test_boundaries_are_deterministic_per_seed_and_differ_across_seeds() -> None:
    data = _random(400_000, 1)
    a = [len(c) for c in Chunker(SMALL, 7).chunk_bytes(data)]
    assert a == [len(c) for c in Chunker(SMALL, 7).chunk_stream(io.BytesIO(data))]
    assert a != [len(c) for c in Chunker(SMALL, 8).chunk_bytes(data)]


def test_a_one_byte_insertion_early_changes_only_a_few_chunks() -> None:
    data = _random(2_000_000, 2)
    changed = data[:5000] + b"!" + data[5000:]
    chunker = Chunker(SMALL, 99)
    before = list(chunker.chunk_bytes(data))
    after = list(chunker.chunk_bytes(changed))
    assert b"".join(after) == changed
    new = set(after) - set(before)
    assert len(before) > 200
    assert len(new) <= 3


def test_input_up_to_the_minimum_size_is_one_chunk_and_empty_input_none() -> None:
    chunker = Chunker(DEFAULT_CHUNKER, 3)
    small = os.urandom(DEFAULT_CHUNKER.min_size)
    assert list(chunker.chunk_stream(io.BytesIO(small))) == [small]
    assert list(chunker.chunk_stream(io.BytesIO(b""))) == []
    assert list(chunker.chunk_bytes(b"")) == []


def test_files_are_chunked_like_streams(tmp_path) -> None:
    data = _random(3 * 1024 * 1024 + 17, 3)
    path = tmp_path / "file.bin"
    path.write_bytes(data)
    chunker = Chunker(ChunkerParams(64 * 1024, 256 * 1024, 1024 * 1024), 5)
    chunks = list(chunker.chunk_file(path))
    assert b"".join(chunks) == data
    assert chunks == list(chunker.chunk_bytes(data))


class _Trickle(io.RawIOBase):
    """A reader returning at most 1000 bytes per call, like a slow pipe."""

    def __init__(self, data: bytes) -> None:
        self._buf = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, b: memoryview) -> int:  # type: ignore[override]
        chunk = self._buf.read(min(len(b), 1000))
        b[: len(chunk)] = chunk
        return len(chunk)


def test_short_reads_do_not_change_the_boundaries() -> None:
    data = _random(300_000, 4)
    chunker = Chunker(SMALL, 11)
    assert list(chunker.chunk_stream(_Trickle(data))) == list(chunker.chunk_bytes(data))  # type: ignore[arg-type]


def test_invalid_sizes_are_refused() -> None:
    with pytest.raises(InvalidInput, match="invalid chunker sizes"):
        Chunker(ChunkerParams(min_size=8, avg_size=4096, max_size=16384))

"""Reading a sparse file's data ranges: ``readinto`` gives what ``read`` gives."""

from __future__ import annotations

import os
import random
from pathlib import Path

from common.repository.core.chunker import Chunker, ChunkerParams
from common.repository.system.sparse import DataReader, data_ranges, find_holes

KiB = 1024


def _sparse_file(path: Path) -> tuple[int, list[tuple[int, int]]]:
    size = 9 * 1024 * KiB
    rng = random.Random(7)
    with open(path, "wb") as f:
        f.truncate(size)
        for off in (0, 3 * 1024 * KiB, 8 * 1024 * KiB + 100):
            f.seek(off)
            f.write(rng.randbytes(300 * KiB) + b"row text " * 20_000)
    fd = os.open(path, os.O_RDONLY)
    try:
        return size, data_ranges(find_holes(fd, size), size)
    finally:
        os.close(fd)


def test_readinto_reads_the_same_bytes_as_read_in_pieces_of_any_size(tmp_path: Path) -> None:
    path = tmp_path / "disk.img"
    _size, ranges = _sparse_file(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        want = b"".join(os.pread(fd, end - start, start) for start, end in ranges)
        for piece in (1, 4096, 100_000, 1 << 20, 16 << 20):
            got, r = bytearray(), DataReader(fd, ranges)
            buf = bytearray(piece)
            while n := r.readinto(memoryview(buf)):
                got += buf[:n]
            assert bytes(got) == want, piece
            assert r.readinto(bytearray(0)) == 0 and r.read() == b""
    finally:
        os.close(fd)


def test_a_sparse_file_chunks_the_same_through_readinto_as_through_read(
        tmp_path: Path) -> None:
    """The archiver's chunker takes ``readinto`` when the stream has it: same chunks."""
    path = tmp_path / "disk.img"
    _size, ranges = _sparse_file(path)
    chunker = Chunker(ChunkerParams(min_size=64 * KiB, avg_size=256 * KiB,
                                    max_size=1024 * KiB))

    class ReadOnly:
        def __init__(self, reader: DataReader) -> None:
            self.read = reader.read

    fd = os.open(path, os.O_RDONLY)
    try:
        direct = list(chunker.chunk_stream(DataReader(fd, ranges)))  # type: ignore[arg-type]
        by_read = list(chunker.chunk_stream(ReadOnly(DataReader(fd, ranges))))  # type: ignore[arg-type]
    finally:
        os.close(fd)
    assert direct == by_read and len(direct) >= 2  # 1.4 MiB of data, chunks <= 1 MiB

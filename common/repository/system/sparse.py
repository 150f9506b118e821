"""Sparse files: finding holes, and reading only a file's data ranges.

A node's ``holes`` are ``[(offset, length)]``; its data ranges are the rest of
``[0, size)``. The archiver chunks only the data ranges, the restorer writes only them, and
the drill/replace comparison re-chunks them from the restored file the same way.
"""

from __future__ import annotations

import os


def find_holes(fd: int, size: int) -> list[tuple[int, int]]:
    """The hole ranges ``[(offset, length)]`` of a file (SEEK_HOLE/SEEK_DATA)."""
    holes: list[tuple[int, int]] = []
    pos = 0
    try:
        while pos < size:
            try:
                data = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:  # ENXIO: only a hole remains
                data = size
            if data > pos:
                holes.append((pos, min(data, size) - pos))
            if data >= size:
                break
            pos = os.lseek(fd, data, os.SEEK_HOLE)
    except OSError:
        return []
    return holes


def data_ranges(holes: list[tuple[int, int]], size: int) -> list[tuple[int, int]]:
    """The ``[(start, end)]`` ranges of ``[0, size)`` not covered by ``holes``."""
    ranges, pos = [], 0
    for off, length in sorted(holes):
        if off > pos:
            ranges.append((pos, min(off, size)))
        pos = max(pos, off + length)
    if pos < size:
        ranges.append((pos, size))
    return ranges


class DataReader:
    """Reads the given byte ranges of a file, concatenated (the data of a sparse file).
    Stops early when the file turns out shorter (it shrank)."""

    def __init__(self, fd: int, ranges: list[tuple[int, int]]) -> None:
        self._fd = fd
        self._ranges = ranges
        self._i = 0
        self._pos = ranges[0][0] if ranges else 0

    def _left(self) -> int:
        """Bytes left in the current range (moving on past ended ones); 0 at the end."""
        while self._i < len(self._ranges):
            end = self._ranges[self._i][1]
            if self._pos < end:
                return end - self._pos
            self._i += 1
            if self._i < len(self._ranges):
                self._pos = self._ranges[self._i][0]
        return 0

    def read(self, n: int = -1) -> bytes:
        left = self._left()
        if not left:
            return b""
        data = os.pread(self._fd, min(left if n < 0 else min(n, left), 1 << 24), self._pos)
        if not data:  # file shrank
            self._i = len(self._ranges)
        self._pos += len(data)
        return data

    def readinto(self, buf: memoryview | bytearray) -> int:
        """``read`` into ``buf`` (the chunker's stream buffer): no bytes object of up to
        16 MiB allocated per read and copied over (a sparse file's backup peaked ~30 MiB
        higher without it)."""
        view = memoryview(buf)
        left = self._left() if view else 0
        if not left:
            return 0
        got = os.preadv(self._fd, [view[: min(len(view), left)]], self._pos)
        if not got:  # file shrank
            self._i = len(self._ranges)
        self._pos += got
        return got

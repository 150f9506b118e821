"""Content-defined chunking (FastCDC via pyfastcdc) with the repository's parameters.

Boundaries depend on the content only, so an insertion near the start of a file moves
the boundaries of one or two chunks and every later chunk keeps its id (that is what
makes re-backups of changed files cheap). The gear table is perturbed by the repository's
secret ``chunker_seed`` so chunk sizes do not fingerprint known files. Input shorter than
or equal to ``min_size`` is one chunk; empty input yields no chunk. Memory is bounded by
about two ``max_size`` buffers whatever the input size.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import pyfastcdc

from common.errors import InvalidInput

KiB = 1024
MiB = 1024 * KiB


@dataclass(frozen=True)
class ChunkerParams:
    """FastCDC sizes. pyfastcdc's mean chunk is about ``avg_size + min_size / 2``."""

    min_size: int = 512 * KiB
    avg_size: int = 1 * MiB
    max_size: int = 8 * MiB

    def validate(self) -> ChunkerParams:
        """Refuse sizes pyfastcdc cannot use."""
        ok = (
            64 <= self.min_size <= 1 * MiB
            and 256 <= self.avg_size <= 4 * MiB
            and 1 * KiB <= self.max_size <= 16 * MiB
            and self.min_size <= self.avg_size <= self.max_size
        )
        if not ok:
            raise InvalidInput(
                f"invalid chunker sizes min={self.min_size} avg={self.avg_size} "
                f"max={self.max_size}",
                "need 64<=min<=1MiB, 256<=avg<=4MiB, 1KiB<=max<=16MiB and min<=avg<=max",
            )
        return self


DEFAULT_CHUNKER = ChunkerParams()


class _Prefixed:
    """A reader that first replays ``head`` then reads from ``stream``."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self._head = memoryview(head)
        self._stream = stream

    def readinto(self, buf: memoryview) -> int:
        if self._head:
            n = min(len(buf), len(self._head))
            buf[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        readinto = getattr(self._stream, "readinto", None)
        if readinto is not None:
            return int(readinto(buf) or 0)
        data = self._stream.read(len(buf))
        buf[: len(data)] = data
        return len(data)


def _read_up_to(stream: BinaryIO, n: int) -> bytes:
    parts: list[bytes] = []
    left = n
    while left > 0:
        data = stream.read(left)
        if not data:
            break
        parts.append(data)
        left -= len(data)
    return b"".join(parts)


class Chunker:
    """Cuts byte streams into content-defined chunks. Reusable; one per thread."""

    def __init__(self, params: ChunkerParams = DEFAULT_CHUNKER, seed: int = 0) -> None:
        self.params = params.validate()
        self._cdc = pyfastcdc.FastCDC(
            params.avg_size, min_size=params.min_size, max_size=params.max_size, seed=seed
        )

    def chunk_stream(self, stream: BinaryIO) -> Iterator[bytes]:
        """Yield the chunks of ``stream`` as bytes (each owned by the caller)."""
        head = _read_up_to(stream, self.params.min_size + 1)
        if len(head) <= self.params.min_size:
            if head:
                yield head
            return
        for chunk in self._cdc.cut_stream(_Prefixed(head, stream)):
            yield bytes(chunk.data)

    def chunk_file(self, path: str | os.PathLike[str]) -> Iterator[bytes]:
        """Yield the chunks of the file at ``path`` (read sequentially, never whole)."""
        with open(path, "rb", buffering=0) as f:
            yield from self.chunk_stream(f)

    def chunk_bytes(self, data: bytes | memoryview) -> Iterator[bytes]:
        """Yield the chunks of an in-memory buffer."""
        if len(data) <= self.params.min_size:
            if len(data):
                yield bytes(data)
            return
        for chunk in self._cdc.cut_buf(data):
            yield bytes(chunk.data)


class ChunkFeeder:
    """Push-style chunking: ``feed`` pieces of one stream, ``finish`` at its end; every
    complete chunk goes to ``emit``. Cuts exactly where ``Chunker.chunk_stream`` cuts on
    the same bytes: FastCDC decides a cut only from the bytes between the chunk start and
    ``max_size`` after it, so a chunk is cut only once that much data (or the end of the
    stream) is buffered. Memory: the buffer stays below ``window + max_size``.
    """

    def __init__(self, chunker: Chunker, emit: Callable[[bytes], object],
                 window: int = 32 * MiB) -> None:
        self._cdc = chunker._cdc
        self._max = chunker.params.max_size
        self._emit = emit
        self._window = max(window, 2 * self._max)
        self._buf = bytearray()

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        self._buf += data
        if len(self._buf) >= self._window:
            self._cut(final=False)

    def finish(self) -> None:
        """Cut and emit what is left (the stream ended); the feeder can be reused."""
        self._cut(final=True)
        self._buf = bytearray()

    def _cut(self, final: bool) -> None:
        done = self._emit_chunks(final)  # its views of the buffer are gone once it returns
        del self._buf[:done]

    def _emit_chunks(self, final: bool) -> int:
        limit = len(self._buf) if final else len(self._buf) - self._max
        done = 0
        for chunk in self._cdc.cut_buf(self._buf):
            if not final and chunk.offset > limit:
                break
            self._emit(bytes(chunk.data))
            done = chunk.offset + chunk.length
        return done

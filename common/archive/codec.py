"""Compression codecs of the archive formats: ``tar`` (none), ``tar.gz``, ``tar.zst``.

Compressors are push-based (``compress(chunk) -> bytes``, ``flush() -> bytes``) and use
both cores: zstd through its own worker threads, gzip as a pigz-style parallel deflate
(blocks compressed in a thread pool, each primed with the previous 32 KiB, joined into
one ordinary gzip member that ``gzip -d`` reads). Decompressors are pull-based readers
whose ``read(n)`` never returns more than ``n`` bytes, so memory stays bounded even for
data that compresses a million-fold (a file of zeros).
"""

from __future__ import annotations

import collections
import os
import struct
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO, Protocol

import zstandard

from common.errors import IntegrityError, InvalidInput
from common.formats import ARCHIVE_FORMATS
from common.formats import ArchiveFormat as Format

FORMATS: tuple[Format, ...] = ARCHIVE_FORMATS
EXTENSIONS: dict[Format, str] = {"tar": ".tar", "tar.gz": ".tar.gz", "tar.zst": ".tar.zst"}


def check_format(fmt: str) -> Format:
    """Validate an archive format name."""
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown archive format {fmt!r}", f"use one of {', '.join(FORMATS)}")
    return fmt


class Sink(Protocol):
    def write(self, data: bytes) -> object: ...


class Compressor(Protocol):
    """Compresses what ``write`` gets into its sink; ``finish`` ends the stream."""

    def write(self, data: bytes | bytearray | memoryview) -> object: ...

    def finish(self) -> None: ...

    def close(self) -> None: ...


class _Identity:
    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    def write(self, data: bytes | bytearray | memoryview) -> object:
        return self.sink.write(bytes(data))

    def finish(self) -> None:
        """Nothing is buffered."""

    def close(self) -> None:
        """Nothing to release."""


class _Zstd:
    """Multi-threaded zstd (level 3 like the ``zstd`` command) with frame checksums."""

    def __init__(self, sink: Sink, level: int) -> None:
        cctx = zstandard.ZstdCompressor(level=level, threads=os.cpu_count() or 1,
                                        write_checksum=True)
        self._w = cctx.stream_writer(sink, write_size=1 << 20,  # type: ignore[arg-type]
                                     closefd=False)

    def write(self, data: bytes | bytearray | memoryview) -> object:
        return self._w.write(data)

    def finish(self) -> None:
        self._w.flush(zstandard.FLUSH_FRAME)

    def close(self) -> None:
        """Nothing to release beyond what the garbage collector frees."""


class ParallelGzip:
    """A gzip compressor that deflates ``block``-sized pieces on ``workers`` threads."""

    _WINDOW = 32 * 1024

    def __init__(self, sink: Sink, level: int = 6, workers: int | None = None,
                 block: int = 1 << 20) -> None:
        self.sink = sink
        self.level = level
        self.block = block
        self.workers = workers or os.cpu_count() or 1
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="gzip")
        self._pending: collections.deque[Future[bytes]] = collections.deque()
        self._buf = bytearray()
        self._dict = b""
        self._crc = 0
        self._size = 0
        self.sink.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff")

    def _deflate(self, data: bytes, zdict: bytes, last: bool) -> bytes:
        if zdict:
            c = zlib.compressobj(self.level, zlib.DEFLATED, -15, 9, zdict=zdict)
        else:
            c = zlib.compressobj(self.level, zlib.DEFLATED, -15, 9)
        return c.compress(data) + c.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)

    def _submit(self, data: bytes, last: bool) -> None:
        self._pending.append(self._pool.submit(self._deflate, data, self._dict, last))
        self._dict = data[-self._WINDOW :]

    def _collect(self, wait_all: bool) -> None:
        while self._pending and (
            wait_all or self._pending[0].done() or len(self._pending) > 2 * self.workers
        ):
            self.sink.write(self._pending.popleft().result())

    def write(self, data: bytes | bytearray | memoryview) -> object:
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        self._buf += data
        while len(self._buf) >= self.block:
            piece = bytes(self._buf[: self.block])
            del self._buf[: self.block]
            self._submit(piece, last=False)
        self._collect(wait_all=False)
        return len(data)

    def finish(self) -> None:
        self._submit(bytes(self._buf), last=True)
        self._buf = bytearray()
        try:
            self._collect(wait_all=True)
        finally:
            self._pool.shutdown(wait=True)
        self.sink.write(struct.pack("<II", self._crc & 0xFFFFFFFF, self._size & 0xFFFFFFFF))

    def close(self) -> None:
        """Release the worker threads (after a failure; ``finish`` does it otherwise)."""
        self._pool.shutdown(wait=True, cancel_futures=True)


def open_compressor(fmt: Format, sink: Sink, level: int | None = None) -> Compressor:
    """A compressor for ``fmt`` writing into ``sink``; ``level`` defaults to 3 for zstd and
    6 for gzip."""
    if fmt == "tar.zst":
        return _Zstd(sink, 3 if level is None else level)
    if fmt == "tar.gz":
        return ParallelGzip(sink, 6 if level is None else level)
    return _Identity(sink)


class _GzipReader:
    """Bounded-output gzip decoding with truncation detection (multi-member aware)."""

    def __init__(self, raw: BinaryIO, name: str, read_size: int) -> None:
        self.raw = raw
        self.name = name
        self.read_size = read_size
        self._d = zlib.decompressobj(31)
        self._pending = b""
        self._eof_raw = False
        self._started = False

    def read(self, n: int) -> bytes:
        while True:
            if self._d.eof and (self._d.unused_data or self._pending):
                self._pending = self._d.unused_data + self._pending
                self._d = zlib.decompressobj(31)
            if not self._pending and not self._d.unconsumed_tail and not self._eof_raw:
                self._pending = self.raw.read(self.read_size)
                if not self._pending:
                    self._eof_raw = True
            data = self._d.unconsumed_tail + self._pending
            self._pending = b""
            if not data:
                if self._eof_raw and self._started and not self._d.eof:
                    raise IntegrityError(f"archive {self.name} is truncated (gzip stream ends "
                                         "mid-way)", "the stored object is incomplete")
                if self._eof_raw:
                    return b""
            try:
                out = self._d.decompress(data, n)
            except zlib.error as e:
                raise IntegrityError(f"archive {self.name} is corrupt: gzip says {e}",
                                     "the stored object is damaged; restore another backup"
                                     ) from None
            self._started = True
            if out:
                return out


def open_decompressed(raw: BinaryIO, fmt: Format, name: str,
                      read_size: int = 1 << 20) -> BinaryIO:
    """A reader of the tar stream inside ``raw``. Decoding errors raise IntegrityError."""
    if fmt == "tar.zst":
        dctx = zstandard.ZstdDecompressor()
        return dctx.stream_reader(raw, read_size=read_size,
                                  read_across_frames=True)
    if fmt == "tar.gz":
        return _GzipReader(raw, name, read_size)  # type: ignore[return-value]
    return raw

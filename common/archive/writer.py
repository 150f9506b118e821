"""Writing an archive: a tar stream in, one compressed object and a manifest out.

``write_archive`` reads the tar stream in 1 MiB chunks and tees each chunk to two places
that run at the same time: a scanner thread that parses the tar headers and hashes every
member (for the manifest), and the compressor whose output is hashed (the archive
checksum, ``common.archive.checksum``) and written to the storage backend. zstd compresses
on its own worker threads and blake3 releases the GIL, so both cores stay busy. Memory is
a few chunks in flight, whatever the size of the volume.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import BinaryIO

from common.archive.checksum import Algorithm, ObjectHash
from common.archive.codec import Format, check_format, open_compressor
from common.archive.counting import ContentProgress
from common.archive.manifest import ManifestSummary, ManifestWriter
from common.archive.tarscan import BLOCK, TarEntry, TarScanner
from common.errors import IntegrityError
from common.progress import ProgressTracker
from common.storage.base import ObjectWriter

CHUNK = 1 << 20
_QUEUE_DEPTH = 8
#: GNU tar's default record (20 blocks): an archive's tar stream is padded to it
_TAR_RECORD = 20 * BLOCK


@dataclass
class ArchiveStats:
    """What one archive write produced."""

    format: Format
    tar_bytes: int
    stored_bytes: int
    #: the archive object's checksum (``common.archive.checksum``: ``blake3:<hex>``, or a
    #: sha256 hex beside a version 1 manifest)
    archive_sha256: str
    entries: int
    files: int
    file_bytes: int
    seconds: float
    summary: ManifestSummary | None = None


def read_full(stream: BinaryIO, size: int = CHUNK, buf: bytearray | None = None) -> memoryview:
    """Read up to ``size`` bytes into ``buf`` (or a fresh buffer), looping over short reads
    (pipes); an empty view only at EOF."""
    if buf is None:
        buf = bytearray(size)
    view = memoryview(buf)
    filled = 0
    readinto = getattr(stream, "readinto", None)
    while filled < size:
        if readinto is not None:
            n = readinto(view[filled:])
        else:
            data = stream.read(size - filled)
            n = len(data)
            view[filled : filled + n] = data
        if not n:
            break
        filled += n
    return view[:filled]


class _HashingSink:
    """Hashes, counts and stores the compressed bytes."""

    def __init__(self, writer: ObjectWriter, algorithm: Algorithm) -> None:
        self.writer = writer
        self.digest = ObjectHash(algorithm)
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.writer.write(data)
        self.size += len(data)
        return len(data)


class _ScanThread:
    """Runs a TarScanner on chunks handed over through a bounded queue.

    The chunks live in a fixed pool of buffers (``take_buffer``) that the thread hands
    back once parsed, so no memory is allocated per chunk."""

    def __init__(self, scanner: TarScanner) -> None:
        self.scanner = scanner
        self.error: BaseException | None = None
        self._q: queue.Queue[tuple[bytearray, memoryview] | None] = queue.Queue(_QUEUE_DEPTH)
        self._free: queue.Queue[bytearray] = queue.Queue()
        for _ in range(_QUEUE_DEPTH + 2):
            self._free.put(bytearray(CHUNK))
        self._thread = threading.Thread(target=self._run, name="tar-scan", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._q.get()) is not None:
            buf, chunk = item
            if self.error is None:
                try:
                    self.scanner.feed(chunk)
                except BaseException as e:  # noqa: BLE001 - re-raised in the caller
                    self.error = e
            self._free.put(buf)

    def take_buffer(self) -> bytearray:
        """A CHUNK-sized buffer that the scanner is done with."""
        return self._free.get()

    def put(self, buf: bytearray, chunk: memoryview) -> None:
        """Parse ``chunk`` (a view of ``buf``); ``buf`` returns to the pool afterwards."""
        if self.error is not None:
            raise self.error
        self._q.put((buf, chunk))

    def abandon(self) -> None:
        """Stop the thread after a failure elsewhere; its own errors are dropped."""
        self.error = self.error or RuntimeError("abandoned")
        self._q.put(None)
        self._thread.join()

    def finish(self) -> None:
        self._q.put(None)
        self._thread.join()
        if self.error is not None:
            raise self.error
        self.scanner.close()


def _stored_end(scanner: TarScanner, length: int) -> int:
    """How much of a tar stream of ``length`` bytes is stored: through the end-of-archive
    marker's two zero blocks, padded to GNU tar's default 10 KiB record, the layout plain
    ``tar -c`` writes. ``gnutar`` makes tar write 1 MiB records (fewer, larger pipe
    writes), whose up to 1 MiB of extra zero padding after the marker is left out, so the
    archive is the one a default ``tar -c`` would have made."""
    if scanner.end_offset is None:
        return length
    return min(length, -(-(scanner.end_offset + 2 * BLOCK) // _TAR_RECORD) * _TAR_RECORD)


def write_archive(
    tar_stream: BinaryIO,
    writer: ObjectWriter,
    fmt: Format,
    tracker: ProgressTracker,
    *,
    manifest: ManifestWriter | None = None,
    level: int | None = None,
    name: str | None = None,
) -> ArchiveStats:
    """Compress ``tar_stream`` into ``writer`` and describe every member in ``manifest``.

    The writer is neither committed nor aborted: the caller commits it when this returns
    (and then uploads the manifest) or aborts it when this raises. ``tracker`` counts
    regular files and their content bytes (``counting``). ``level`` is the zstd
    (default 3) or gzip (default 6) level.
    Raises TarFormatError (an IntegrityError) if the stream is not a complete tar archive.
    """
    fmt = check_format(fmt)
    started = time.monotonic()
    label = name or writer.key

    counts = ContentProgress(tracker)

    def on_entry(entry: TarEntry) -> None:
        if manifest is not None:
            manifest.entry(entry)
        counts.on_entry(entry)

    scanner = TarScanner(on_entry, hash_content=manifest is not None,
                         on_start=counts.on_start,
                         digest=manifest.digest if manifest is not None else "blake3")
    scan = _ScanThread(scanner)
    # a version 1 (sha256) manifest keeps a sha256 of the archive beside it
    out = _HashingSink(writer, "sha256" if manifest is not None and manifest.digest == "sha256"
                       else "blake3")
    compressor = open_compressor(fmt, out, level)
    tar_bytes = 0
    # the last chunk is held back until the scanner has seen the whole stream: what
    # follows tar's end-of-archive marker beyond tar's usual record is left out
    # (``_stored_end``)
    held: tuple[bytearray, memoryview] | None = None
    try:
        while True:
            buf = scan.take_buffer()
            chunk = read_full(tar_stream, CHUNK, buf)
            if held is not None and chunk:
                compressor.write(held[1])  # copies what it keeps (zstd, gzip) or writes it
                scan.put(*held)
                tar_bytes += len(held[1])
            if not chunk:
                break
            held = (buf, chunk)
        if held is not None:
            scan.put(*held)
        try:
            scan.finish()
        except IntegrityError as e:
            raise IntegrityError(f"the tar stream for {label} is unusable: {e.message}",
                                 e.hint) from e
        if held is not None:
            last = held[1][: max(0, _stored_end(scanner, tar_bytes + len(held[1])) - tar_bytes)]
            compressor.write(last)
            tar_bytes += len(last)
        compressor.finish()
    except BaseException:
        scan.abandon()
        compressor.close()
        raise
    stored = out.size
    archive_sha256 = out.digest.checksum()
    summary = manifest.summary(archive_sha256, stored) if manifest is not None else None
    return ArchiveStats(
        format=fmt, tar_bytes=tar_bytes, stored_bytes=stored, archive_sha256=archive_sha256,
        entries=scanner.members,
        files=manifest.files if manifest is not None else 0,
        file_bytes=manifest.bytes if manifest is not None else 0,
        seconds=time.monotonic() - started, summary=summary,
    )

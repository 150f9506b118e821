"""The backup pipeline behind the walk: encoder threads and the packer.

Blobs travel in batches (up to 64 blobs or 1 MiB; a large chunk alone), so the cost of a
thread hand-off is paid per batch, not per small file; a pool of encoder threads
compresses and seals them (zstd releases the GIL; AES-GCM, ``cryptography``'s Rust
backend, holds it while it runs); one packer thread appends sealed blobs to a data pack
and a tree pack, commits a pack when the next blob would overflow it, and writes an index
file every ``index_every`` packs. ``InFlight`` caps the batches in flight by number and by
bytes, so memory is at most ~``in_flight_bytes`` (or one chunk, up to 8 MiB, alone)
however large the chunks. Blobs sealed by backup worker processes join at the packer
(``Pipeline.deliver``). On an exception the packer still indexes the packs it committed.
"""

from __future__ import annotations

import contextlib
import functools
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from common.repository.backup import workers as backup_workers
from common.repository.core import pack as packmod
from common.repository.core.ids import BlobType
from common.repository.core.index import IndexEntry
from common.repository.core.repository import Repository
from common.repository.core.snapshot import SnapshotStats


@dataclass(frozen=True)
class BackupOptions:
    """Tuning knobs (defaults suit a 2-core worker)."""

    encoders: int = 2
    #: batches queued, encoding or waiting for the packer (12 -> 4: the first backup of the
    #: mixed 1 GiB set peaked ~40 MiB lower, at the same CPU time; two encoders and the
    #: packer stay fed)
    in_flight: int = 4  # batches
    #: and their bytes (as handed to the encoders or sealed by a worker): four batches of
    #: small files or average chunks (~1 MiB each) fit, four 8 MiB chunks do not
    in_flight_bytes: int = 8 << 20
    index_every: int = 8
    batch_bytes: int = 1 << 20
    batch_blobs: int = 64
    readers: int = 2  # threads reading small files ahead of the walk
    processes: int | None = None  # worker processes for many small files (None: per CPU)
    # small files read before they start (0: from the first file on, waiting for them)
    process_after: int = backup_workers.PROCESS_AFTER
    #: threads chunking large files beside the walk (0: the walk chunks them itself; one
    #: keeps up with the walk of a changed re-backup, two only add GIL hand-offs)
    chunkers: int = 1
    #: keep the trees written in this process for the next backup of the volume (a
    #: migration's catch-up, whose snapshot the cut-over's backup walks again: ``kept``)
    keep_trees: bool = False


class InFlight:
    """Batches in flight, bounded by number and by bytes: ``acquire`` waits while
    ``batches`` are in flight or while the batch would take their bytes over ``limit`` (a
    batch always goes when nothing else is in flight, however large)."""

    def __init__(self, batches: int, limit: int) -> None:
        self.batches, self.limit = max(1, batches), limit
        self._cond = threading.Condition()
        self._count = 0
        self._bytes = 0

    def _room(self, nbytes: int) -> bool:
        return self._count == 0 or (self._count < self.batches
                                    and self._bytes + nbytes <= self.limit)

    def acquire(self, nbytes: int, timeout: float) -> bool:
        """Take room for a batch of ``nbytes`` (within ``timeout`` seconds); whether taken."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._room(nbytes), timeout):
                return False
            self._count += 1
            self._bytes += nbytes
            return True

    def release(self, nbytes: int) -> None:
        """Give back the room of a batch of ``nbytes`` (packed, or failed)."""
        with self._cond:
            self._count -= 1
            self._bytes -= nbytes
            self._cond.notify_all()


class Packer:
    """Owns the open packs; runs in its own thread, fed sealed blobs through a queue."""

    def __init__(self, repo: Repository, stats: SnapshotStats, index_every: int,
                 slots: InFlight, committed: Callable[[list[IndexEntry]], None]
                 ) -> None:
        self.repo = repo
        self.committed = committed
        self.stats = stats
        self.index_every = index_every
        self.slots = slots
        #: sealed batches, each with the bytes it holds in ``slots``
        self.queue: queue.SimpleQueue[tuple[list[packmod.EncodedBlob], int] | None] = (
            queue.SimpleQueue())
        self.error: BaseException | None = None
        self._open: dict[BlobType, packmod.PackWriter] = {}
        self._unindexed: list[IndexEntry] = []
        self._since_index = 0
        #: the index files written
        self.written: list[bytes] = []
        self._thread = threading.Thread(target=self._run, name="repo-packer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while (item := self.queue.get()) is not None:
                batch, nbytes = item
                try:
                    if self.error is None:
                        for blob in batch:
                            self._add(blob)
                finally:
                    del batch, item
                    self.slots.release(nbytes)
            if self.error is None:
                for t in list(self._open):
                    self._finish(t)
                self._write_index()
        except BaseException as exc:  # noqa: BLE001 - handed to the walking thread
            self.error = exc
        finally:
            for writer in self._open.values():
                writer.abort()
            if self.error is not None:
                # best effort: index what was committed so the next backup reuses it
                with contextlib.suppress(BaseException):
                    self._write_index()

    def _add(self, blob: packmod.EncodedBlob) -> None:
        writer = self._open.get(blob.blob_type)
        if writer is not None and not writer.fits(len(blob.data)):
            self._finish(blob.blob_type)
            writer = None
        if writer is None:
            writer = self._open[blob.blob_type] = packmod.PackWriter(
                self.repo.backend, self.repo.cipher, target_size=self.repo.config.pack_size
            )
        writer.add(blob)
        self.stats.new_blobs += 1
        self.stats.new_bytes += len(blob.data)

    def _finish(self, blob_type: BlobType) -> None:
        writer = self._open.pop(blob_type)
        entries = writer.finish()
        self.committed(entries)
        self._unindexed.extend(entries)
        self.stats.packs += 1
        self._since_index += 1
        if self._since_index >= self.index_every:
            self._write_index()

    def _write_index(self) -> None:
        index_id = self.repo.write_index_file(self._unindexed)
        if index_id is not None:
            self.written.append(index_id)
            self.stats.index_files += 1
        self._unindexed = []
        self._since_index = 0

    def close(self) -> None:
        """Finish the open packs and the last index file; re-raise a packer failure."""
        self.queue.put(None)
        self._thread.join()
        if self.error is not None:
            raise self.error


class Pipeline:
    """Hands new blobs to the encoders in batches and on to the packer, bounding what is in
    flight. Small blobs (a small file is one) are grouped into batches of up to
    ``batch_bytes`` / ``batch_blobs`` so the per-blob cost of a thread hand-off is paid once
    per batch; a large chunk is a batch on its own."""

    def __init__(self, repo: Repository, stats: SnapshotStats,
                 options: BackupOptions) -> None:
        self.repo = repo
        self.index = repo.index  # what this run stores is added to it
        self.seen: set[bytes] = set()
        self.slots = InFlight(options.in_flight, options.in_flight_bytes)
        self.lock = threading.Lock()  # guards ``index``, which the packer adds to
        #: guards ``seen`` and the batch: the walk and the chunking threads submit
        self._submitting = threading.Lock()
        self.packer = Packer(repo, stats, options.index_every, self.slots, self._committed)
        self.pool = ThreadPoolExecutor(options.encoders, thread_name_prefix="repo-encode")
        self.batch_bytes = options.batch_bytes
        self.batch_blobs = options.batch_blobs
        self._batch: list[tuple[BlobType, bytes, bytes]] = []
        self._batch_size = 0

    def known(self, blob_id: bytes) -> bool:
        """Whether the blob is indexed or already queued in this run."""
        if blob_id in self.seen:
            return True
        with self.lock:
            return blob_id in self.index

    def unknown(self, blob_ids: list[bytes]) -> set[bytes]:
        """Those of ``blob_ids`` neither indexed nor queued (one lock for them all)."""
        seen = self.seen
        rest = [b for b in blob_ids if b not in seen]
        with self.lock:
            return self.index.missing(rest)

    def layout(self, blob_ids: list[bytes]) -> list[tuple[bytes, int]] | None:
        """Each indexed blob with its plaintext length, in order; None if one is not
        indexed (a file's parent-snapshot chunks, for ``large.chunk_resync``)."""
        out = []
        with self.lock:
            for b in blob_ids:
                entry = self.index.lookup(b)
                if entry is None:
                    return None
                out.append((b, entry.raw_length))
        return out

    def want(self, blob_id: bytes) -> bool:
        """(walking thread) Whether a blob read by a worker process must be stored; it
        counts as queued from now on."""
        with self._submitting:
            if self.known(blob_id):
                return False
            self.seen.add(blob_id)
            return True

    def deliver(self, batch: list[packmod.EncodedBlob]) -> None:
        """(a worker's receiver thread) Hand blobs sealed elsewhere to the packer, within
        the bound on batches in flight."""
        nbytes = sum(len(blob.data) for blob in batch)
        while not self.slots.acquire(nbytes, timeout=0.2):
            self.raise_if_failed()
        self.packer.queue.put((batch, nbytes))

    def _committed(self, entries: list[IndexEntry]) -> None:
        """(packer thread) Blobs of a committed pack move from ``seen`` into the compact
        index, so what this run stored costs ~50 bytes per blob, not a set entry. The index
        gets them first, so ``known`` never misses one in between."""
        with self.lock:
            self.index.add_all(entries)
        for e in entries:
            self.seen.discard(e.blob_id)

    def submit(self, blob_type: BlobType, data: bytes, blob_id: bytes) -> None:
        """Store a blob unless known (from any thread: a blob two threads submit at once
        is stored once)."""
        with self._submitting:
            if self.known(blob_id):
                return
            self.seen.add(blob_id)
            self._batch.append((blob_type, data, blob_id))
            self._batch_size += len(data)
            if self._batch_size >= self.batch_bytes or len(self._batch) >= self.batch_blobs:
                self._flush()

    def flush(self) -> None:
        """Hand the current batch to an encoder (waits while too much is in flight)."""
        with self._submitting:
            self._flush()

    def _flush(self) -> None:
        if not self._batch:
            return
        batch, nbytes = self._batch, self._batch_size
        self._batch, self._batch_size = [], 0
        while not self.slots.acquire(nbytes, timeout=0.2):
            self.raise_if_failed()
        self.raise_if_failed()
        fut = self.pool.submit(self._encode, batch)
        fut.add_done_callback(functools.partial(self._encoded, nbytes))

    def _encode(self, batch: list[tuple[BlobType, bytes, bytes]]) -> list[packmod.EncodedBlob]:
        encode = self.repo.codec.encode
        return [encode(t, data, blob_id) for t, data, blob_id in batch]

    def _encoded(self, nbytes: int, fut: Future[list[packmod.EncodedBlob]]) -> None:
        exc = fut.exception()
        if exc is not None:
            self.packer.error = self.packer.error or exc
            self.slots.release(nbytes)
            return
        self.packer.queue.put((fut.result(), nbytes))

    def raise_if_failed(self) -> None:
        """Re-raise an encoder or packer failure in the walking thread."""
        if self.packer.error is not None:
            raise self.packer.error

    def close(self) -> None:
        """Wait for every blob to be packed and indexed."""
        self.flush()
        self.pool.shutdown(wait=True)
        self.packer.close()

    def abort(self) -> None:
        """Stop after a failure, keeping what was committed (it is indexed best-effort)."""
        self._batch = []
        self.pool.shutdown(wait=True, cancel_futures=True)
        if self.packer.error is None:
            self.packer.error = RuntimeError("backup aborted")
        with contextlib.suppress(BaseException):
            self.packer.close()

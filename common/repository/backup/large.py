"""Large files chunked on helper threads while the walk goes on.

A re-backup after a few large files changed (database files, logs with regions rewritten)
reads each of them whole: content-defined chunking and a keyed hash of every byte, a read
and two copies per chunk. Done by the walking thread that time adds to the walk's, while
the second core idles. So the walk opens a large file (relative to its directory's
descriptor, as for every file) and hands the descriptor to ``LargeFiles``: its threads
chunk and hash the file (the FastCDC cut, ``readv`` and BLAKE3 release the GIL) and submit
its new chunks to the pipeline (``Pipeline.submit`` is safe across threads) while the walk
carries on (the walk leaves the file's node, and the trees above it, to be completed when
the file is done: ``Deferred``). A file's chunk list is in file order and is
exactly what the walk alone would produce, so snapshots are the same either way.

At most ``in_flight`` files are handed over at a time (the walk waits for one to finish),
so memory stays about ``threads`` chunker buffers (``max_size + avg_size`` each) above
the walk's.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from common.progress import ProgressTracker
from common.repository.core.chunker import Chunker
from common.repository.core.ids import BlobType
from common.repository.core.tree import Node, encode_node
from common.repository.system.sparse import DataReader, data_ranges, find_holes

Submit = Callable[[BlobType, bytes, bytes], None]
#: a file's chunks in its parent snapshot, in file order: (chunk id, plaintext length)
OldChunks = list[tuple[bytes, int]]
#: an entry whose node waits for a file being chunked or for a deferred subtree: its
#: position in the directory's texts, its node, what it waits for
Pending = tuple[int, Node, "Future[Chunked] | Deferred"]


@dataclass(slots=True)
class Chunked:
    """A file chunked: its chunk ids in order, its holes, its size (the stat size of a
    sparse file, else the bytes read) and the bytes read."""

    content: list[bytes]
    holes: list[tuple[int, int]]
    size: int
    read: int


def chunk_fd(chunker: Chunker, blob_id: Callable[[bytes | memoryview], bytes],
             known: Callable[[bytes], bool], submit: Submit, fd: int, st: os.stat_result,
             stop: threading.Event | None = None, old: OldChunks | None = None) -> Chunked:
    """Chunk the open file ``fd`` (stat ``st``) from its start, only its data ranges if it
    is sparse; every new chunk goes to ``submit``. ``stop`` set: raise between chunks.
    ``old``: the chunks (id, length) of the file's parent-snapshot node, not sparse: its
    unchanged chunks are recognised without cutting them again (``chunk_resync``)."""
    holes = find_holes(fd, st.st_size) if st.st_blocks * 512 < st.st_size else []
    if old and not holes:
        return chunk_resync(chunker, blob_id, known, submit, fd, old, stop)
    if holes:
        stream = DataReader(fd, data_ranges(holes, st.st_size))
        content: list[bytes] = []
        read = 0
        for chunk in chunker.chunk_stream(stream):  # type: ignore[arg-type]
            if stop is not None and stop.is_set():
                raise RuntimeError("backup aborted")
            chunk_id = blob_id(chunk)
            content.append(chunk_id)
            submit(BlobType.DATA, chunk, chunk_id)
            read += len(chunk)
        return Chunked(content, holes, st.st_size, read)
    content, read = [], 0
    for view in chunk_views(chunker, fd):
        if stop is not None and stop.is_set():
            raise RuntimeError("backup aborted")
        chunk_id = blob_id(view)
        content.append(chunk_id)
        if not known(chunk_id):  # a chunk already stored is not even copied
            submit(BlobType.DATA, bytes(view), chunk_id)
        read += len(view)
    return Chunked(content, [], read, read)


def chunk_views(chunker: Chunker, fd: int, window: int = 0) -> Iterator[memoryview]:
    """The chunks of the open file ``fd`` from offset 0 to its end, exactly as
    ``Chunker.chunk_stream`` cuts them, as views valid until the next one is asked for.

    The file is read with ``preadv`` into one buffer of ``window`` bytes (default: the
    chunker's ``max_size + avg_size``; least ``max_size + 1``, so a full buffer holds at
    least one final chunk) and cut there; FastCDC decides a cut from the bytes from the
    chunk's start on, scanning forward, so every chunk that ends before the end of the
    buffer is final; the last one may not be, and the next window is read from its start
    (at most ``max_size``, about ``avg_size`` on average, read twice, by the kernel: no
    copy under the GIL, and no copy of a chunk already stored). The default was twice
    ``max_size`` (16 MiB): 9 MiB took the CLI's first backup of the 1 GiB mixed set from
    128-132 to 122-126 MiB peak RSS at the same CPU time (session 14; there its buffers
    are mapped afresh, ``malloc.map_backup_buffers``, so the window is resident only
    while a file is chunked)."""
    params = chunker.params
    window = max(window or params.max_size + params.avg_size, params.max_size + 1)
    view = memoryview(bytearray(window))
    cdc = chunker._cdc
    pos = 0
    while True:
        n = 0
        while n < window:
            got = os.preadv(fd, [view[n:]], pos + n)
            if got <= 0:
                break
            n += got
        if n == 0:
            return
        last: memoryview | None = None
        for chunk in cdc.cut_buf(view[:n]):
            if last is not None:
                yield last
                pos += len(last)
            last = chunk.data
        if n < window:  # the end of the file: its last chunk is final too
            if last is not None:
                yield last
            return
        # the last chunk ends where the data read ends: read it again with what follows


class _Window:
    """A read window over an open file: ``view(pos, n)`` is its bytes ``[pos, pos + n)``
    (fewer at the end of the file), ``n`` at most half the window; a position outside
    the window refills it from there with ``preadv`` (the kernel copies, not Python)."""

    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd
        self.buf = memoryview(bytearray(size))
        self.base = self.n = 0
        self.eof = -1  # the end of the file once the window reached it

    def view(self, pos: int, n: int) -> memoryview:
        end = self.base + self.n
        if not (self.base <= pos <= end and (pos + n <= end or end == self.eof)):
            self._fill(pos)
        start = pos - self.base
        return self.buf[start:min(start + n, self.n)]

    def _fill(self, pos: int) -> None:
        n, size = 0, len(self.buf)
        while n < size:
            got = os.preadv(self.fd, [self.buf[n:]], pos + n)
            if got <= 0:
                break
            n += got
        self.base, self.n = pos, n
        self.eof = pos + n if n < size else -1


def chunk_resync(chunker: Chunker, blob_id: Callable[[bytes | memoryview], bytes],
                 known: Callable[[bytes], bool], submit: Submit, fd: int, old: OldChunks,
                 stop: threading.Event | None = None) -> Chunked:
    """``chunk_fd`` of a file (not sparse) whose parent-snapshot chunks are ``old``: the
    same chunks, cutting only around what changed.

    FastCDC decides a chunk's end from the bytes from its start on and nothing else (the
    cut at the first match of the gear hash past ``min_size``, else at ``max_size``, else
    at the end of the file). So where a chunk starts at an old chunk's offset and the next
    bytes hash to that old chunk's id (the same bytes), the cut is the old one — no need
    to run the cutter over them; only the old last chunk must also end where the file
    ends now. Elsewhere (a changed region, until a cut falls on an old chunk's start
    again) chunks are cut as ``chunk_views`` cuts them. A 1 MiB region rewritten in a
    64 MiB database file: ~2 chunks cut, every other chunk only read and hashed."""
    params = chunker.params
    cdc = chunker._cdc
    win = _Window(fd, 2 * params.max_size + 1)
    starts: dict[int, int] = {}  # old chunk offset -> its position in ``old``
    at = 0
    for i, (_cid, length) in enumerate(old):
        starts[at] = i
        at += length
    last = len(old) - 1
    content: list[bytes] = []
    pos = 0
    while True:
        if stop is not None and stop.is_set():
            raise RuntimeError("backup aborted")
        k = starts.get(pos)
        if k is not None:
            old_id, length = old[k]
            # ``length`` bytes, and more after them unless it is the old last chunk (a
            # view is short only at the end of the file)
            view = win.view(pos, length + 1)
            if len(view) >= length and (k != last or len(view) == length):
                view = view[:length]
            else:
                view = view[:0]
            if view and blob_id(view) == old_id:
                content.append(old_id)
                if not known(old_id):
                    submit(BlobType.DATA, bytes(view), old_id)
                pos += length
                continue
        view = win.view(pos, params.max_size)
        if not view:
            break
        chunk = next(iter(cdc.cut_buf(view))).data  # final: cut by max_size or the end
        chunk_id = blob_id(chunk)
        content.append(chunk_id)
        if not known(chunk_id):
            submit(BlobType.DATA, bytes(chunk), chunk_id)
        pos += len(chunk)
    return Chunked(content, [], pos, pos)


class LargeFiles:
    """A pool of threads chunking files handed over by the walk (``chunk``)."""

    def __init__(self, make_chunker: Callable[[], Chunker],
                 blob_id: Callable[[bytes | memoryview], bytes], known: Callable[[bytes], bool],
                 submit: Submit, progress: ProgressTracker, threads: int = 2,
                 in_flight: int = 32,
                 lengths: Callable[[list[bytes]], OldChunks | None] | None = None) -> None:
        self._make_chunker = make_chunker
        self._lengths = lengths
        self._blob_id = blob_id
        self._known = known
        self._submit = submit
        self._progress = progress
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="repo-chunk")
        self._slots = threading.Semaphore(max(in_flight, threads))
        self._local = threading.local()
        self._lock = threading.Lock()
        self._unstarted: set[int] = set()  # descriptors handed over, not yet taken
        self._stop = threading.Event()

    def chunk(self, fd: int, st: os.stat_result, old: list[bytes] | None = None
              ) -> Future[Chunked]:
        """Chunk the open file ``fd`` (which is the pool's to close from now on); waits
        while ``in_flight`` files are being chunked. ``old``: the chunk ids of its
        parent-snapshot node (their lengths found with ``lengths``: ``chunk_resync``)."""
        try:
            self._slots.acquire()
        except BaseException:  # interrupted while waiting: the descriptor is still ours
            os.close(fd)
            raise
        try:
            with self._lock:
                self._unstarted.add(fd)
            return self._pool.submit(self._run, fd, st, old)
        except BaseException:
            with self._lock:
                self._unstarted.discard(fd)
            self._slots.release()
            os.close(fd)
            raise

    def _run(self, fd: int, st: os.stat_result, old: list[bytes] | None) -> Chunked:
        with self._lock:
            self._unstarted.discard(fd)
        try:
            chunker = getattr(self._local, "chunker", None)
            if chunker is None:
                chunker = self._local.chunker = self._make_chunker()
            layout = self._lengths(old) if old and self._lengths is not None else None
            out = chunk_fd(chunker, self._blob_id, self._known, self._submit, fd, st,
                           self._stop, layout)
        finally:
            os.close(fd)
            self._slots.release()
        self._progress.add(out.size, 1)
        return out

    def close(self, abort: bool = False) -> None:
        """Wait for the files being chunked (``abort``: drop those not started and stop
        the others between two chunks)."""
        if abort:
            self._stop.set()
        self._pool.shutdown(wait=True, cancel_futures=abort)
        with self._lock:
            fds, self._unstarted = self._unstarted, set()
        for fd in fds:  # handed over, never started (cancelled)
            os.close(fd)


class Deferred:
    """A directory's tree whose nodes wait for files being chunked (or for deferred trees
    below it): ``ready`` once they are done; ``result`` (in the walking thread, waiting for
    them if need be) fills those nodes in (``chunked``), puts their texts in place and
    returns the tree's id (``complete``, once)."""

    def __init__(self, texts: list[str], pending: list[Pending],
                 complete: Callable[[list[str]], bytes],
                 chunked: Callable[[Node, Chunked], None]) -> None:
        self.texts, self.pending = texts, pending
        self._complete, self._chunked = complete, chunked
        self._tree_id: bytes | None = None

    def ready(self) -> bool:
        return all(w.ready() if isinstance(w, Deferred) else w.done()
                   for _i, _n, w in self.pending)

    def result(self) -> bytes:
        if self._tree_id is None:
            for i, node, wait in self.pending:
                if isinstance(wait, Deferred):
                    node.subtree = wait.result()
                else:
                    self._chunked(node, wait.result())
                self.texts[i] = encode_node(node)
            self.pending = []
            self._tree_id = self._complete(self.texts)
        return self._tree_id

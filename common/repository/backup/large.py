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
so memory stays about ``threads`` chunker buffers (2 x ``max_size`` each) above the walk's.
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
             stop: threading.Event | None = None) -> Chunked:
    """Chunk the open file ``fd`` (stat ``st``) from its start, only its data ranges if it
    is sparse; every new chunk goes to ``submit``. ``stop`` set: raise between chunks."""
    holes = find_holes(fd, st.st_size) if st.st_blocks * 512 < st.st_size else []
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

    The file is read with ``preadv`` into one buffer of ``window`` bytes (default and
    least: twice the chunker's ``max_size``, as much as ``chunk_stream`` holds) and cut
    there; FastCDC decides a cut from the bytes from the chunk's start on, scanning
    forward, so every chunk that ends before the end of the buffer is final; the last one
    may not be, and the next window is read from its start (at most ``max_size`` read
    twice, by the kernel: no copy under the GIL, and no copy of a chunk already stored)."""
    params = chunker.params
    window = max(window, 2 * params.max_size)
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


class LargeFiles:
    """A pool of threads chunking files handed over by the walk (``chunk``)."""

    def __init__(self, make_chunker: Callable[[], Chunker],
                 blob_id: Callable[[bytes | memoryview], bytes], known: Callable[[bytes], bool],
                 submit: Submit, progress: ProgressTracker, threads: int = 2,
                 in_flight: int = 32) -> None:
        self._make_chunker = make_chunker
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

    def chunk(self, fd: int, st: os.stat_result) -> Future[Chunked]:
        """Chunk the open file ``fd`` (which is the pool's to close from now on); waits
        while ``in_flight`` files are being chunked."""
        try:
            self._slots.acquire()
        except BaseException:  # interrupted while waiting: the descriptor is still ours
            os.close(fd)
            raise
        try:
            with self._lock:
                self._unstarted.add(fd)
            return self._pool.submit(self._run, fd, st)
        except BaseException:
            with self._lock:
                self._unstarted.discard(fd)
            self._slots.release()
            os.close(fd)
            raise

    def _run(self, fd: int, st: os.stat_result) -> Chunked:
        with self._lock:
            self._unstarted.discard(fd)
        try:
            chunker = getattr(self._local, "chunker", None)
            if chunker is None:
                chunker = self._local.chunker = self._make_chunker()
            out = chunk_fd(chunker, self._blob_id, self._known, self._submit, fd, st,
                           self._stop)
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

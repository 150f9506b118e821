"""Reading, hashing, compressing and sealing small files in worker processes.

A backup of many small files is Python work per file that the GIL serialises (system
calls, hashing, compression and sealing are short; the calls around them are not). Once a
backup has read enough small files to be large (``PROCESS_AFTER``), its reads go to worker
processes (``python -S -m common.repository.backup.worker_main``; ``worker_pipe``):

1. the walk sends a group ``("read", seq, dir_path, (dev, ino), names, sizes)``; the
   worker opens the directory (refusing one that is not the directory the walk stat'ed),
   reads each file whole and hashes it, keeps the data and answers with each file's
   xattrs, size and blob id (or its error);
2. when the walk reaches the group, it decides which blobs are new (not indexed, not
   already stored by this run) and sends ``("store", seq, indices)``; the worker
   compresses and seals those and answers with the sealed blobs, which go to the backup's
   packer like any other.

So data crosses the pipe once, sealed, deduplication stays in the walking process, and
storage (packs, index, snapshot, their write order) is unchanged. Workers must answer a
``("ping",)`` before they get work: one that cannot start (an interpreter without this
package, say) leaves the backup to the reader threads. A worker that dies later fails the
backup (its blobs may be referenced already): no snapshot is written.
"""

from __future__ import annotations

import contextlib
import errno
import marshal
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from typing import Any

from common.repository.backup.read import Group, SmallFile
from common.repository.core.ids import BlobType
from common.repository.core.pack import EncodedBlob
from common.repository.system.worker_pipe import WorkerProcess, worker_env

#: small files read in threads before a backup starts worker processes (start-up costs
#: ~0.3 s of CPU per process, competing with the walk: a backup reading fewer small files
#: gains nothing — measured: a 5 %-changed re-backup of the mixed set reads 4,400 files
#: and took 0.91-0.98 s with a worker started, 0.87-0.91 s without; the first backup of
#: 200,000 small files is as fast starting after 8,000 files as after 4,000)
PROCESS_AFTER = 8000
MAX_PROCESSES = 4
#: hosts with up to this many CPUs back up without worker processes: the walk and the
#: encoder threads (zstd and AES-GCM release the GIL) keep both cores of a 2-CPU host
#: busy, and a worker costs ~26 MiB (the CLI's first backup of the mixed 1 GiB set, 2 CPUs,
#: busy VM: peak RSS of the process tree 131-144 MiB instead of 157-167, wall ~10-20 %
#: longer, the same CPU; benchmarks/RESULTS.md, session 13)
NO_PROCESSES_UP_TO = 2


class ProcessReaders:
    """Worker processes reading groups of small files for one backup."""

    MODULE = "common.repository.backup.worker_main"

    def __init__(self, processes: int, init: tuple[Any, ...],
                 want: Callable[[bytes], bool],
                 deliver: Callable[[list[EncodedBlob]], None]) -> None:
        self._want = want
        self._deliver = deliver
        self._seq = 0
        self._lock = threading.Lock()
        self._stores: set[Future[Any]] = set()  # answers not handed on yet
        self.error: BaseException | None = None
        env = worker_env()
        self._workers: list[WorkerProcess] = []
        try:
            for n in range(processes):
                self._workers.append(
                    WorkerProcess(self.MODULE, "backup", init, env, n))
        except BaseException:
            self.close(abort=True)
            raise

    def ready(self, timeout: float = 60.0) -> bool:
        """Whether every worker started and answers (a worker that cannot start, e.g. an
        interpreter without this package, must not fail the backup: threads carry on)."""
        pings = [w.submit([marshal.dumps(("ping",))]) for w in self._workers]
        try:
            for fut in pings:
                fut.result(timeout)
        except Exception:  # noqa: BLE001 - any failure to answer: do without processes
            return False
        return True

    def read(self, dir_path: str, dir_id: tuple[int, int], jobs: list[tuple[str, int]]
             ) -> Future[Group]:
        """Send a group to the least busy worker."""
        worker = min(self._workers, key=lambda w: len(w.pending))
        self._seq += 1
        seq = self._seq
        names = [name for name, _size in jobs]
        sizes = [size for _name, size in jobs]
        answer = worker.submit([marshal.dumps(("read", seq, dir_path, dir_id, names, sizes))])
        group: Future[Group] = Future()

        def done(fut: Future[Any]) -> None:
            if group.cancelled():  # the walk gave up on it
                return
            exc = fut.exception()
            if exc is not None:
                with contextlib.suppress(InvalidStateError):
                    group.set_exception(exc)
                return
            files: list[SmallFile] = []
            for xattrs, size, blob_id, code, strerror in fut.result():
                small = SmallFile(xattrs=xattrs, size=size, blob_id=blob_id)
                if code:
                    small.error = _os_error(code, strerror, f"{dir_path}/{names[len(files)]}")
                files.append(small)
            with contextlib.suppress(InvalidStateError):  # cancelled meanwhile
                group.set_result(Group(files, (worker, seq)))

        answer.add_done_callback(done)
        return group

    def taken(self, group: Group) -> None:
        """Tell the group's worker which of its blobs to store (the rest it drops)."""
        worker, seq = group.ticket
        store = [i for i, f in enumerate(group.files)
                 if f.blob_id is not None and f.error is None and self._want(f.blob_id)]
        fut = worker.submit([marshal.dumps(("store", seq, store))])
        if store:
            with self._lock:
                self._stores.add(fut)
            fut.add_done_callback(self._stored)

    def _stored(self, fut: Future[Any]) -> None:
        """(a worker's receiver thread) Hand sealed blobs on to the packer."""
        with self._lock:
            self._stores.discard(fut)
        if fut.cancelled():
            self.error = self.error or RuntimeError("a backup worker left blobs unstored")
            return
        exc = fut.exception()
        if exc is not None:
            self.error = self.error or exc
            return
        ids, sealed, raw, compression = fut.result()
        try:
            self._deliver([EncodedBlob(i, BlobType.DATA, s, n, c)
                           for i, s, n, c in zip(ids, sealed, raw, compression, strict=True)])
        except BaseException as e:  # noqa: BLE001 - re-raised by close
            self.error = self.error or e

    def close(self, abort: bool = False) -> None:
        """Wait for every answer (and so every sealed blob to reach the packer), then end
        the workers; with ``abort`` kill them at once. Raises what went wrong."""
        for w in self._workers:
            w.stop(abort)
        if abort:
            return
        with self._lock:
            if self._stores:
                self.error = self.error or RuntimeError("a backup worker left blobs unstored")
        if self.error is not None:
            raise self.error


def _os_error(code: int, strerror: str | None, path: str) -> OSError:
    if code == errno.ENOENT:
        return FileNotFoundError(code, strerror, path)
    return OSError(code, strerror, path)


def start(repo: Any, want: Callable[[bytes], bool],
          deliver: Callable[[list[EncodedBlob]], None], processes: int | None
          ) -> ProcessReaders | None:
    """Worker processes for this backup (``processes`` None: one per CPU beyond the first,
    which the walk keeps busy, at most ``MAX_PROCESSES``; none on up to
    ``NO_PROCESSES_UP_TO`` CPUs), or None when there should be none. Measured on 2 CPUs:
    one worker 7.9-8.1 s, two 8.1-8.6 s."""
    if processes is None:
        cpus = len(os.sched_getaffinity(0))
        processes = min(cpus - 1, MAX_PROCESSES) if cpus > NO_PROCESSES_UP_TO else 0
    if processes <= 0:
        return None
    init = (repo.key.to_bytes(), repo.config.encrypted, repo.config.zstd_level)
    try:
        readers = ProcessReaders(processes, init, want, deliver)
    except OSError:
        return None  # could not start a process: the threads carry on
    if not readers.ready():
        readers.close(abort=True)
        return None
    return readers

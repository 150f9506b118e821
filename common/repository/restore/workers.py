"""Where restore batches run: threads of the restoring process, or worker processes.

Writing many small files is Python work per file (decode, open, write, metadata) that
the GIL serialises, so large restores hand their batches to worker processes:
``ProcessRunner`` starts ``python -S -m common.repository.restore.worker_main`` a few
times (``worker_pipe.WorkerProcess``: a fresh interpreter, key material over its stdin
pipe), then sends it batches; each answers with the batch's result. Storage stays in
the restoring process (it reads the pack ranges a batch needs and sends the bytes along).

Both runners hand out a ``Future`` per batch. ``close`` ends the workers: normally by
closing their stdin once every batch is answered; on an error or KeyboardInterrupt
(``abort=True``) by killing them. A worker ignores SIGINT (the terminal's Ctrl-C goes
to the whole process group; the restoring process decides) and exits when its stdin
reaches EOF, also when the restoring process dies.
"""

from __future__ import annotations

import marshal
import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from common.repository.restore.batch import Batch, BatchWriter, Result, current_umask
from common.repository.system.worker_pipe import WorkerProcess, worker_env

if TYPE_CHECKING:
    from common.repository.core.repository import Repository

#: restores of fewer files, or of larger files on average, run in threads: process start-up
#: would dominate, and for large blobs decrypt, decompress, hash and write release the GIL
#: (measured: 1 GiB of mixed files, 43 KiB on average, restore faster in threads)
PROCESS_MIN_FILES = 20_000
PROCESS_MAX_AVERAGE = 16 * 1024
#: in a restore of many files that are large on average, a batch of at least this many
#: files (and small ones on average) goes to a worker process
MIXED_MIN_FILES = 64
#: threads for the large-file batches beside the processes (the mixed set, 6 alternating
#: pairs: as fast as 4 threads, peak RSS 151-170 MB instead of 193-209 MB)
MIXED_THREADS = 2
MAX_PROCESSES = 4
#: a mixed restore (``MixedRunner``) on up to this many CPUs has one worker process: its
#: threads of large files (decrypt, decompress, hash and write release the GIL) keep the
#: other CPU busy. On 2 CPUs, the CLI's restore of the mixed 1 GiB set (busy VM): peak RSS
#: of the process tree 117-126 MiB instead of 143-154, the same CPU (benchmarks/
#: RESULTS.md, session 13)
MIXED_ONE_PROCESS_UP_TO = 2
WORKER_MODULE = "common.repository.restore.worker_main"


class ThreadRunner:
    """Runs batches in a pool of threads of this process."""

    def __init__(self, writer: BatchWriter, threads: int) -> None:
        self.writer = writer
        self.capacity = threads + 1  # batches in flight: one waiting per busy thread
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="repo-restore")

    def submit(self, batch: Batch) -> Future[Result]:
        return self._pool.submit(self.writer.run, batch)

    def close(self, abort: bool = False) -> None:
        self._pool.shutdown(wait=True, cancel_futures=abort)


class ProcessRunner:
    """Runs batches in ``processes`` worker processes (started at once, in parallel)."""

    def __init__(self, processes: int, key: bytes, encrypted: bool, zstd_level: int,
                 dest: str, owner: tuple[int, int] | None, exact_modes: bool) -> None:
        env = worker_env()
        init = (key, encrypted, zstd_level, dest, owner, exact_modes)
        self.capacity = 2 * processes
        self._workers: list[WorkerProcess] = []
        try:
            for n in range(processes):
                self._workers.append(
                    WorkerProcess(WORKER_MODULE, "restore", init, env, n))
        except BaseException:
            self.close(abort=True)
            raise

    def submit(self, batch: Batch) -> Future[Result]:
        spans, blobs, files = batch
        head = marshal.dumps((blobs, files, [len(s) for s in spans]))
        worker = min(self._workers, key=lambda w: len(w.pending))
        return worker.submit([head, *spans])

    def close(self, abort: bool = False) -> None:
        for w in self._workers:
            w.stop(abort)


class MixedRunner:
    """Batches of many small files to worker processes, the others (large files, whose
    decrypt, decompress, hash and write release the GIL) to threads: their data then
    does not cross a pipe."""

    def __init__(self, processes: ProcessRunner, threads: ThreadRunner) -> None:
        self.processes, self.threads = processes, threads
        self.capacity = processes.capacity + threads.capacity

    def submit(self, batch: Batch) -> Future[Result]:
        spans, _blobs, files = batch
        small = len(files) >= MIXED_MIN_FILES and sum(map(len, spans)) <= len(files) * (
            PROCESS_MAX_AVERAGE)
        return (self.processes if small else self.threads).submit(batch)

    def close(self, abort: bool = False) -> None:
        try:
            self.processes.close(abort)
        finally:
            self.threads.close(abort)


def make_runner(repo: Repository, dest: str, files: int, nbytes: int, workers: int,
                processes: int | None) -> ThreadRunner | ProcessRunner | MixedRunner:
    """Worker processes for large restores of small files (``processes=None``:
    automatic, one per CPU), processes and threads for large restores of small and large
    files (see ``MixedRunner``; one process on up to ``MIXED_ONE_PROCESS_UP_TO`` CPUs),
    else threads. Entries are created with their final mode (no
    ``chmod``) when the umask is known and no default ACL of ``dest`` would change it, and
    without ``chown`` when they get the wanted owner anyway (the restoring user and group;
    ``dest``'s group is theirs)."""
    mixed = False
    if processes is None:
        cpus = len(os.sched_getaffinity(0))
        many = files >= PROCESS_MIN_FILES and cpus > 1
        mixed = many and nbytes > files * PROCESS_MAX_AVERAGE
        processes = min(cpus, MAX_PROCESSES) if many else 0
        if mixed and cpus <= MIXED_ONE_PROCESS_UP_TO:
            processes = 1
    try:
        acl = "system.posix_acl_default" in os.listxattr(dest)
    except OSError:
        acl = True
    egid = os.getegid()
    owner = (os.geteuid(), egid) if os.stat(dest).st_gid == egid else None
    writer = BatchWriter(repo.codec, dest, owner, None if acl else current_umask())
    if processes == 0:
        return ThreadRunner(writer, max(1, workers))
    procs = ProcessRunner(processes, repo.key.to_bytes(), repo.config.encrypted,
                          repo.config.zstd_level, dest, owner, exact_modes=not acl)
    if not mixed:
        return procs
    return MixedRunner(procs, ThreadRunner(writer, max(1, min(workers, MIXED_THREADS))))

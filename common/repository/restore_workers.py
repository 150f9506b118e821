"""Where restore batches run: threads of the restoring process, or worker processes.

Writing many small files is Python work per file (decode, open, write, metadata) that
the GIL serialises, so large restores hand their batches to worker processes:
``ProcessRunner`` starts ``python -m common.repository.restore_workers`` a few times
(a fresh interpreter: never ``fork`` — the Celery worker and embedded mode are
multi-threaded), sends each the key material once over its stdin pipe (never on the
command line or in the environment), then batches framed as ``<u64 length><marshal>``;
each answers with the batch's result. Storage stays in the restoring process (it
reads the pack ranges a batch needs and sends the bytes along).

Both runners hand out a ``Future`` per batch. ``close`` ends the workers: normally by
closing their stdin once every batch is answered; on an error or KeyboardInterrupt
(``abort=True``) by killing them. A worker ignores SIGINT (the terminal's Ctrl-C goes
to the whole process group; the restoring process decides) and exits when its stdin
reaches EOF, also when the restoring process dies.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import queue
import signal
import struct
import subprocess
import sys
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from common.repository.config import Repository
from common.repository.restore_batch import Batch, BatchWriter, Result, current_umask

_FRAME = struct.Struct("<Q")
#: restores of fewer files, or of larger files on average, run in threads: process start-up
#: would dominate, and for large blobs decrypt, decompress, hash and write release the GIL
#: (measured: 1 GiB of mixed files, 43 KiB on average, restore faster in threads)
PROCESS_MIN_FILES = 20_000
PROCESS_MAX_AVERAGE = 16 * 1024
MAX_PROCESSES = 4
_CHUNK = 1 << 20


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


class WorkerFailed(OSError):
    """A restore worker process ended without answering."""


class _Worker:
    """One worker process, with a sender and a receiver thread (a batch of several MiB
    must not block the caller while the worker is still busy with the previous one)."""

    def __init__(self, init: tuple[Any, ...], env: dict[str, str], n: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "common.repository.restore_workers"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, close_fds=True)
        self.pending: deque[Future[Result]] = deque()
        self._lock = threading.Lock()
        self._out: queue.Queue[list[bytes] | None] = queue.Queue()
        self._out.put([marshal.dumps(init)])
        self._threads = [
            threading.Thread(target=self._send, name=f"repo-restore-send-{n}", daemon=True),
            threading.Thread(target=self._receive, name=f"repo-restore-recv-{n}", daemon=True)]
        for t in self._threads:
            t.start()

    def submit(self, message: list[bytes]) -> Future[Result]:
        """Queue a message: a marshalled head (framed), then raw spans (their lengths are
        in the head, so the span bytes are never copied into a marshal buffer)."""
        fut: Future[Result] = Future()
        with self._lock:
            self.pending.append(fut)
        self._out.put(message)
        return fut

    def _send(self) -> None:
        assert self.proc.stdin is not None
        fd = self.proc.stdin.fileno()
        try:
            while (message := self._out.get()) is not None:
                _write_frame(fd, message[0])
                for span in message[1:]:
                    _write_all(fd, memoryview(span))
        except OSError:
            pass  # the worker is gone: the receiver fails what is pending
        finally:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()

    def _receive(self) -> None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while True:
            try:
                msg = _read_frame(fd)
            except OSError:
                msg = None
            with self._lock:
                fut = self.pending.popleft() if self.pending else None
            if msg is None:
                code = self.proc.wait()
                err = WorkerFailed(f"a restore worker process ended unexpectedly (exit "
                                   f"status {code})")
                for f in [fut, *self._drain()]:
                    if f is not None and not f.done():
                        f.set_exception(err)
                return
            if fut is None:
                continue
            if msg[0] == "ok":
                fut.set_result(msg[1])
            elif msg[0] == "oserror":
                fut.set_exception(OSError(msg[1], msg[2], msg[3]))
            else:
                fut.set_exception(RuntimeError(f"restore worker: {msg[1]}"))

    def _drain(self) -> list[Future[Result]]:
        with self._lock:
            out = list(self.pending)
            self.pending.clear()
        return out

    def stop(self, abort: bool) -> None:
        if abort:
            with contextlib.suppress(OSError):
                self.proc.kill()
        self._out.put(None)
        try:
            self.proc.wait(timeout=None if not abort else 30)
        except subprocess.TimeoutExpired:  # pragma: no cover - a worker stuck in the kernel
            self.proc.kill()
            self.proc.wait()
        for t in self._threads:
            t.join(timeout=30)
        with contextlib.suppress(OSError):
            if self.proc.stdout is not None:
                self.proc.stdout.close()
        for f in self._drain():
            f.cancel()


class ProcessRunner:
    """Runs batches in ``processes`` worker processes (started at once, in parallel)."""

    def __init__(self, processes: int, key: bytes, encrypted: bool, zstd_level: int,
                 dest: str, owner: tuple[int, int] | None, exact_modes: bool) -> None:
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])  # where `common` is importable
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (root, env.get("PYTHONPATH")) if p)
        init = (key, encrypted, zstd_level, dest, owner, exact_modes)
        self.capacity = 2 * processes
        self._workers: list[_Worker] = []
        try:
            for n in range(processes):
                self._workers.append(_Worker(init, env, n))
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


def make_runner(repo: Repository, dest: str, files: int, nbytes: int, workers: int,
            processes: int | None) -> ThreadRunner | ProcessRunner:
    """Worker processes for large restores (``processes=None``: automatic), else threads.
    Entries are created with their final mode (no ``chmod``) when the umask is known and
    no default ACL of ``dest`` would change it, and without ``chown`` when they get the
    wanted owner anyway (the restoring user and group; ``dest``'s group is theirs)."""
    if processes is None:
        cpus = len(os.sched_getaffinity(0))
        big = files >= PROCESS_MIN_FILES and nbytes <= files * PROCESS_MAX_AVERAGE
        processes = min(cpus, MAX_PROCESSES) if big and cpus > 1 else 0
    try:
        acl = "system.posix_acl_default" in os.listxattr(dest)
    except OSError:
        acl = True
    egid = os.getegid()
    owner = (os.geteuid(), egid) if os.stat(dest).st_gid == egid else None
    if processes > 0:
        return ProcessRunner(processes, repo.key.to_bytes(), repo.config.encrypted,
                             repo.config.zstd_level, dest, owner, exact_modes=not acl)
    writer = BatchWriter(repo.codec, dest, owner, None if acl else current_umask())
    return ThreadRunner(writer, max(1, workers))


def _write_frame(fd: int, payload: bytes) -> None:
    view = memoryview(_FRAME.pack(len(payload)) + payload) if len(payload) < _CHUNK \
        else None
    if view is None:
        _write_all(fd, memoryview(_FRAME.pack(len(payload))))
        view = memoryview(payload)
    _write_all(fd, view)


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        view = view[os.write(fd, view[:_CHUNK]) :]


def _read_frame(fd: int) -> Any:
    """The next message on ``fd``; None at EOF."""
    head = _read_exact(fd, _FRAME.size)
    if head is None:
        return None
    body = _read_exact(fd, _FRAME.unpack(head)[0])
    if body is None:
        return None
    return marshal.loads(body)


def _read_exact(fd: int, n: int) -> bytearray | None:
    buf = bytearray(n)
    view = memoryview(buf)
    pos = 0
    while pos < n:
        got = os.readv(fd, [view[pos : pos + _CHUNK]])
        if not got:
            return None
        pos += got
    return buf


def main() -> None:
    """The worker process: initialise from the first message, then answer batches."""
    from common.repository.blob import BlobCodec
    from common.repository.crypto import Key

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out = os.dup(1)
    os.dup2(2, 1)  # a stray print must not corrupt the answers
    os.umask(0)  # files are created with their final mode: no chmod needed (exact_modes)
    init = _read_frame(0)
    if init is None:
        return
    key, encrypted, level, dest, owner, exact_modes = init
    writer = BatchWriter(BlobCodec(Key.from_bytes(key), encrypted, level), dest,
                         tuple(owner) if owner is not None else None,
                         0 if exact_modes else None)
    del key, init
    while (head := _read_frame(0)) is not None:
        blobs, files, lengths = head
        spans: list[bytearray] = []
        for n in lengths:
            span = _read_exact(0, n)
            if span is None:
                return
            spans.append(span)
        try:
            answer: tuple[Any, ...] = ("ok", writer.run((spans, blobs, files)))
        except OSError as exc:
            answer = ("oserror", exc.errno, exc.strerror, exc.filename)
        except Exception as exc:  # noqa: BLE001 - reported to the restoring process
            answer = ("error", f"{type(exc).__name__}: {exc}")
        del head, spans, blobs, files
        try:
            _write_frame(out, marshal.dumps(answer))
        except OSError:
            return  # the restoring process is gone


if __name__ == "__main__":
    main()

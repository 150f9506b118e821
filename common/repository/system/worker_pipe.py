"""Worker processes of this process: framing and the pipe to one worker.

A worker is a fresh interpreter (``python -S -m module``: never ``fork`` — the Celery
worker and embedded mode are multi-threaded). It starts without ``site`` (``-S``): no
``.pth`` file runs in it (an editable install's finder, setuptools' distutils shim and
the like import modules a worker never uses: a restore worker 24.5 -> 22.9 MiB RSS here)
and it finds its packages through this process's ``sys.path``, handed on in
``PYTHONPATH`` (``worker_env``). Its first message is its initialisation (key
material goes over the pipe, never on the command line or in the environment); then
every message gets exactly one answer, in order: ``("ok", result)``,
``("oserror", errno, strerror, filename)`` or ``("error", text)``. Messages are framed
as ``<u64 length><marshal>``, optionally followed by raw spans whose lengths the head
names (so large bytes are never copied into a marshal buffer). A worker ignores SIGINT
(the terminal's Ctrl-C goes to the whole process group; its parent decides) and exits when
its stdin reaches EOF, also when its parent dies.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import queue
import subprocess
import sys
import threading
from collections import deque
from concurrent.futures import Future
from pathlib import Path
from typing import Any

# the worker's side lives in worker_serve (a worker imports only that); re-exported here
from common.repository.system.worker_serve import (
    read_exact,
    read_frame,
    serve,
    write_all,
    write_frame,
)

__all__ = ["WorkerFailed", "WorkerProcess", "read_exact", "read_frame", "serve",
           "worker_command", "worker_env", "write_all", "write_frame"]


def worker_env() -> dict[str, str]:
    """This environment, with ``common`` importable by the worker: this package's root,
    then every entry of this process's ``sys.path`` in order (the worker runs without
    ``site``, so its site directories, and what ``.pth`` files added, come from here)."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[3])  # the directory holding ``common``
    paths = [root]
    for p in sys.path:
        if p and p not in paths and os.pathsep not in p:
            paths.append(p)
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def worker_command(module: str) -> list[str]:
    """The worker's command line: this interpreter without ``site`` (see the module)."""
    return [sys.executable, "-S", "-m", module]


class WorkerFailed(OSError):
    """A worker process ended without answering."""


class WorkerProcess:
    """One worker process (``python -S -m module``), with a sender and a receiver thread (a
    message of several MiB must not block the caller while the worker is still busy with
    the previous one). Every message gets exactly one answer, in order; ``submit``
    returns its future."""

    def __init__(self, module: str, what: str, init: tuple[Any, ...], env: dict[str, str],
                 n: int) -> None:
        self.what = what
        # (a child shows this process's whole RSS in /proc until its exec, ~1 ms or more
        # on a busy machine, vfork or posix_spawn alike: a process-tree sampler now and
        # then counts it twice; nothing to do about it here)
        self.proc = subprocess.Popen(
            worker_command(module),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, close_fds=True)
        self.pending: deque[Future[Any]] = deque()
        self.failed: WorkerFailed | None = None  # set when the worker ended unexpectedly
        self._lock = threading.Lock()
        self._out: queue.Queue[list[bytes] | None] = queue.Queue()
        self._out.put([marshal.dumps(init)])
        self._threads = [
            threading.Thread(target=self._send, name=f"repo-{what}-send-{n}", daemon=True),
            threading.Thread(target=self._receive, name=f"repo-{what}-recv-{n}", daemon=True)]
        for t in self._threads:
            t.start()

    def submit(self, message: list[bytes]) -> Future[Any]:
        """Queue a message: a marshalled head (framed), then raw spans (their lengths are
        in the head, so the span bytes are never copied into a marshal buffer)."""
        fut: Future[Any] = Future()
        with self._lock:
            if self.failed is not None:  # nobody would ever answer it
                fut.set_exception(self.failed)
                return fut
            self.pending.append(fut)
        self._out.put(message)
        return fut

    def _send(self) -> None:
        assert self.proc.stdin is not None
        fd = self.proc.stdin.fileno()
        try:
            while (message := self._out.get()) is not None:
                _write_message(fd, message)
                del message  # sent: its spans are not held while waiting for the next one
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
                msg = read_frame(fd)
            except OSError:
                msg = None
            with self._lock:
                fut = self.pending.popleft() if self.pending else None
            if msg is None:
                code = self.proc.wait()
                err = WorkerFailed(f"a {self.what} worker process ended unexpectedly "
                                   f"(exit status {code})")
                with self._lock:
                    self.failed = err
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
                fut.set_exception(RuntimeError(f"{self.what} worker: {msg[1]}"))

    def _drain(self) -> list[Future[Any]]:
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
        for t in self._threads:  # the receiver may still hand answers on
            t.join(timeout=30 if abort else None)
        with contextlib.suppress(OSError):
            if self.proc.stdout is not None:
                self.proc.stdout.close()
        for f in self._drain():
            f.cancel()


def _write_message(fd: int, message: list[bytes]) -> None:
    write_frame(fd, message[0])
    for span in message[1:]:
        write_all(fd, memoryview(span))

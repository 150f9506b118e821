"""The worker's side of ``worker_pipe``: framing and the message loop, nothing else.

A worker process imports this, not ``worker_pipe``: the parent's side needs threads,
futures and ``subprocess`` (with ``concurrent.futures`` come ``logging``, ``inspect`` and
their own imports), which a worker never uses (a restore worker's RSS at start 22.7 ->
20.4 MiB without them). Messages are framed as ``<u64 length><marshal>``, optionally
followed by raw spans whose lengths the head names.
"""

from __future__ import annotations

import marshal
import os
import signal
import struct
from typing import TYPE_CHECKING, Any

from common.repository.system.malloc import TRIM_THRESHOLD, keep_freed_memory

if TYPE_CHECKING:
    from collections.abc import Callable

_FRAME = struct.Struct("<Q")
_CHUNK = 1 << 20


def write_frame(fd: int, payload: bytes) -> None:
    view = memoryview(_FRAME.pack(len(payload)) + payload) if len(payload) < _CHUNK \
        else None
    if view is None:
        write_all(fd, memoryview(_FRAME.pack(len(payload))))
        view = memoryview(payload)
    write_all(fd, view)


def write_all(fd: int, view: memoryview) -> None:
    while view:
        view = view[os.write(fd, view[:_CHUNK]) :]


def read_frame(fd: int) -> Any:
    """The next message on ``fd``; None at EOF."""
    head = read_exact(fd, _FRAME.size)
    if head is None:
        return None
    body = read_exact(fd, _FRAME.unpack(head)[0])
    if body is None:
        return None
    return marshal.loads(body)


def read_exact(fd: int, n: int) -> bytearray | None:
    buf = bytearray(n)
    view = memoryview(buf)
    pos = 0
    while pos < n:
        got = os.readv(fd, [view[pos : pos + _CHUNK]])
        if not got:
            return None
        pos += got
    return buf


def serve(setup: Callable[[Any], Callable[[Any], Any]], trim: int = TRIM_THRESHOLD) -> None:
    """The worker's side: ignore SIGINT, keep stdout for answers (a stray print goes to
    stderr), build the message handler from the first message, then answer every message
    with ``("ok", handle(message))`` (an OSError or other exception becomes the
    ``oserror`` / ``error`` answer) until stdin ends or the parent is gone. ``handle`` may
    read the raw spans that follow its head from fd 0 (``read_exact``) and raises EOFError
    when they end early."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    keep_freed_memory(trim)
    out = os.dup(1)
    os.dup2(2, 1)
    init = read_frame(0)
    if init is None:
        return
    handle = setup(init)
    del init  # key material: kept only inside the handler
    while (head := read_frame(0)) is not None:
        try:
            answer: tuple[Any, ...] = ("ok", handle(head))
        except EOFError:
            return
        except OSError as exc:
            answer = ("oserror", exc.errno, exc.strerror, exc.filename)
        except Exception as exc:  # noqa: BLE001 - reported to the parent
            answer = ("error", f"{type(exc).__name__}: {exc}")
        del head
        try:
            write_frame(out, marshal.dumps(answer))
        except OSError:
            return  # the parent is gone
        del answer

"""Streaming a command's stdout out of a running container, and a stream into one's stdin,
through the Docker exec API (a database dump and its loader).

``exec_start(socket=True)`` hands over the hijacked connection; without a TTY dockerd
multiplexes the command's output on it in frames (8-byte header: stream 1 = stdout,
2 = stderr, then the big-endian payload length). ``ExecReader`` reads stdout frames as a
plain readable stream and keeps the end of stderr; at the end of the stream it learns the
exit code from ``exec_inspect``. ``feed_stdin`` writes a stream to a command's stdin,
half-closes the connection (dockerd closes the command's stdin then) and waits for the
command to end, keeping the end of its output. A command that ends before it read all its
input (a loader refusing an existing database) ends its output stream but not the
connection, which dockerd then stops reading: the writer stops when the output ended
instead of blocking until the socket's timeout.
"""

from __future__ import annotations

import contextlib
import io
import select
import socket
import struct
import threading
import time
from collections.abc import Mapping
from typing import Any, BinaryIO

from common.docker.execs import KEEP_BYTES, ExecResult, _Tail

READ_SIZE = 1 << 20


def _open(api: Any, container_id: str, cmd: list[str], *, user: str | None,
          env: Mapping[str, str] | None, stdin: bool) -> tuple[str, Any]:
    exec_id = api.exec_create(container_id, cmd, stdout=True, stderr=True, stdin=stdin,
                              user=user or "", environment=dict(env or {}) or None)
    exec_id = exec_id["Id"] if isinstance(exec_id, dict) else exec_id
    return exec_id, api.exec_start(exec_id, socket=True)


def _raw_socket(sock: Any) -> socket.socket:
    return sock._sock if hasattr(sock, "_sock") else sock


class ExecReader(io.RawIOBase):
    """The stdout of a command running in a container, as a readable stream. After the
    last byte ``exit_code`` and ``stderr`` (its end) are known; ``closed_early`` when the
    caller stopped reading before the end (the command is left to the container)."""

    def __init__(self, api: Any, container_id: str, cmd: list[str], *,
                 user: str | None = None, env: Mapping[str, str] | None = None,
                 keep: int = KEEP_BYTES) -> None:
        super().__init__()
        self.api = api
        self.started = time.monotonic()
        self.exec_id, sock = _open(api, container_id, cmd, user=user, env=env, stdin=False)
        self._sock = sock
        self._raw = _raw_socket(sock)
        self._frames = io.BufferedReader(socket.SocketIO(self._raw, "rb"), READ_SIZE)
        self._left = 0  # stdout bytes left in the current frame
        self._tail = _Tail(keep)
        self.exit_code: int | None = None
        self.seconds = 0.0
        self.bytes = 0

    @property
    def stderr(self) -> str:
        return self._tail.text()

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        view = memoryview(buf).cast("B")
        while self._left == 0:
            if not self._next_frame():
                return 0
        n = self._frames.readinto(view[: min(len(view), self._left)])
        if n == 0:
            raise OSError("the exec stream ended inside a frame")
        self._left -= n
        self.bytes += n
        return n

    def _next_frame(self) -> bool:
        """Read frame headers (keeping stderr) until a stdout frame; False at the end."""
        while True:
            head = self._frames.read(8)
            if len(head) < 8:
                self._finish()
                return False
            kind, size = head[0], struct.unpack(">I", head[4:8])[0]
            if kind == 1:
                self._left = size
                return True
            data = self._frames.read(size)
            self._tail.add(data)

    def _finish(self) -> None:
        if self.exit_code is not None:
            return
        for _ in range(100):  # dockerd may answer inspect a moment before the exit is known
            info = self.api.exec_inspect(self.exec_id)
            if not info.get("Running"):
                self.exit_code = int(info.get("ExitCode") or 0)
                break
            time.sleep(0.05)
        else:
            self.exit_code = -1
        self.seconds = round(time.monotonic() - self.started, 3)

    def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(OSError):
                self._frames.close()
            with contextlib.suppress(Exception):
                self._sock.close()
        super().close()


def _send(raw: Any, data: bytes, ended: threading.Event) -> bool:
    """Write ``data`` to the command's stdin; False when the command ended first (the
    rest is not read by anyone). Waits for room in the socket in short steps, so a
    command that ended is noticed (``sendall`` would block until the socket's timeout)."""
    if not isinstance(raw, socket.socket):  # not a plain socket: no select
        raw.sendall(data)
        return True
    view = memoryview(data)
    while view:
        if ended.is_set():
            return False
        _, writable, _ = select.select([], [raw], [], 0.5)
        if writable:
            view = view[raw.send(view):]
    return True


def feed_stdin(api: Any, container_id: str, cmd: list[str], source: BinaryIO, *,
               user: str | None = None, env: Mapping[str, str] | None = None,
               keep: int = KEEP_BYTES) -> ExecResult:
    """Run ``cmd`` with ``source`` as its stdin; its exit code and the end of its output
    (stdout and stderr). Output is read on a thread while the input is written, so a
    talkative command cannot block on a full pipe."""
    started = time.monotonic()
    exec_id, sock = _open(api, container_id, cmd, user=user, env=env, stdin=True)
    raw = _raw_socket(sock)
    tail = _Tail(keep)
    ended = threading.Event()  # the output stream's end: the command has ended

    def drain() -> None:
        frames = io.BufferedReader(socket.SocketIO(raw, "rb"), READ_SIZE)
        with contextlib.suppress(OSError):
            while len(head := frames.read(8)) == 8:
                tail.add(frames.read(struct.unpack(">I", head[4:8])[0]))
            ended.set()

    reader = threading.Thread(target=drain, name=f"exec-in-{container_id[:12]}", daemon=True)
    reader.start()
    try:
        while (data := source.read(READ_SIZE)) and _send(raw, data, ended):
            pass
    except (BrokenPipeError, ConnectionResetError):
        pass  # the command ended early: its exit code says why
    finally:
        with contextlib.suppress(OSError):
            raw.shutdown(socket.SHUT_WR)
    reader.join()
    with contextlib.suppress(Exception):
        sock.close()
    code: int | None = None
    for _ in range(100):
        info = api.exec_inspect(exec_id)
        if not info.get("Running"):
            code = int(info.get("ExitCode") or 0)
            break
        time.sleep(0.05)
    return ExecResult(exit_code=code, output=tail.text(),
                      seconds=round(time.monotonic() - started, 3))

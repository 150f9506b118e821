"""Running a command inside a running container through the Docker exec API, with a
time limit and bounded output.

``exec_create`` + ``exec_start`` (streamed, stdout and stderr merged) on a thread; the
caller waits up to the timeout. A command past its time is killed: ``exec_inspect`` gives
its PID on the host (the worker runs there as root, so ``os.kill`` reaches it), and its
descendants (``/proc/PID/task/*/children``) are killed first, so a ``sh -c`` that started
``sleep`` does not leave it holding the output pipe open. A PID is only killed when
``/proc/PID/cgroup`` names the container: a worker in its own PID namespace sees other
processes under those numbers; there the command is abandoned (``killed`` False).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: the output kept of one command (its end: where errors are)
KEEP_BYTES = 8 * 1024
#: how long a killed command's output may take to end before it is abandoned
_AFTER_KILL = 5.0


@dataclass(frozen=True)
class ExecResult:
    """How a command in a container ended. ``exit_code`` is None when it was killed for
    its timeout (``timed_out``) or its end could not be learned."""

    exit_code: int | None
    output: str
    seconds: float
    timed_out: bool = False
    #: a timed-out command's processes were killed (False: their PID was not visibly the
    #: container's from here, so they may still run in it)
    killed: bool = False


class _Tail:
    """The last ``keep`` bytes written to it."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.data = bytearray()
        self.truncated = False

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        if len(self.data) > self.keep:
            del self.data[:len(self.data) - self.keep]
            self.truncated = True

    def text(self) -> str:
        body = self.data.decode("utf-8", "replace")
        return ("[…] " + body) if self.truncated else body


def descendants(pid: int) -> list[int]:
    """The PIDs below ``pid`` (children first listed, deepest last); [] when /proc has
    no children lists."""
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            with contextlib.suppress(OSError, ValueError):
                kids = [int(x) for x in (task / "children").read_text().split()]
                out += kids
                todo += kids
    return out


def in_container(pid: int, container_id: str) -> bool:
    """Whether process ``pid`` (as this process sees it) is in the container's cgroup —
    that the PID Docker reported is the one we see, not another process in another PID
    namespace (a worker running in a container)."""
    try:
        return len(container_id) == 64 and container_id in Path(
            f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return False


def kill_tree(pid: int, container_id: str) -> bool:
    """SIGKILL ``pid`` and everything below it that is in the container (what is gone
    already is skipped). False when ``pid`` is not visibly the container's."""
    if not in_container(pid, container_id):
        return False
    for p in [*reversed(descendants(pid)), pid]:
        if in_container(p, container_id):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(p, signal.SIGKILL)
    return True


def run(api: Any, container_id: str, cmd: list[str], *, user: str | None,
        timeout: float, keep: int = KEEP_BYTES) -> ExecResult:
    """Run ``cmd`` in the running container; see the module doc. Docker errors of the
    create and start calls propagate (the caller translates them)."""
    started = time.monotonic()
    exec_id = api.exec_create(container_id, cmd, stdout=True, stderr=True, user=user or "")
    exec_id = exec_id["Id"] if isinstance(exec_id, dict) else exec_id
    stream = api.exec_start(exec_id, stream=True, demux=False)
    tail = _Tail(keep)
    errors: list[BaseException] = []

    def pump() -> None:
        try:
            for chunk in stream:
                tail.add(chunk)
        except BaseException as e:  # noqa: BLE001 - reported through the result
            errors.append(e)

    reader = threading.Thread(target=pump, name=f"exec-{container_id[:12]}", daemon=True)
    reader.start()
    reader.join(timeout)
    timed_out = reader.is_alive()
    killed = False
    if timed_out:
        info = api.exec_inspect(exec_id)
        pid = int(info.get("Pid") or 0)
        killed = pid > 0 and kill_tree(pid, str(info.get("ContainerID") or ""))
        reader.join(_AFTER_KILL if killed else 0)
        if reader.is_alive():  # something still holds the output open: stop reading
            with contextlib.suppress(Exception):
                stream.close()
    info = api.exec_inspect(exec_id)
    code = None if timed_out or info.get("Running") else info.get("ExitCode")
    return ExecResult(exit_code=None if code is None else int(code), output=tail.text(),
                      seconds=round(time.monotonic() - started, 3), timed_out=timed_out,
                      killed=killed)

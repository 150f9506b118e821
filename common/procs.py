"""Whether a process of this machine still runs: ``pid_alive`` (a job's worker, a
repository lock's holder). A killed process its parent has not reaped yet — say under a
container's pid 1 that reaps nothing — is a zombie: it runs nothing, so it counts as gone."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (another user's process exists:
    alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not is_zombie(pid)


def is_zombie(pid: int) -> bool:
    """Whether ``pid`` is a zombie (Linux ``/proc``; False where that cannot be read)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] == b"Z"

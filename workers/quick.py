"""The quick lane of a fleet worker: a second Celery consumer, in a child process, for the
host's ``host.<name>.quick`` queue (restore dry runs, inventory refreshes).

Celery runs one pool per worker process, and a pool whose slots all hold long backups takes
no new message. So ``volkeeper worker`` starts this child next to its own consumer; the
child only runs quick tasks, with its own two slots. It dies with its parent (Linux
``PR_SET_PDEATHSIG``) and is restarted by the parent if it exits on its own.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading

log = logging.getLogger(__name__)
_PR_SET_PDEATHSIG = 1
PARENT_ENV = "VOLKEEPER_QUICK_LANE_PARENT"


def die_with_parent(parent_pid: int) -> bool:
    """Called first thing in the child: ask Linux for SIGTERM when the parent dies (even by
    SIGKILL). False when the parent is already gone (then the child should just exit)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    return os.getppid() == parent_pid


class QuickLane:
    """Runs and supervises ``python -m workers --host NAME --quick-only``."""

    def __init__(self, host: str, restart_after: float = 2.0) -> None:
        self.host = host
        self.restart_after = restart_after
        self._stop = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._supervise, name="quick-lane", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _spawn(self) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "workers", "--host", self.host, "--quick-only"]
        env = os.environ | {PARENT_ENV: str(os.getpid())}
        return subprocess.Popen(cmd, env=env)

    def _supervise(self) -> None:
        while True:
            with self._lock:
                if self._stop.is_set():
                    return
                proc = self._proc = self._spawn()
            code = proc.wait()
            if self._stop.is_set():
                return
            log.warning("quick-task worker of %s exited with %s; restarting", self.host, code)
            self._stop.wait(self.restart_after)

    def stop(self) -> None:
        with self._lock:
            self._stop.set()
            proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self._thread.join(timeout=5)

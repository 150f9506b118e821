"""Whole-process measurement shared by the benchmarks, and the file-system chores around it.

``run(cmd)`` starts a command in a session of its own and reports, from the kernel's own
accounting (``wait4``), its wall time, the CPU seconds (user + system) of the command and
every descendant it waited for, and the peak RSS of its largest single process; with
``tree=True`` a sampler also records the peak of the *sum* of the RSS of every process of
the session (the command and the worker processes it starts), the figure ``/usr/bin/time``
cannot give. Sampling reads ``/proc`` every ``interval`` seconds: short peaks between two
samples are missed, so the reported tree peak is never below the kernel's single-process
peak; shared pages (a forked worker's copy-on-write interpreter) count once per process,
which overstates a tree, never understates it.

Also here: ``tree_stats`` (what a restore is checked against), ``fresh_dir``, ``Deleter``
(ext4 creates files slowly for ~30 s after a mass delete, so trees are deleted together
and the next timed step waits that out) and ``machine`` (one line about the box).
"""

from __future__ import annotations

import os
import platform
import resource
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Container, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
QUIET_AFTER_DELETE = 35  # seconds


@dataclass
class Measured:
    """One finished command."""

    wall: float  # seconds, start to reaped
    cpu: float  # user + system seconds of the command and its waited-for descendants
    rss_kib: int  # peak RSS of its largest single process (wait4 ru_maxrss)
    tree_rss_kib: int  # peak of the summed RSS of every process of its session (sampled)
    stdout: str
    stderr: str
    returncode: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def proc_stats(skip: Container[str] = ()) -> Iterator[tuple[str, list[bytes]]]:
    """Each live process's pid (as in /proc) and the fields of its ``/proc/PID/stat``
    after the command name (``fields[0]`` is the state, ``[1]`` the parent pid, ``[3]``
    the session id, ``[11:15]`` utime stime cutime cstime, ``[21]`` the RSS in pages);
    pids in ``skip`` and processes gone meanwhile are left out."""
    for name in os.listdir("/proc"):
        if not name.isdigit() or name in skip:
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        yield name, stat[stat.rindex(b")") + 2 :].split()


class _TreeSampler(threading.Thread):
    """Peak of the summed RSS of every process whose session id is ``sid``."""

    def __init__(self, sid: int, interval: float) -> None:
        super().__init__(daemon=True)
        self.sid, self.interval = sid, interval
        self.peak_kib = 0
        self.done = threading.Event()
        self._foreign: set[str] = set()  # pids seen in another session (they cannot join)

    def _sample(self) -> int:
        total = 0
        for name, fields in proc_stats(skip=self._foreign):
            if int(fields[3]) != self.sid:
                self._foreign.add(name)
                continue
            total += int(fields[21]) * PAGE_KIB
        return total

    def run(self) -> None:
        while not self.done.is_set():
            self.peak_kib = max(self.peak_kib, self._sample())
            self.done.wait(self.interval)


def run(cmd: list[str], *, env: dict[str, str] | None = None, cwd: str | None = None,
        check: bool = True, tree: bool = False, interval: float = 0.05) -> Measured:
    """Run ``cmd`` to completion in a new session; see the module docstring."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                env=env, cwd=cwd, start_new_session=True)
        sampler = _TreeSampler(proc.pid, interval) if tree else None
        if sampler:
            sampler.start()
        try:
            _, status, ru = os.wait4(proc.pid, 0)
        finally:
            if sampler:
                sampler.done.set()
                sampler.join()
        wall = time.monotonic() - t0
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = (f.read().decode(errors="replace") for f in (out, err))
    if check and code != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({code}):\n{stderr[-3000:]}{stdout[-1000:]}")
    return Measured(wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss,
                    max(sampler.peak_kib if sampler else 0, ru.ru_maxrss), stdout, stderr, code)


def sh(script: str, **kwargs: Any) -> Measured:
    """``run`` a bash pipeline with ``pipefail``."""
    return run(["bash", "-o", "pipefail", "-c", script], **kwargs)


def children_cpu() -> float:
    """User + system CPU seconds of all waited-for child processes so far."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def tree_stats(root: str, skip: tuple[str, ...] = ()) -> tuple[int, int]:
    """(number of non-directory entries, total bytes of regular files) under ``root``;
    names in ``skip`` are left out."""
    count = total = 0
    for dirpath, dirs, files in os.walk(root):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(dirpath, d))]:
            if name in skip:
                continue
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            count += 1
            if not os.path.islink(p):
                total += st.st_size
    return count, total


def fresh_dir(path: Path) -> Path:
    """``path`` as a new, empty directory."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


class Deleter:
    """Deletes trees and remembers when, so the next timed step can wait for ext4."""

    last = 0.0

    @classmethod
    def remove(cls, paths: list[Path]) -> None:
        for p in paths:
            if p.exists():
                shutil.rmtree(p)
                cls.last = time.monotonic()

    @classmethod
    def wait_quiet(cls) -> None:
        """ext4 creates files slowly for ~30 s after a mass delete (recently_deleted())."""
        left = cls.last + QUIET_AFTER_DELETE - time.monotonic()
        if cls.last and left > 0:
            print(f"  (waiting {left:.0f}s for ext4 to settle after a mass delete)", flush=True)
            time.sleep(left)


def tool_version(cmd: list[str]) -> str:
    """First line of a tool's version output, or ``?``."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError):
        return "?"


def machine(**tools: list[str]) -> dict[str, str]:
    """nproc, CPU model, kernel, Python, each of ``tools``' version and the load."""
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info = {"nproc": str(os.cpu_count()), "cpu": cpu, "kernel": platform.release(),
            "python": platform.python_version()}
    info |= {name: tool_version(cmd) for name, cmd in tools.items()}
    return info | {"load": " ".join(f"{x:.2f}" for x in os.getloadavg())}

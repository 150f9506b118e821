"""Reading the small files of a directory on reader threads, ahead of the walk.

A volume of many small files costs a backup a handful of system calls per file (listxattr,
open, read, close) and a keyed hash; done one after the other in the walking thread they
leave the second core idle. The walk therefore stats a directory's entries first, decides
which small files must be read (not reusable from the parent snapshot), and hands them in
groups to reader threads, which run a bounded window ahead of it. System calls and BLAKE3
release the GIL, so reading overlaps the walk's per-file Python work (nodes, dedup,
hand-off to the encoders).

Only what is safe to read out of order is read ahead: a regular, not hardlinked, not
sparse file smaller than the chunker's minimum size (one chunk, one read). Everything else
(large or sparse files, hardlinks, a file that grew since its stat) is read by the walk
itself, in order.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Protocol

# reading one file lives in ``small`` (backup worker processes import only that)
from common.repository.backup.small import (
    SmallFile,
    open_directory,
    open_nofollow,
    read_small,
    xattrs_at,
    xattrs_of,
)

__all__ = ["GROUP_BYTES", "GROUP_FILES", "WINDOW", "Group", "ProcessReading", "ReadAhead",
           "Readers", "SmallFile", "open_directory", "open_nofollow", "read_small",
           "xattrs_at", "xattrs_of"]

#: a group is read by one reader in one go and answered at once; larger groups cost the
#: walking process fewer hand-offs (200,000 files of ~5 KiB, 100 per directory, one worker
#: process: 32 files 8.35-8.46 s, 64 files 7.87-8.14 s, 128 files 7.57-7.87 s)
GROUP_FILES = 128
GROUP_BYTES = 2 * 1024 * 1024
WINDOW = 8  # groups read ahead of the walk, over all directories open in it (~16 MiB)


_TAKEN = SmallFile()


@dataclass(slots=True)
class Group:
    """The files of one group, as read; ``ticket`` lets worker processes find the group's
    data again when the walk decides what of it to store."""

    files: list[SmallFile]
    ticket: Any = None


class ProcessReading(Protocol):
    """Reading in worker processes (``workers.ProcessReaders``)."""

    def read(self, dir_path: str, dir_id: tuple[int, int], jobs: list[tuple[str, int]]
             ) -> Future[Group]: ...

    def taken(self, group: Group) -> None: ...

    def close(self, abort: bool = False) -> None: ...


class Readers:
    """Where the small files of one backup are read: reader threads, or worker processes
    once the backup is found large enough (``process_after`` files) and
    ``start_processes``, called on a thread of its own meanwhile, has them ready (they
    take a few tenths of a second to start: the threads carry on until then; None: they
    could not start, the threads do it all; ``process_after`` 0: the processes read
    from the first file on, the walk waits for them to start). Groups read and not yet
    taken by the walk stay within ``WINDOW`` over all the directories the walk has open (a
    directory's reads wait while the walk is in its subdirectories), so memory stays
    bounded however deep the tree is."""

    def __init__(self, threads: int, blob_id: Callable[[bytes], bytes],
                 start_processes: Callable[[], ProcessReading | None] | None = None,
                 process_after: int = 0) -> None:
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="repo-read")
        self.blob_id = blob_id
        self.ahead = 0  # groups submitted and not yet consumed or dropped
        self.processes: ProcessReading | None = None
        self._start = start_processes
        self._starting: Future[ProcessReading | None] | None = None
        self._countdown = process_after  # files read in threads before processes start
        self._wait_start = process_after <= 0  # processes from the first file on
        self._closed = False

    def read(self, dir_fd: int, dir_path: str, dir_id: tuple[int, int],
             jobs: list[tuple[str, int]]) -> Future[Group]:
        """Read ``jobs`` (name, size) of the directory open as ``dir_fd``."""
        if self._start is not None:
            self._countdown -= len(jobs)
            if self._countdown < 0:
                self._starting = _call_in_thread(self._start)
                self._start = None
                if self._wait_start:
                    wait([self._starting])
        if self._starting is not None and self._starting.done():
            self.processes, self._starting = _result_or_none(self._starting), None
        if self.processes is not None:
            return self.processes.read(dir_path, dir_id, jobs)
        return self.pool.submit(self._read, dir_fd, jobs)

    def _read(self, dir_fd: int, jobs: list[tuple[str, int]]) -> Group:
        blob_id = self.blob_id
        return Group([read_small(dir_fd, name, size, blob_id) for name, size in jobs])

    def taken(self, group: Group) -> None:
        """The walk is at this group: worker processes learn what of it to store."""
        if group.ticket is not None and self.processes is not None:
            self.processes.taken(group)

    def close(self, abort: bool = False) -> None:
        """Stop the threads (groups not started are dropped) and the worker processes
        (after they answered everything, unless ``abort``); only the first call counts."""
        if self._closed:
            return
        self._closed = True
        self.pool.shutdown(wait=True, cancel_futures=True)
        if self._starting is not None:  # started, never used
            self.processes, self._starting = _result_or_none(self._starting), None
        if self.processes is not None:
            self.processes.close(abort)


def _call_in_thread(fn: Callable[[], Any]) -> Future[Any]:
    """``fn()`` on a new daemon thread; its result (or exception) in the future."""
    fut: Future[Any] = Future()

    def run() -> None:
        try:
            fut.set_result(fn())
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits
            fut.set_exception(exc)

    threading.Thread(target=run, name="repo-start-workers", daemon=True).start()
    return fut


def _result_or_none(fut: Future[Any]) -> Any:
    """The result of a start of worker processes; None if it failed (threads carry on)."""
    try:
        return fut.result()
    except Exception:  # noqa: BLE001 - no worker processes: the threads read
        return None


class ReadAhead:
    """The small files of one directory, read in groups by the readers, ahead of the walk
    within the readers' window. ``get(i)`` returns file ``i`` of ``jobs`` (name, size) and
    must be called in increasing ``i``. The directory is open as ``dir_fd`` (it must stay
    open until ``close`` returns) and is ``dir_path`` with (st_dev, st_ino) ``dir_id``."""

    def __init__(self, readers: Readers, dir_fd: int, dir_path: str,
                 jobs: list[tuple[str, int]]) -> None:
        self._readers = readers
        self._dir = (dir_fd, dir_path, _dir_id(dir_fd))
        self._jobs = jobs
        self._groups: list[tuple[int, int]] = []  # [start, end) into jobs
        start = size = 0
        for i, (_name, n) in enumerate(jobs):
            size += n
            if i + 1 - start >= GROUP_FILES or size >= GROUP_BYTES:
                self._groups.append((start, i + 1))
                start, size = i + 1, 0
        if start < len(jobs):
            self._groups.append((start, len(jobs)))
        self._futures: dict[int, Future[Group]] = {}
        self._next = 0  # the next group to submit
        self._group = -1  # the group being consumed
        self._current: list[SmallFile] = []
        self._fill(0)

    def _fill(self, need: int) -> None:
        """Submit groups up to ``need`` in any case, and more while the window has room."""
        readers = self._readers
        dir_fd, dir_path, dir_id = self._dir
        while self._next < len(self._groups) and (
                self._next <= need or readers.ahead < WINDOW):
            start, end = self._groups[self._next]
            self._futures[self._next] = readers.read(
                dir_fd, dir_path, dir_id, self._jobs[start:end])
            readers.ahead += 1
            self._next += 1

    def get(self, i: int) -> SmallFile:
        """File ``i``, waiting for its group if a reader is still on it."""
        while self._group < 0 or i >= self._groups[self._group][1]:
            if self._futures.pop(self._group, None) is not None:
                self._readers.ahead -= 1
            self._group += 1
            self._fill(self._group)
            group = self._futures[self._group].result()
            self._readers.taken(group)
            self._current = group.files
        k = i - self._groups[self._group][0]
        small, self._current[k] = self._current[k], _TAKEN  # the walk holds it now
        return small

    def close(self) -> None:
        """Give the window back: drop the groups not started (after a failure in the walk)
        and wait for those a reader is in, which use the directory's descriptor."""
        wait([fut for fut in self._futures.values() if not fut.cancel()])
        self._readers.ahead -= len(self._futures)
        self._futures.clear()


def _dir_id(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino

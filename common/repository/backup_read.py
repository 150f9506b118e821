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

import contextlib
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

_O_NOATIME = getattr(os, "O_NOATIME", 0)

GROUP_FILES = 32
GROUP_BYTES = 512 * 1024
WINDOW = 8  # groups read ahead of the walk, over all directories open in it (~4 MiB)


def xattrs_of(path: str | int) -> dict[str, bytes]:
    """The extended attributes of ``path`` itself (not of a symlink's target), or of an
    open file descriptor, by name."""
    follow = isinstance(path, int)  # an fd: the flag must be left at its default
    try:
        names = os.listxattr(path, follow_symlinks=follow)
    except OSError:
        return {}
    out = {}
    for name in sorted(names):
        with contextlib.suppress(OSError):
            out[name] = os.getxattr(path, name, follow_symlinks=follow)
    return out


def open_nofollow(path: str, dir_fd: int | None = None) -> int:
    """Open for reading without following a symlink, without updating atime where allowed;
    ``path`` relative to ``dir_fd`` when given."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        return os.open(path, flags | _O_NOATIME, dir_fd=dir_fd)
    except PermissionError:
        if not _O_NOATIME:
            raise
        return os.open(path, flags, dir_fd=dir_fd)


def open_directory(path: str) -> int:
    """A descriptor on the directory ``path`` (not through a symlink), for ``scandir`` and
    for opening its entries relative to it."""
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
                   | getattr(os, "O_CLOEXEC", 0))


@dataclass(slots=True)
class SmallFile:
    """What a reader found: the content and its blob id, or ``data`` None when the file
    grew past its stat size (the walk then chunks it), or the error opening/reading it."""

    xattrs: dict[str, bytes] = field(default_factory=dict)
    data: bytes | None = None
    blob_id: bytes | None = None
    error: OSError | None = None


def read_small(dir_fd: int, name: str, size: int, blob_id: Callable[[bytes], bytes]
               ) -> SmallFile:
    """Read the small file ``name`` in the open directory ``dir_fd`` whole (one read: a
    short read is its end), with its extended attributes. Everything goes through the
    file's descriptor: no path is resolved again."""
    out = SmallFile()
    try:
        fd = open_nofollow(name, dir_fd)
        try:
            out.xattrs = xattrs_of(fd)
            data = os.read(fd, size + 1)
        finally:
            os.close(fd)
    except OSError as exc:
        out.error = exc
        return out
    if len(data) <= size:
        out.data = data
        out.blob_id = blob_id(data) if data else None
    return out


_TAKEN = SmallFile()


class Readers:
    """The reader threads of one backup and the groups they hold for it: at most
    ``WINDOW`` read ahead, over all the directories the walk has open (a directory's
    reads wait while the walk is in its subdirectories), so memory stays bounded however
    deep the tree is."""

    def __init__(self, threads: int) -> None:
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="repo-read")
        self.ahead = 0  # groups submitted and not yet consumed or dropped

    def close(self) -> None:
        """Stop the threads (groups not started are dropped)."""
        self.pool.shutdown(wait=True, cancel_futures=True)


class ReadAhead:
    """The small files of one directory, read in groups by the readers, ahead of the walk
    within the readers' window. ``get(i)`` returns file ``i`` of ``jobs`` (path, size) and
    must be called in increasing ``i``. ``jobs`` are (name, size) in the directory open
    as ``dir_fd``, which must stay open until ``close`` returns."""

    def __init__(self, readers: Readers, dir_fd: int, jobs: list[tuple[str, int]],
                 blob_id: Callable[[bytes], bytes]) -> None:
        self._readers = readers
        self._dir_fd = dir_fd
        self._jobs = jobs
        self._blob_id = blob_id
        self._groups: list[tuple[int, int]] = []  # [start, end) into jobs
        start = size = 0
        for i, (_path, n) in enumerate(jobs):
            size += n
            if i + 1 - start >= GROUP_FILES or size >= GROUP_BYTES:
                self._groups.append((start, i + 1))
                start, size = i + 1, 0
        if start < len(jobs):
            self._groups.append((start, len(jobs)))
        self._futures: dict[int, Future[list[SmallFile]]] = {}
        self._next = 0  # the next group to submit
        self._group = -1  # the group being consumed
        self._current: list[SmallFile] = []
        self._fill(0)

    def _fill(self, need: int) -> None:
        """Submit groups up to ``need`` in any case, and more while the window has room."""
        readers = self._readers
        while self._next < len(self._groups) and (
                self._next <= need or readers.ahead < WINDOW):
            start, end = self._groups[self._next]
            self._futures[self._next] = readers.pool.submit(self._read, start, end)
            readers.ahead += 1
            self._next += 1

    def _read(self, start: int, end: int) -> list[SmallFile]:
        blob_id, dir_fd = self._blob_id, self._dir_fd
        return [read_small(dir_fd, name, size, blob_id) for name, size in self._jobs[start:end]]

    def get(self, i: int) -> SmallFile:
        """File ``i``, waiting for its group if a reader is still on it."""
        while self._group < 0 or i >= self._groups[self._group][1]:
            if self._futures.pop(self._group, None) is not None:
                self._readers.ahead -= 1
            self._group += 1
            self._fill(self._group)
            self._current = self._futures[self._group].result()
        k = i - self._groups[self._group][0]
        small, self._current[k] = self._current[k], _TAKEN  # the walk holds it now
        return small

    def close(self) -> None:
        """Give the window back: drop the groups not started (after a failure in the walk)
        and wait for those a reader is in, which use the directory's descriptor."""
        for fut in self._futures.values():
            fut.cancel()
        wait(self._futures.values())
        self._readers.ahead -= len(self._futures)
        self._futures.clear()

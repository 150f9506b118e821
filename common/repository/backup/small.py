"""Reading one small file whole, and its extended attributes, through descriptors only.

Used by the reader threads (``read``) and by backup worker processes (``worker_main``),
which import this and not ``read`` (its threads and futures are the walking process's).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from common.repository.system.dirfd import opath, proc_path

_O_NOATIME = getattr(os, "O_NOATIME", 0)


def xattrs_of(path: str | int, follow: bool | None = None) -> dict[str, bytes]:
    """The extended attributes of ``path`` itself (not of a symlink's target unless
    ``follow``), or of an open file descriptor, by name."""
    if follow is None:
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


def xattrs_at(dir_fd: int, name: str) -> dict[str, bytes]:
    """The extended attributes of the entry ``name`` in the open directory ``dir_fd``
    itself (a symlink is not followed, no path above it is resolved again)."""
    try:
        fd = opath(dir_fd, name)
    except OSError:
        return {}
    try:
        return xattrs_of(proc_path(fd), follow=True)  # /proc names exactly that entry
    finally:
        os.close(fd)


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
    """What a reader found: ``size`` bytes (-1: the file grew past its stat size, the walk
    then chunks it) with their blob id (None when empty) and, from a reader thread, the
    ``data`` itself (a worker process keeps it until told whether to store it); or the
    error opening or reading it."""

    xattrs: dict[str, bytes] = field(default_factory=dict)
    size: int = -1
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
        out.data, out.size = data, len(data)
        out.blob_id = blob_id(data) if data else None
    return out

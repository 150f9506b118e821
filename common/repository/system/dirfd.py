"""Directories below a root reached through descriptors, never through a symlink.

A volume is writable by the containers that use it while a root worker backs it up or
restores into it. A path string such as ``<volume>/a/b/f`` is resolved again by the
kernel on every use: if a container swaps ``a`` for a symlink to ``/etc`` in between,
the worker reads or writes outside the volume. So backup and restore resolve each
directory once, component by component from the volume's root, each one opened relative
to its parent's descriptor with ``O_DIRECTORY | O_NOFOLLOW``; every entry is then created,
opened or changed relative to its parent's descriptor (``*at`` calls, ``O_NOFOLLOW``,
``AT_SYMLINK_NOFOLLOW``), with its last component only.

A component that is not a directory any more (a symlink, a file, gone) raises an
``OSError`` with ``ELOOP`` / ``ENOTDIR`` / ``ENOENT`` naming the relative path: nothing is
followed, nothing is written outside the root.
"""

from __future__ import annotations

import errno
import os

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: errors meaning "a directory of the tree was replaced while we worked in it"
SWAPPED = (errno.ELOOP, errno.ENOTDIR, errno.ENOENT)
_CACHE = 256


def open_root(path: str) -> int:
    """A descriptor on the directory ``path`` itself (the root a caller chose; its last
    component is not followed)."""
    return os.open(path, DIR_FLAGS)


def open_dir_at(parent_fd: int, name: str, rel: str = "") -> int:
    """A descriptor on the directory ``name`` inside ``parent_fd``, refusing a symlink or
    anything that is not a directory (``OSError`` naming ``rel``)."""
    try:
        return os.open(name, DIR_FLAGS, dir_fd=parent_fd)
    except OSError as exc:
        raise OSError(exc.errno, f"{exc.strerror} (not followed: not a directory of the "
                      f"tree any more)", rel or name) from None


class DirFds:
    """Open directories below ``root_fd`` by relative path ('' is the root), each opened
    relative to its parent's descriptor; the last ones used are kept open. Owns
    ``root_fd``; ``close`` closes everything. Not thread-safe: one per thread."""

    def __init__(self, root_fd: int) -> None:
        self.root = root_fd
        self._open: dict[str, int] = {}

    def dir(self, rel: str) -> int:
        """The descriptor of the directory ``rel`` (components separated by '/'), opened
        from its nearest open ancestor down; valid until the next call (which may close
        the cached ones: ``os.dup`` it to keep two)."""
        if not rel:
            return self.root
        fd = self._open.get(rel)
        if fd is not None:
            return fd
        if len(self._open) >= _CACHE:
            self._drop()
        parts = rel.split("/")
        base, start = self.root, 0
        for j in range(len(parts) - 1, 0, -1):
            got = self._open.get("/".join(parts[:j]))
            if got is not None:
                base, start = got, j
                break
        owned = False  # ``base`` is an uncached intermediate this call must close
        for j in range(start, len(parts)):
            sub = "/".join(parts[: j + 1])
            try:
                fd = open_dir_at(base, parts[j], sub)
            finally:
                if owned:
                    os.close(base)
            owned = len(self._open) >= _CACHE and j < len(parts) - 1
            if not owned:
                self._open[sub] = fd
            base = fd
        return base

    def parent(self, rel: str) -> tuple[int, str]:
        """The descriptor of ``rel``'s directory and ``rel``'s last component."""
        head, _, name = rel.rpartition("/")
        return self.dir(head), name

    def _drop(self) -> None:
        for fd in self._open.values():
            os.close(fd)
        self._open.clear()

    def close(self) -> None:
        self._drop()
        if self.root >= 0:
            os.close(self.root)
            self.root = -1

    def __enter__(self) -> DirFds:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def opath(dir_fd: int, name: str) -> int:
    """An ``O_PATH`` descriptor on the entry ``name`` itself (a symlink is not followed),
    for the calls that have no ``*at`` form: ``/proc/self/fd/<fd>`` then names exactly
    that entry (``proc_path``)."""
    return os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)


def proc_path(fd: int) -> str:
    """The ``/proc`` name of an open descriptor: resolves to the entry it holds."""
    return f"/proc/self/fd/{fd}"

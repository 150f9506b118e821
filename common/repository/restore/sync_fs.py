"""What a sync restore (``sync``) does to entries already in the destination.

Every call works relative to a parent directory's descriptor and never follows a symlink
(``*at`` calls with ``follow_symlinks=False``, ``O_NOFOLLOW``, ``O_PATH`` for xattrs):

- ``same_meta`` / ``fix_fd`` / ``fix_at``: compare an entry's owner, mode, mtime and
  xattrs with a snapshot node's, and change only what differs (owner first — it clears
  setuid bits —, then xattrs, set and removed, then mode, then times);
- ``remove_at``: delete an entry, a directory with everything in it (each subdirectory
  opened with ``O_NOFOLLOW`` from its parent: a symlink inside is removed, not followed);
- ``match_chunks``: which chunks of a snapshot file the old file already holds at the same
  offsets (read, keyed hash, compare with the chunk ids), so a changed file is rebuilt from
  its own unchanged bytes and only the changed chunks are fetched; ``holes_intact``: the
  snapshot's holes are holes in the old file too.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Callable

from common.repository.backup.read import xattrs_of
from common.repository.restore.batch import Meta
from common.repository.restore.plan import Writes
from common.repository.system.dirfd import opath, open_dir_at, proc_path

_SEEK_DATA = getattr(os, "SEEK_DATA", 3)


def same_meta(st: os.stat_result, meta: Meta, xattrs: dict[str, bytes],
              symlink: bool = False) -> bool:
    """Whether an entry with ``st`` and ``xattrs`` already has ``meta``."""
    mode, uid, gid, mtime_ns, want, _ = meta
    return ((symlink or stat.S_IMODE(st.st_mode) == mode) and st.st_uid == uid
            and st.st_gid == gid and st.st_mtime_ns == mtime_ns and xattrs == dict(want))


def xattrs_in(dir_fd: int, name: str) -> dict[str, bytes]:
    """The xattrs of the entry ``name`` of the open directory ``dir_fd`` itself (not
    followed), with one ``llistxattr``: ``/proc/self/fd/<dir_fd>`` is that directory,
    not a path resolved again."""
    return xattrs_of(f"{proc_path(dir_fd)}/{name}", follow=False)


def _fix_xattrs(target: str | int, rel: str, have: dict[str, bytes],
                want: dict[str, bytes], warnings: list[str]) -> None:
    # an fd, or the /proc name of an O_PATH descriptor (followed to exactly that entry)
    for name, value in want.items():
        if have.get(name) != value:
            try:
                os.setxattr(target, name, value)
            except OSError as exc:
                warnings.append(f"{rel}: cannot set xattr {name}: {exc.strerror}")
    for name in have.keys() - want.keys():
        try:
            os.removexattr(target, name)
        except OSError as exc:
            if not name.startswith("security."):  # e.g. a label the filesystem adds
                warnings.append(f"{rel}: cannot remove xattr {name}: {exc.strerror}")


def fix_fd(fd: int, rel: str, meta: Meta, warnings: list[str]) -> bool:
    """Give the open file or directory ``fd`` the metadata ``meta``, changing only what
    differs; returns whether anything did."""
    st = os.fstat(fd)
    have = xattrs_of(fd)
    if same_meta(st, meta, have):
        return False
    mode, uid, gid, mtime_ns, xattrs, _ = meta
    owner = (st.st_uid, st.st_gid) != (uid, gid)
    if owner:
        try:
            os.chown(fd, uid, gid)
        except OSError as exc:
            warnings.append(f"{rel}: cannot set owner: {exc.strerror}")
    _fix_xattrs(fd, rel, have, dict(xattrs), warnings)
    if owner or stat.S_IMODE(st.st_mode) != mode:
        os.chmod(fd, mode)
    os.utime(fd, ns=(mtime_ns, mtime_ns))
    return True


def fix_at(dir_fd: int, name: str, rel: str, st: os.stat_result, meta: Meta,
           warnings: list[str]) -> bool:
    """``fix_fd`` for a symlink, fifo, socket or device node ``name`` in ``dir_fd``
    (never followed); returns whether anything changed."""
    symlink = stat.S_ISLNK(st.st_mode)
    have = xattrs_in(dir_fd, name)
    if same_meta(st, meta, have, symlink):
        return False
    mode, uid, gid, mtime_ns, xattrs, _ = meta
    owner = (st.st_uid, st.st_gid) != (uid, gid)
    if owner:
        try:
            os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
        except OSError as exc:
            warnings.append(f"{rel}: cannot set owner: {exc.strerror}")
    if have != dict(xattrs):
        fd = opath(dir_fd, name)
        try:
            _fix_xattrs(proc_path(fd), rel, have, dict(xattrs), warnings)
        finally:
            os.close(fd)
    if not symlink and (owner or stat.S_IMODE(st.st_mode) != mode):
        os.chmod(name, mode, dir_fd=dir_fd, follow_symlinks=False)
    with contextlib.suppress(NotImplementedError):
        os.utime(name, ns=(mtime_ns, mtime_ns), dir_fd=dir_fd, follow_symlinks=False)
    return True


def remove_at(dir_fd: int, name: str, rel: str) -> int:
    """Delete the entry ``name`` of ``dir_fd`` (a directory with its content); returns the
    number of entries deleted. Symlinks are removed, never followed."""
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=dir_fd)
        return 1
    count = 1
    fd = open_dir_at(dir_fd, name, rel)
    try:
        for child in os.listdir(fd):
            count += remove_at(fd, child, f"{rel}/{child}")
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=dir_fd)
    return count


def read_at(fd: int, writes: Writes) -> bytes:
    """The bytes of one chunk as the file ``fd`` holds them at the chunk's offsets."""
    parts = [os.pread(fd, n, pos) for pos, _start, n in writes]
    return parts[0] if len(parts) == 1 else b"".join(parts)


def match_chunks(fd: int, size: int, planned: list[tuple[bytes, int, Writes]],
                 blob_id: Callable[[bytes], bytes]) -> list[bool]:
    """For each planned chunk (id, raw length, writes): does the file ``fd`` (of ``size``
    bytes) hold exactly that chunk at those offsets?"""
    out = []
    for chunk_id, raw_length, writes in planned:
        end = max((pos + n for pos, _s, n in writes), default=0)
        if end > size or sum(n for _p, _s, n in writes) != raw_length:
            out.append(False)
            continue
        out.append(blob_id(read_at(fd, writes)) == chunk_id)
    return out


def holes_intact(fd: int, holes: list[tuple[int, int]]) -> bool:
    """Whether every hole of the snapshot's file is a hole (no data) in the file ``fd``."""
    for off, length in holes:
        try:
            data = os.lseek(fd, off, _SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # no data from ``off`` to the end
                continue
            return False
        if data < off + length:
            return False
    return True


def copy_range(src: int, dst: int, pos: int, n: int) -> None:
    """Copy ``n`` bytes at ``pos`` of ``src`` to the same offset of ``dst`` (in the kernel
    where it can)."""
    done = 0
    while done < n:
        try:
            got = os.copy_file_range(src, dst, n - done, pos + done, pos + done)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                raise
            got = 0
        if got == 0:  # not supported here, or the source shrank: copy through memory
            data = os.pread(src, n - done, pos + done)
            if not data:
                raise OSError(errno.EIO, "the file shrank while it was synced")
            got = os.pwrite(dst, data, pos + done)
        done += got

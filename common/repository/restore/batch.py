"""One batch of a restore: decode its blobs, write its files, give them their metadata.

The restorer (``restorer``) walks the snapshot's trees and cuts the entries into
*batches* of at most a few thousand files / a few MiB of data. For each batch it reads
the needed pack ranges from storage (storage stays in the restoring process: backends
such as S3 are not picklable) and hands a ``Batch`` to a ``BatchWriter`` — in a thread
of the same process, or in a restore worker process (``workers``) — which:

- authenticates, decompresses and re-hashes every blob of the batch once;
- creates each entry relative to its parent directory's descriptor (``dirfd``: opened
  from ``dest`` down, never through a symlink a container may have put there): a
  regular file with one ``open`` (its data written with
  ``pwrite`` at its offsets — holes are never written, a sparse file is ``ftruncate``'d
  to its size first), or a symlink, fifo or device node;
- applies owner (first: it clears setuid bits), xattrs, mode and times — through the
  open file descriptor for regular files, else with ``*at`` calls that do not follow.
  ``chown`` is skipped when the new file already has the wanted owner, ``chmod`` when
  the creation mode (umask known) already is the wanted mode;
- reports damaged blobs (the files using them are still created, with everything else
  written and their metadata) and per-entry warnings.

Batches are plain tuples, lists, ints, strings and bytes so they cross a pipe with
``marshal`` (fast, and nothing executable). A file record is
``(kind, rel, meta, size, sparse, writes)`` (kinds: ``WHOLE``, ``PART``, ``PATCH``,
``SYMLINK``, ``NODE``); ``writes`` are ``(blob number, file
offset, start in blob, length)``; ``meta`` is ``(mode, uid, gid, mtime_ns, xattrs,
extra)`` with ``extra`` the symlink target or ``(major, minor)`` of a device.
"""

from __future__ import annotations

import contextlib
import os
import stat
from typing import Any

from common.errors import IntegrityError
from common.repository.core.blob import BlobCodec
from common.repository.core.ids import BlobType
from common.repository.system.dirfd import DirFds, opath, open_root, proc_path

#: a regular file created and completed by this batch (metadata included)
WHOLE = "f"
#: some blobs of a large regular file that already exists; metadata comes later
PART = "p"
#: an existing regular file rewritten in place by a sync (``sync``): truncated to its
#: size, given the changed data, then its metadata (xattrs it should not have removed)
PATCH = "u"
SYMLINK = "l"
#: fifo, socket, char or block device (``extra`` says which)
NODE = "n"

Meta = tuple[int, int, int, int, tuple[tuple[str, bytes], ...], Any]
#: (kind, rel, meta, size, sparse, writes)
FileRecord = tuple[str, str, Meta, int, bool, list[tuple[int, int, int, int]]]
#: (span number, start in span, length, blob type, blob id, raw length)
BlobRecord = tuple[int, int, int, int, bytes, int]
#: (spans, blobs, files)
Batch = tuple[list[bytes] | list[bytearray], list[BlobRecord], list[FileRecord]]
#: (damaged blobs [(id, why)], incomplete files [(rel, why, size)], warnings, blobs decoded)
Result = tuple[list[tuple[bytes, str]], list[tuple[str, str, int]], list[str], int]

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_PART = os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_KINDS = {"fifo": stat.S_IFIFO, "char": stat.S_IFCHR, "block": stat.S_IFBLK,
          "socket": stat.S_IFSOCK}


def current_umask() -> int | None:
    """This process's umask without changing it (``/proc``; None when unknown)."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


class BatchWriter:
    """Writes batches into ``dest``. Thread-safe (one codec, per-thread decompressors).

    ``owner``: the (uid, gid) a newly created entry gets anyway (``chown`` is skipped for
    those), or None. ``umask``: the umask in force, or None (then ``chmod`` is always
    called).
    """

    def __init__(self, codec: BlobCodec, dest: str, owner: tuple[int, int] | None,
                 umask: int | None) -> None:
        self.codec = codec
        self.dest = dest
        self.owner = owner
        self.umask = umask

    def run(self, batch: Batch) -> Result:
        """Decode, write and finish every entry of ``batch``. A blob is decoded when the
        first entry needing it is written and dropped after the last one: the batch's
        plaintext is never all in memory at once (only its stored spans)."""
        spans, blob_recs, files = batch
        plains = _Plains(self.codec, spans, blob_recs, files)
        broken: list[tuple[str, str, int]] = []
        warnings: list[str] = []
        with DirFds(open_root(self.dest)) as dirs:
            for kind, rel, meta, size, sparse, writes in files:
                dir_fd, name = dirs.parent(rel)
                if kind in (WHOLE, PART, PATCH):
                    missing = self._file(kind, dir_fd, name, rel, meta, size, sparse, writes,
                                         plains, warnings)
                    if missing is not None:
                        broken.append((rel, f"blob {blob_recs[missing][4].hex()} is damaged",
                                       size))
                else:
                    self._other(kind, dir_fd, name, rel, meta, warnings)
        plains.rest()
        return plains.damaged, broken, warnings, plains.decoded

    def _file(self, kind: str, dir_fd: int, name: str, rel: str, meta: Meta, size: int,
              sparse: bool, writes: list[tuple[int, int, int, int]],
              plains: _Plains, warnings: list[str]) -> int | None:
        """One regular file (or a part of one) ``name`` in the directory ``dir_fd``;
        returns the number of a damaged blob it needed, else None."""
        missing, exact = None, False
        if kind != WHOLE:
            fd = os.open(name, _PART, dir_fd=dir_fd)
        else:
            mode = meta[0]
            exact = (self.umask is not None and not meta[4]
                     and mode & 0o777 & ~self.umask == mode)
            fd = os.open(name, _CREATE, mode if exact else 0o600, dir_fd=dir_fd)
        try:
            if sparse or kind == PATCH:
                os.ftruncate(fd, size)
            for blob_no, off, begin, n in writes:
                plain = plains.get(blob_no)
                if plain is None:
                    missing = blob_no
                    continue
                if begin == 0 and n == len(plain):  # (a view, or bytes)
                    done = os.pwrite(fd, plain, off)
                    if done == n:
                        continue
                else:
                    done = 0
                view = memoryview(plain)
                while done < n:
                    done += os.pwrite(fd, view[begin + done : begin + n], off + done)
            if kind == WHOLE:
                apply_fd(fd, rel, meta, warnings, self.owner, exact)
            elif kind == PATCH:
                apply_fd(fd, rel, meta, warnings, strip=True)
        finally:
            os.close(fd)
        return missing

    def _other(self, kind: str, dir_fd: int, name: str, rel: str, meta: Meta,
               warnings: list[str]) -> None:
        extra = meta[5]
        if kind == SYMLINK:
            os.symlink(extra, name, dir_fd=dir_fd)
        else:
            node_type, rdev = extra
            if node_type == "fifo":
                os.mkfifo(name, 0o600, dir_fd=dir_fd)
            else:
                dev = os.makedev(*rdev) if rdev else 0
                try:
                    os.mknod(name, 0o600 | _KINDS[node_type], dev, dir_fd=dir_fd)
                except OSError as exc:
                    warnings.append(f"{rel}: cannot create {node_type} device: "
                                    f"{exc.strerror}")
                    return
        apply_at(dir_fd, name, rel, meta, kind == SYMLINK, warnings)


class _Plains:
    """The decoded blobs of one batch: each decoded when first needed and dropped when
    its last write has taken it (so at most the blobs of one entry are held)."""

    def __init__(self, codec: BlobCodec, spans: list[bytes] | list[bytearray],
                 recs: list[BlobRecord], files: list[FileRecord]) -> None:
        self.decode = codec.decode_view
        self.views = [memoryview(s) for s in spans]
        self.recs = recs
        self.damaged: list[tuple[bytes, str]] = []
        self.decoded = 0
        self._live: dict[int, bytes | memoryview | None] = {}
        self._uses = [0] * len(recs)
        for record in files:
            for write in record[5]:
                self._uses[write[0]] += 1

    def get(self, blob_no: int) -> bytes | memoryview | None:
        """The verified plaintext of a blob for one of its writes (None: unreadable or
        damaged); after its last write it is no longer held here."""
        if blob_no in self._live:
            plain = self._live[blob_no]
        else:
            plain = self._decode(blob_no)
            self._live[blob_no] = plain
        self._uses[blob_no] -= 1
        if self._uses[blob_no] <= 0:  # its last write: -1 from now on (not unused)
            del self._live[blob_no]
            self._uses[blob_no] = -1
        return plain

    def _decode(self, blob_no: int) -> bytes | memoryview | None:
        span_no, start, length, blob_type, blob_id, raw_length = self.recs[blob_no]
        if span_no < 0:  # its pack could not be read: the caller knows why
            return None
        try:
            plain = self.decode(BlobType(blob_type), blob_id,
                                self.views[span_no][start : start + length], raw_length)
        except IntegrityError as exc:
            self.damaged.append((blob_id, str(exc)))
            return None
        self.decoded += 1
        return plain

    def rest(self) -> None:
        """Verify the blobs no write used (none, normally), then release the spans."""
        for blob_no, uses in enumerate(self._uses):
            if uses == 0:
                self._decode(blob_no)
        self.views = []


def apply_fd(fd: int, rel: str, meta: Meta, warnings: list[str],
             owner: tuple[int, int] | None = None, exact: bool = False,
             strip: bool = False) -> None:
    """Owner (first: it clears setuid bits; skipped when it is ``owner`` already),
    xattrs, mode (skipped when ``exact``: created with it) and times of a regular file or
    directory through its descriptor. ``strip``: remove the xattrs ``meta`` does not
    list (an existing file)."""
    mode, uid, gid, mtime_ns, xattrs, _ = meta
    if strip:
        wanted = {name for name, _value in xattrs}
        for name in os.listxattr(fd):
            if name not in wanted:
                try:
                    os.removexattr(fd, name)
                except OSError as exc:
                    if not name.startswith("security."):
                        warnings.append(f"{rel}: cannot remove xattr {name}: {exc.strerror}")
    if (uid, gid) != owner:
        try:
            os.chown(fd, uid, gid)
        except OSError as exc:
            warnings.append(f"{rel}: cannot set owner: {exc.strerror}")
    for name, value in xattrs:
        try:
            os.setxattr(fd, name, value)
        except OSError as exc:
            warnings.append(f"{rel}: cannot set xattr {name}: {exc.strerror}")
    if not exact or mode & 0o7000:
        os.chmod(fd, mode)
    os.utime(fd, ns=(mtime_ns, mtime_ns))


def apply_at(dir_fd: int, name: str, rel: str, meta: Meta, symlink: bool,
             warnings: list[str]) -> None:
    """Owner (first: it clears setuid bits), xattrs, mode (not of a symlink) and times of
    the entry ``name`` in the directory ``dir_fd``, never following a symlink."""
    mode, uid, gid, mtime_ns, xattrs, _ = meta
    try:
        os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
    except OSError as exc:
        warnings.append(f"{rel}: cannot set owner: {exc.strerror}")
    if xattrs:  # no *at form: through an O_PATH descriptor on the entry itself
        fd = opath(dir_fd, name)
        try:
            for key, value in xattrs:
                try:
                    os.setxattr(proc_path(fd), key, value)
                except OSError as exc:
                    warnings.append(f"{rel}: cannot set xattr {key}: {exc.strerror}")
        finally:
            os.close(fd)
    if not symlink:
        os.chmod(name, mode, dir_fd=dir_fd, follow_symlinks=False)
    with contextlib.suppress(NotImplementedError):
        os.utime(name, ns=(mtime_ns, mtime_ns), dir_fd=dir_fd, follow_symlinks=False)

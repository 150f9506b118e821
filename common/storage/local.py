"""A backend on a local or mounted directory (``file:///srv/backups``).

Each key is a file under the root. A writer streams into a hidden partial file
``<dir>/.<name>.partial-<uuid>`` next to its final name, fsyncs it, renames it over the
final name with ``os.replace`` (atomic on POSIX) and fsyncs the directory, so a crash
leaves either the old object, the new one, or a stray partial file that ``list`` ignores.
The root directory is created on the first write.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from common.errors import (
    InvalidInput,
    NotFound,
    PermanentStorageError,
    StorageError,
    TransientStorageError,
)
from common.storage.base import (
    Backend,
    ObjectInfo,
    ObjectWriter,
    check_key,
    check_range,
    range_bounds,
)

_PARTIAL = re.compile(r"^\..+\.partial-[0-9a-f]{32}$")
_NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK}
_TRANSIENT_ERRNOS = {errno.EAGAIN, errno.EINTR, errno.ETIMEDOUT, errno.ESTALE, errno.EBUSY}
#: an object writer's buffer: a pack of small blobs (a changed re-backup's rewritten small
#: files, ~10 KiB sealed each) goes out in 1 MiB writes, not a system call per blob (each
#: also a GIL hand-off beside the walk); a larger write goes straight through
_WRITE_BUFFER = 1 << 20


def is_partial_name(name: str) -> bool:
    """Whether a file name is an in-flight upload of the local backend."""
    return bool(_PARTIAL.match(name))


class LocalBackend(Backend):
    """Objects as files under ``root`` (an absolute directory path)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).absolute()
        self.display = self.root.as_uri()

    # -- helpers -------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def _error(self, what: str, path: Path, e: OSError) -> StorageError:
        cause = e.strerror or str(e)
        if isinstance(e, PermissionError):
            return PermanentStorageError(
                f"{what} {path} on {self.display} failed: permission denied",
                f"make the directory writable by the volkeeper user (uid {os.geteuid()})",
            )
        if e.errno == errno.ENOSPC:
            return PermanentStorageError(
                f"{what} {path} on {self.display} failed: no space left on device",
                "free space on the target filesystem or prune old backups",
            )
        if isinstance(e, NotADirectoryError | FileExistsError):
            return PermanentStorageError(
                f"{what} {path} on {self.display} failed: a parent path is a file, not a directory",
                f"point the target at a directory, or move the file that is in the way ({cause})",
            )
        if e.errno in _TRANSIENT_ERRNOS:
            return TransientStorageError(f"{what} {path} on {self.display} failed: {cause}")
        return PermanentStorageError(
            f"{what} {path} on {self.display} failed: {cause}",
            "check that the target directory is mounted and healthy",
        )

    def _makedirs(self, directory: Path) -> None:
        """``mkdir -p`` that fsyncs each parent in which it created an entry."""
        missing: list[Path] = []
        d = directory
        while not d.is_dir():
            missing.append(d)
            if d.parent == d:
                break
            d = d.parent
        for d in reversed(missing):
            try:
                d.mkdir()
            except FileExistsError:
                if not d.is_dir():
                    raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(d)) from None
                continue
            _fsync_dir(d.parent)

    # -- contract ------------------------------------------------------------------------

    def open_writer(self, key: str) -> ObjectWriter:
        final = self._path(key)
        try:
            self._makedirs(final.parent)
            partial = final.parent / f".{final.name}.partial-{uuid.uuid4().hex}"
            # Backups may hold secrets: readable by the owner only.
            f = open(partial, "xb", buffering=_WRITE_BUFFER,  # noqa: SIM115 - writer closes it
                     opener=_private_opener)
        except OSError as e:
            raise self._error("creating directory for", final, e) from e
        return _LocalWriter(self, key, final, partial, f)

    def put_bytes_if_absent(self, key: str, data: bytes) -> ObjectInfo:
        """Write a private temp file, fsync it, and ``link`` it to the final name: atomic,
        and it fails when the name exists (then Conflict, unless it holds ``data``). On a
        filesystem without hard links the file is created with ``O_EXCL`` instead (still
        exclusive, but a reader may briefly see it before its bytes are complete)."""
        with self.open_writer(key) as w:
            assert isinstance(w, _LocalWriter)
            w.write(data)
            return w.commit_if_absent()

    def open_reader(self, key: str) -> BinaryIO:
        path = self._path(key)
        try:
            return open(path, "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFound("object", key) from None
        except OSError as e:
            raise self._error("reading", path, e) from e

    def read_range(self, key: str, offset: int, length: int | None = None) -> bytes:
        """Seek and read within the file (see ``Backend.read_range``)."""
        check_range(offset, length)
        with self.open_reader(key) as f:
            try:
                start, end = range_bounds(offset, length, os.fstat(f.fileno()).st_size)
                f.seek(start)
                return f.read(end - start)  # clipped to the size: never a huge allocation
            except OSError as e:
                raise self._error("reading", self._path(key), e) from e

    def stat(self, key: str) -> ObjectInfo:
        path = self._path(key)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound("object", key) from None
        except OSError as e:
            raise self._error("reading", path, e) from e
        if not path.is_file():
            raise NotFound("object", key)
        return ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        # Walk only below the deepest directory the prefix names, then filter and sort.
        head = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        if head:
            try:
                check_key(head)
            except InvalidInput:
                return  # no valid key starts with it (and never walk outside the root)
        start = self.root.joinpath(*head.split("/")) if head else self.root
        found: list[ObjectInfo] = []
        try:
            if not start.is_dir():
                return
            for dirpath, _dirs, files in os.walk(start):
                rel = os.path.relpath(dirpath, self.root)
                base = "" if rel == "." else rel.replace(os.sep, "/") + "/"
                for name in files:
                    key = base + name
                    if not key.startswith(prefix) or is_partial_name(name):
                        continue
                    try:
                        st = os.stat(os.path.join(dirpath, name))
                    except FileNotFoundError:
                        continue  # deleted while listing
                    found.append(
                        ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))
                    )
        except OSError as e:
            raise self._error("listing", start, e) from e
        found.sort(key=lambda i: i.key)
        yield from found

    def discard_partials(self, prefix: str, marker: str) -> tuple[str, ...]:
        head = prefix.rstrip("/")
        try:
            check_key(head)
        except InvalidInput:
            return ()  # never walk outside the root
        start = self.root.joinpath(*head.split("/"))
        removed = []
        for dirpath, _dirs, files in os.walk(start):
            for name in files:
                if is_partial_name(name) and marker in name:
                    path = Path(dirpath) / name
                    path.unlink(missing_ok=True)
                    removed.append(path.relative_to(self.root).as_posix())
        return tuple(removed)

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
        except (IsADirectoryError, NotADirectoryError):
            return
        except OSError as e:
            raise self._error("deleting", path, e) from e

    def check(self) -> None:
        """The root is a writable directory, or can be created as one."""
        d = self.root
        while not d.exists() and d.parent != d:
            d = d.parent
        if not d.is_dir():
            raise PermanentStorageError(
                f"target {self.display} is not usable: {d} is not a directory",
                "point the target at a directory path",
            )
        if not os.access(d, os.W_OK | os.X_OK):
            raise PermanentStorageError(
                f"target {self.display} is not writable ({d})",
                f"make it writable by the volkeeper user (uid {os.geteuid()})",
            )


def _private_opener(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _LocalWriter(ObjectWriter):
    """Streams into the partial file. Every ``FLUSH_EVERY`` bytes a background thread
    starts ``fdatasync`` on what was written so far, so the disk works while the producer
    keeps computing and ``commit``'s final fsync only waits for the tail."""

    FLUSH_EVERY = 64 * 1024 * 1024

    def __init__(
        self, backend: LocalBackend, key: str, final: Path, partial: Path, f: BinaryIO
    ) -> None:
        self._backend = backend
        self.key = key
        self._final = final
        self._partial = partial
        self._f: BinaryIO | None = f
        self._n = 0
        self._committed = False
        self._next_flush = self.FLUSH_EVERY
        self._flusher: threading.Thread | None = None
        self._flush_error: OSError | None = None

    def write(self, data: bytes | memoryview) -> None:
        if self._f is None:
            raise ValueError(f"writer for {self.key!r} is already finished")
        try:
            self._n += self._f.write(data)
            if self._n >= self._next_flush:
                self._next_flush = self._n + self.FLUSH_EVERY
                self._flush_in_background(self._f)
        except OSError as e:
            self.abort()
            raise self._backend._error("writing", self._final, e) from e

    def _flush_in_background(self, f: BinaryIO) -> None:
        if self._flusher is not None and self._flusher.is_alive():
            return  # the previous flush is still running; the next threshold tries again
        f.flush()
        fd = f.fileno()

        def run() -> None:
            try:
                os.fdatasync(fd)
            except OSError as e:
                self._flush_error = e

        self._flusher = threading.Thread(target=run, name="fdatasync", daemon=True)
        self._flusher.start()

    def _join_flusher(self) -> None:
        if self._flusher is not None:
            self._flusher.join()
            self._flusher = None

    def commit(self) -> ObjectInfo:
        if self._f is None:
            raise ValueError(f"writer for {self.key!r} is already finished")
        f, self._f = self._f, None
        try:
            self._join_flusher()
            if self._flush_error is not None:
                raise self._flush_error
            f.flush()
            os.fsync(f.fileno())
            f.close()
            os.replace(self._partial, self._final)
            _fsync_dir(self._final.parent)
            st = self._final.stat()
        except OSError as e:
            with contextlib.suppress(OSError):  # what is left in the buffer: gone anyway
                f.close()
            self._partial.unlink(missing_ok=True)
            raise self._backend._error("committing", self._final, e) from e
        self._committed = True
        return ObjectInfo(self.key, self._n, datetime.fromtimestamp(st.st_mtime, UTC))

    def commit_if_absent(self) -> ObjectInfo:
        """Like ``commit``, but never replaces an existing object (see put_bytes_if_absent)."""
        if self._f is None:
            raise ValueError(f"writer for {self.key!r} is already finished")
        f, self._f = self._f, None
        try:
            f.flush()
            os.fsync(f.fileno())
            f.close()
            try:
                os.link(self._partial, self._final)
            except FileExistsError:
                return self._backend._existing(
                    self.key, self._backend.get_bytes(self.key), self._partial.read_bytes()
                )
            except OSError as e:
                if e.errno not in _NO_LINKS:
                    raise
                self._create_exclusive()
            _fsync_dir(self._final.parent)
            st = self._final.stat()
        except OSError as e:
            raise self._backend._error("committing", self._final, e) from e
        finally:
            with contextlib.suppress(OSError):  # closed above, or failed: gone anyway
                f.close()
            self._partial.unlink(missing_ok=True)
        self._committed = True
        return ObjectInfo(self.key, self._n, datetime.fromtimestamp(st.st_mtime, UTC))

    def _create_exclusive(self) -> None:
        data = self._partial.read_bytes()
        try:
            fd = os.open(self._final, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            self._backend._existing(self.key, self._backend.get_bytes(self.key), data)
            return
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)

    def abort(self) -> None:
        if self._committed:
            return
        self._join_flusher()
        if self._f is not None:
            f, self._f = self._f, None
            with contextlib.suppress(OSError):  # flushing the buffer: the file goes anyway
                f.close()
        with contextlib.suppress(OSError):  # best effort: list() ignores partial files
            self._partial.unlink(missing_ok=True)

    @property
    def bytes_written(self) -> int:
        return self._n

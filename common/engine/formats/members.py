"""Reading the files of one directory of a stored backup as streams, without restoring
it into a volume (a dump backup's ``.volkeeper-dumps/``, fed to a database's loader).

Each format yields ``(name, readable)`` for the regular files directly in the directory,
in order; a stream is readable until the next one is asked for. An archive is read once,
front to back (decompressed, through ``tarfile``'s stream mode); a repository snapshot's
files are read chunk by chunk through the index (each chunk authenticated), under the
repository's shared lock.
"""

from __future__ import annotations

import contextlib
import io
import tarfile
from collections.abc import Iterator
from typing import Any, BinaryIO, cast

from common.archive import check_format
from common.archive.codec import open_decompressed
from common.config import Settings
from common.engine import repo
from common.engine.records import StoredBackup
from common.errors import IntegrityError
from common.repository.core.ids import BlobType
from common.repository.core.locks import backup_lock
from common.repository.core.repository import Repository
from common.storage.base import Backend

READ_SIZE = 1 << 20


class _Chunks(io.RawIOBase):
    """A file of a snapshot, read chunk by chunk."""

    def __init__(self, repository: Repository, content: list[bytes]) -> None:
        super().__init__()
        self.repository = repository
        self.content = list(content)
        self.buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        while not self.buf and self.content:
            self.buf = self.repository.read_blob(self.content.pop(0), BlobType.DATA)
        n = min(len(view), len(self.buf))
        view[:n] = self.buf[:n]
        self.buf = self.buf[n:]
        return n


def repo_files(backend: Backend, backup: StoredBackup, settings: Settings,
               directory: str) -> Iterator[tuple[str, BinaryIO]]:
    """The files in ``directory`` of a repository backup (none: the directory is absent)."""
    repository, snap = repo.load_backup(backend, backup, settings)
    with backup_lock(repository, f"read of backup {backup.id}",
                     retry_for=repo.LOCK_RETRY_SECONDS):
        repository.load_index()
        folder = repository.read_tree(snap.tree).by_name().get(directory)
        if folder is None or folder.type != "dir" or folder.subtree is None:
            return
        for node in repository.read_tree(folder.subtree).nodes:
            if node.type == "file":
                yield node.name, io.BufferedReader(_Chunks(repository, node.content),
                                                   READ_SIZE)


def archive_files(backend: Backend, backup: StoredBackup,
                  directory: str) -> Iterator[tuple[str, BinaryIO]]:
    """The files in ``directory`` of an archive backup, read in one pass."""
    prefix = directory.strip("/") + "/"
    with contextlib.closing(backend.open_reader(backup.key)) as raw:
        source = open_decompressed(raw, check_format(backup.format), backup.key, READ_SIZE)
        try:
            with tarfile.open(fileobj=source, mode="r|") as tar:
                for member in tar:
                    name = member.name.removeprefix("./")
                    rest = name[len(prefix):] if name.startswith(prefix) else ""
                    if member.isfile() and rest and "/" not in rest:
                        f = tar.extractfile(member)
                        if f is not None:
                            yield rest, cast(BinaryIO, f)
        except tarfile.TarError as e:
            raise IntegrityError(f"archive {backup.key} cannot be read: {e}",
                                 "verify the backup (volkeeper verify ID)") from None

"""A synchronous blob sink for repository maintenance (prune's repack, copy).

``PackSink`` appends encoded blobs to one open pack per blob type (data and tree blobs
stay in separate packs, like backups write them), commits a pack when the next blob
would overflow it, and — unless told not to — writes an index file every ``index_every``
committed packs and at ``flush``. As everywhere, a pack is committed before any index
file names it. Backups use their own threaded packer (``archiver``).
"""

from __future__ import annotations

import contextlib

from common.repository.core.blob import EncodedBlob
from common.repository.core.ids import BlobType
from common.repository.core.index import IndexEntry
from common.repository.core.pack import PackWriter
from common.repository.core.repository import Repository


class PackSink:
    """Packs blobs into new pack files of ``repo``; ``flush`` commits what is open."""

    def __init__(self, repo: Repository, *, write_index: bool = True, index_every: int = 8
                 ) -> None:
        self.repo = repo
        self.write_index = write_index
        self.index_every = index_every
        self.entries: list[IndexEntry] = []
        self.packs_written = 0
        self.bytes_written = 0
        self.index_files = 0
        self._open: dict[BlobType, PackWriter] = {}
        self._unindexed: list[IndexEntry] = []
        self._since_index = 0

    def add(self, blob: EncodedBlob) -> IndexEntry:
        """Append one encoded blob (its entry is final once its pack is committed)."""
        writer = self._open.get(blob.blob_type)
        if writer is not None and not writer.fits(len(blob.data)):
            self._finish(blob.blob_type)
            writer = None
        if writer is None:
            writer = self._open[blob.blob_type] = PackWriter(
                self.repo.backend, self.repo.cipher, target_size=self.repo.config.pack_size)
        return writer.add(blob)

    def _finish(self, blob_type: BlobType) -> None:
        writer = self._open.pop(blob_type)
        size = writer.size
        entries = writer.finish()
        if not entries:
            return
        self.entries.extend(entries)
        self._unindexed.extend(entries)
        self.packs_written += 1
        self.bytes_written += size
        self._since_index += 1
        if self.write_index and self._since_index >= self.index_every:
            self._index()

    def _index(self) -> None:
        if self.repo.write_index_file(self._unindexed) is not None:
            self.index_files += 1
        self._unindexed = []
        self._since_index = 0

    def flush(self) -> list[IndexEntry]:
        """Commit the open packs (and, with ``write_index``, index them); returns every
        entry this sink has committed."""
        for blob_type in list(self._open):
            self._finish(blob_type)
        if self.write_index:
            self._index()
        return list(self.entries)

    def abort(self) -> None:
        """Discard the open packs. Committed ones stay; with ``write_index`` they are
        indexed (best effort) so a retry reuses them, otherwise prune reclaims them."""
        for writer in self._open.values():
            writer.abort()
        self._open.clear()
        if self.write_index and self._unindexed:
            with contextlib.suppress(Exception):
                self._index()

    def __enter__(self) -> PackSink:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.abort()

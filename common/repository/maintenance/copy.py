"""Copy a snapshot into another repository without re-chunking.

The destination may live on another backend and have other keys. Every blob the snapshot
needs is read from the source (authenticated and re-hashed there), and stored in the
destination unless it is already there:

- when both repositories share their id key (``init_repository(chunking_from=…)``) blob
  ids are the same in both, so a blob or a whole subtree already indexed in the
  destination is skipped without being read;
- otherwise each data blob is re-identified with the destination's id key (the source
  plaintext must be read to learn its new id, but nothing already stored is uploaded
  again), and every tree is rewritten with the new ids — trees are blobs too, so a
  rewritten tree gets a new id of its own.

Blobs are re-encrypted with the destination's key and packed into new packs; order is
data packs → tree packs → index files → snapshot, so a copy killed at any point leaves no
snapshot in the destination (its committed packs are reused by the next attempt). A
snapshot identical to one the destination already holds (same tree, host, volume and
time) is not written twice. Both repositories are held under a shared lock.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from common.progress import NullTracker, ProgressTracker
from common.repository.core import ids
from common.repository.core.ids import BlobType
from common.repository.core.locks import backup_lock
from common.repository.core.repository import Repository
from common.repository.core.snapshot import Snapshot, list_snapshots, save_snapshot
from common.repository.maintenance.packer import PackSink


@dataclass
class CopyStats:
    """What one copy read and stored."""

    blobs_read: int = 0
    bytes_read: int = 0
    blobs_stored: int = 0
    bytes_stored: int = 0
    blobs_skipped: int = 0
    packs: int = 0


class _Copier:
    def __init__(self, src: Repository, dst: Repository, progress: ProgressTracker,
                 stats: CopyStats) -> None:
        self.src = src
        self.dst = dst
        self.progress = progress
        self.same_ids = src.key.id_key == dst.key.id_key
        src.load_index()
        dst.load_index()
        self.stored: set[bytes] = set()
        self.data_map: dict[bytes, bytes] = {}
        self.tree_map: dict[bytes, bytes] = {}
        self.stats = stats
        self.sink = PackSink(dst)

    def present(self, blob_id: bytes) -> bool:
        return blob_id in self.stored or blob_id in self.dst.index

    def store(self, blob_type: BlobType, plain: bytes, blob_id: bytes) -> None:
        if self.present(blob_id):
            self.stats.blobs_skipped += 1
            return
        encoded = self.dst.codec.encode(blob_type, plain, blob_id)
        self.sink.add(encoded)
        self.stored.add(blob_id)
        self.stats.blobs_stored += 1
        self.stats.bytes_stored += len(encoded.data)

    def read(self, blob_id: bytes, blob_type: BlobType) -> bytes:
        plain = self.src.read_blob(blob_id, blob_type)
        self.stats.blobs_read += 1
        self.stats.bytes_read += len(plain)
        return plain

    def data(self, blob_id: bytes) -> bytes:
        new = self.data_map.get(blob_id)
        if new is not None:
            return new
        if self.same_ids and self.present(blob_id):
            new = blob_id
            self.stats.blobs_skipped += 1
        else:
            plain = self.read(blob_id, BlobType.DATA)
            new = blob_id if self.same_ids else self.dst.codec.blob_id(plain)
            self.store(BlobType.DATA, plain, new)
            self.progress.add(len(plain))
        self.data_map[blob_id] = new
        return new

    def tree(self, tree_id: bytes) -> bytes:
        new = self.tree_map.get(tree_id)
        if new is not None:
            return new
        if self.same_ids and self.present(tree_id):
            # The destination indexes this tree, so (being consistent) all it references.
            self.stats.blobs_skipped += 1
            self.tree_map[tree_id] = tree_id
            return tree_id
        tree = self.src.read_tree(tree_id)
        self.stats.blobs_read += 1
        for node in tree.nodes:
            node.content = [self.data(c) for c in node.content]
            if node.subtree is not None:
                node.subtree = self.tree(node.subtree)
        plain = tree.encode()
        new = self.dst.codec.blob_id(plain)
        self.store(BlobType.TREE, plain, new)
        self.progress.add(files=1)
        self.tree_map[tree_id] = new
        return new


def copy_snapshot(
    src: Repository,
    dst: Repository,
    snap: Snapshot,
    *,
    progress: ProgressTracker | None = None,
    owner: str | None = None,
    stats: CopyStats | None = None,
) -> Snapshot:
    """Copy ``snap`` of ``src`` into ``dst``; returns the snapshot as stored in ``dst``
    (an existing identical one when the snapshot was copied before). ``stats``, when
    given, is filled with what was read and stored."""
    progress = progress or NullTracker()
    what = owner or f"copy of snapshot {ids.short(snap.id)}"
    with backup_lock(src, f"{what} (source)"), backup_lock(dst, what) as lock:
        progress.set_phase("copy: indexing")
        copier = _Copier(src, dst, progress, stats if stats is not None else CopyStats())
        progress.set_phase("copy", bytes_total=snap.stats.bytes or None)
        with copier.sink:
            root_tree = copier.tree(snap.tree)
            copier.sink.flush()
        copier.stats.packs = copier.sink.packs_written
        for existing in list_snapshots(dst, host=snap.host, volume=snap.volume):
            if existing.tree == root_tree and existing.time == snap.time:
                return existing
        root = dataclasses.replace(snap.root, subtree=root_tree)
        copied = Snapshot(tree=root_tree, root=root, host=snap.host, volume=snap.volume,
                          time=snap.time, tags=list(snap.tags), pinned=snap.pinned,
                          parent=None, stats=dataclasses.replace(snap.stats),
                          program_version=snap.program_version,
                          excludes=list(snap.excludes))
        lock.check()
        return save_snapshot(dst, copied)

"""Repository statistics: logical size, unique size, stored size and the ratios between.

- *logical bytes*: what the snapshots hold, summed over snapshots (a file in ten
  snapshots counts ten times; a hardlinked inode once per snapshot; sparse holes count,
  as in ``ls -l``);
- *unique bytes*: the raw size of the distinct data blobs those snapshots reference —
  what is left after deduplication;
- *stored bytes*: the packed (compressed and sealed) size of those blobs; the pack files'
  total size (``pack_bytes``) also counts trees, pack headers and garbage prune has not
  reclaimed yet.

``dedup_ratio = logical / unique`` and ``compression_ratio = unique / stored``.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.errors import IntegrityError
from common.repository.core import ids
from common.repository.core.repository import Repository
from common.repository.core.snapshot import Snapshot, list_snapshots


@dataclass
class RepoStats:
    """Sizes of a repository or of some of its snapshots."""

    snapshots: int = 0
    files: int = 0
    logical_bytes: int = 0
    unique_bytes: int = 0
    stored_bytes: int = 0
    data_blobs: int = 0
    tree_blobs: int = 0
    tree_bytes: int = 0
    packs: int = 0
    pack_bytes: int = 0
    indexed_blobs: int = 0

    @property
    def dedup_ratio(self) -> float:
        """Logical bytes per unique byte (1.0 when nothing is shared)."""
        return self.logical_bytes / self.unique_bytes if self.unique_bytes else 1.0

    @property
    def compression_ratio(self) -> float:
        """Unique raw bytes per stored byte (above 1.0 when compression helped)."""
        return self.unique_bytes / self.stored_bytes if self.stored_bytes else 1.0

    def to_dict(self) -> dict[str, object]:
        """JSON form for the API/CLI."""
        out: dict[str, object] = dict(vars(self))
        out["dedup_ratio"] = round(self.dedup_ratio, 4)
        out["compression_ratio"] = round(self.compression_ratio, 4)
        return out


class _Walker:
    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.data: set[bytes] = set()
        self.trees: dict[bytes, tuple[int, int]] = {}  # tree id -> (files, bytes) below it

    def tree(self, tree_id: bytes) -> tuple[int, int]:
        done = self.trees.get(tree_id)
        if done is not None:
            return done
        files = size = 0
        for node in self.repo.read_tree(tree_id).nodes:
            if node.type == "file":
                files += 1
                size += node.size
            elif node.type == "hardlink":
                files += 1
            elif node.subtree is not None:
                f, s = self.tree(node.subtree)
                files += f
                size += s
            self.data.update(node.content)
        self.trees[tree_id] = (files, size)
        return files, size


def repository_stats(repo: Repository, snapshots: list[Snapshot] | None = None) -> RepoStats:
    """Statistics over ``snapshots`` (default: all of them); pack totals are always for
    the whole repository. IntegrityError when a referenced tree or blob is not indexed."""
    snaps = list_snapshots(repo) if snapshots is None else snapshots
    index = repo.load_index().index
    out = RepoStats(snapshots=len(snaps), indexed_blobs=len(index))
    walker = _Walker(repo)
    for snap in snaps:
        files, size = walker.tree(snap.tree)
        out.files += files
        out.logical_bytes += size
    for blob_id in walker.data:
        entry = index.lookup(blob_id)
        if entry is None:
            raise IntegrityError(f"data blob {blob_id.hex()} is referenced but not indexed",
                                 "check it with `volkeeper repair TARGET --read-data --dry-run`")
        out.data_blobs += 1
        out.unique_bytes += entry.raw_length
        out.stored_bytes += entry.length
    for tree_id in walker.trees:
        entry = index.lookup(tree_id)
        if entry is not None:
            out.tree_blobs += 1
            out.tree_bytes += entry.length
    for obj in repo.backend.list(ids.PACKS_PREFIX):
        out.packs += 1
        out.pack_bytes += obj.size
    return out

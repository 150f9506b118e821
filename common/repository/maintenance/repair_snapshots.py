"""Snapshots that need lost data: finding them, and rewriting them without it.

``find_broken`` walks every snapshot and names the files (and whole directories) that
reference a lost blob. ``forget_broken`` is restic's ``repair snapshots --forget``: each
broken snapshot is written anew without the broken files (their directories' trees are
re-encoded, so they get new ids), tagged ``repaired``, keeping host, volume, time, pin and
parent; only after the new snapshot is stored is the original forgotten. Order: tree packs
→ their index file → new snapshot → delete the original, so a crash leaves at worst both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from common.errors import IntegrityError, NotFound, StorageError
from common.repository.check.report import MAX_PATHS
from common.repository.core import ids
from common.repository.core.blob import EncodedBlob
from common.repository.core.ids import BlobType
from common.repository.core.repository import Repository
from common.repository.core.snapshot import load_snapshot, save_snapshot, snapshot_ids
from common.repository.core.tree import Node, Tree
from common.repository.maintenance.packer import PackSink

REPAIRED_TAG = "repaired"


@dataclass
class BrokenSnapshot:
    """A snapshot that references lost data, and the paths that depend on it."""

    snapshot_id: str
    host: str
    volume: str
    time: str
    paths: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """JSON form for job records."""
        return {"snapshot_id": self.snapshot_id, "host": self.host, "volume": self.volume,
                "time": self.time, "paths": self.paths}


def find_broken(repo: Repository, salvage: dict[bytes, EncodedBlob] | None = None
                ) -> tuple[list[BrokenSnapshot], set[bytes]]:
    """Every snapshot needing a blob that neither ``repo``'s index (damage marks applied)
    nor ``salvage`` holds, or a tree that cannot be read, with the paths (``/a/b``; a
    directory as ``/a/ (whole directory)``) that depend on it; and the ids of those
    blobs (lost: interrupted repairs and earlier losses are found too)."""
    salvage = salvage or {}
    index = repo.index
    lost: set[bytes] = set()

    def gone(chunks: list[bytes]) -> bool:
        missing = index.missing(c for c in chunks if c not in salvage)
        lost.update(missing)
        return bool(missing)

    def read(tree_id: bytes) -> Tree:
        blob = salvage.get(tree_id)
        if blob is not None:
            plain = repo.codec.decode(BlobType.TREE, tree_id, memoryview(blob.data),
                                     blob.raw_length)
            return Tree.decode(plain, f"tree {tree_id.hex()}")
        return repo.read_tree(tree_id)

    out = []
    clean: set[bytes] = set()
    for sid in snapshot_ids(repo):
        try:
            snap = load_snapshot(repo, sid)
        except (IntegrityError, NotFound):
            continue  # forgotten meanwhile, or damaged (a check names it)
        paths: list[str] = []
        _walk(read, snap.tree, "", gone, paths, clean)
        if paths:
            out.append(BrokenSnapshot(sid.hex(), snap.host, snap.volume, snap.time, paths))
    return out, lost


def _walk(read: Callable[[bytes], Tree], tree_id: bytes, path: str,
          gone: Callable[[list[bytes]], bool], paths: list[str], clean: set[bytes]) -> bool:
    if tree_id in clean:
        return True
    try:
        tree = read(tree_id)
    except (IntegrityError, NotFound, StorageError):
        _note(paths, (path or "") + "/ (whole directory)")
        return False
    whole = True
    for node in tree.nodes:
        child = f"{path}/{node.name}"
        if node.type == "dir" and node.subtree is not None:
            whole = _walk(read, node.subtree, child, gone, paths, clean) and whole
        elif gone(node.content):
            _note(paths, child)
            whole = False
    if whole:
        clean.add(tree_id)
    return whole


def _note(paths: list[str], path: str) -> None:
    if len(paths) < MAX_PATHS:
        paths.append(path)


def forget_broken(repo: Repository, broken: list[BrokenSnapshot], lost: set[bytes],
                  fault: Callable[[str], None]) -> dict[str, str]:
    """Rewrite each broken snapshot without its broken files; returns old id -> new id
    (hex). ``repo``'s index must be the one after the repair's rewrite."""
    rewritten: dict[str, str] = {}
    cache: dict[bytes, bytes | None] = {}
    with PackSink(repo, write_index=True) as sink:
        # new tree id -> sealed, not yet committed
        new_trees: dict[bytes, bytes | bytearray] = {}
        plans = []
        for b in broken:
            snap = load_snapshot(repo, ids.parse_id(b.snapshot_id))
            root = _rewrite_tree(repo, snap.tree, lost, cache, sink, new_trees)
            if root is None:  # the root tree itself is lost: nothing to keep
                root = _store(repo, Tree(), sink, new_trees)
            plans.append((snap, root))
        fault("write tree packs")
        sink.flush()
        for snap, root in plans:
            new = replace(snap, tree=root, id=b"", original=snap.original or snap.id,
                          tags=sorted({*snap.tags, REPAIRED_TAG}))
            fault("write snapshot")
            save_snapshot(repo, new)
            fault("forget snapshot")
            repo.backend.delete(ids.snapshot_key(snap.id))
            rewritten[snap.id.hex()] = new.id.hex()
    return rewritten


def _rewrite_tree(repo: Repository, tree_id: bytes, lost: set[bytes],
                  cache: dict[bytes, bytes | None], sink: PackSink,
                  new_trees: dict[bytes, bytes | bytearray]) -> bytes | None:
    """The id of ``tree_id`` without what needs lost data (None: unreadable)."""
    if tree_id in cache:
        return cache[tree_id]
    try:
        tree = repo.read_tree(tree_id)
    except (IntegrityError, NotFound, StorageError):
        cache[tree_id] = None
        return None
    nodes: list[Node] = []
    changed = False
    for node in tree.nodes:
        if node.type == "dir" and node.subtree is not None:
            sub = _rewrite_tree(repo, node.subtree, lost, cache, sink, new_trees)
            if sub is None:
                changed = True
                continue
            if sub != node.subtree:
                changed = True
                node = replace(node, subtree=sub)
        elif any(c in lost for c in node.content):
            changed = True
            continue
        nodes.append(node)
    new_id = _store(repo, Tree(nodes), sink, new_trees) if changed else tree_id
    cache[tree_id] = new_id
    return new_id


def _store(repo: Repository, tree: Tree, sink: PackSink,
           new_trees: dict[bytes, bytes | bytearray]) -> bytes:
    blob = repo.codec.encode(BlobType.TREE, tree.encode())
    if blob.blob_id not in new_trees and blob.blob_id not in repo.index:
        sink.add(blob)
        new_trees[blob.blob_id] = blob.data
    return blob.blob_id

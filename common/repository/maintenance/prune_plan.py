"""Prune's plan: which blobs are referenced, which copy of each is kept, and what happens
to every pack (keep, delete, repack). Reads only; ``prune`` carries the plan out."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from common.errors import IntegrityError, NotFound, StorageError
from common.progress import ProgressTracker
from common.repository.core import ids
from common.repository.core.damage import Damage, read_damage
from common.repository.core.index import Index, IndexEntry, IndexFile
from common.repository.core.repository import Repository
from common.repository.core.snapshot import load_snapshot, snapshot_ids

_REFUSED_HINT = ("run `volkeeper repair` (it rewrites what is still readable and lists the "
                 "snapshots that need lost data), or forget the damaged snapshot, "
                 "then `volkeeper repair TARGET --read-data --dry-run` before pruning")


@dataclass
class Plan:
    """Everything prune decided."""

    snapshots: int = 0
    blobs: int = 0
    index_files: list[bytes] = field(default_factory=list)
    pack_sizes: dict[bytes, int] = field(default_factory=dict)
    pack_entries: dict[bytes, list[IndexEntry]] = field(default_factory=dict)
    keep: dict[bytes, IndexEntry] = field(default_factory=dict)
    delete: list[bytes] = field(default_factory=list)
    repack: dict[bytes, list[IndexEntry]] = field(default_factory=dict)
    kept_packs: list[bytes] = field(default_factory=list)
    unindexed: list[bytes] = field(default_factory=list)
    missing_packs: list[bytes] = field(default_factory=list)

    def unused_share(self, pack_id: bytes) -> float:
        """The fraction of a pack's blob bytes that no snapshot needs (from this copy)."""
        entries = self.pack_entries[pack_id]
        total = sum(e.length for e in entries)
        live = sum(e.length for e in entries if self.keep.get(e.blob_id) == e)
        return 1.0 - live / total if total else 1.0


def merged_index(files: dict[bytes, IndexFile], present: set[bytes],
                 damage: Damage | None = None) -> Index:
    """One Index over the entries whose pack is stored and whose copy no damage mark
    names."""
    damage = damage or Damage()
    index = Index()
    for f in files.values():
        index.add_all(e for e in f.entries if e.pack_id in present
                      and not damage.is_damaged(e.blob_id, e.pack_id))
    index.flush()
    return index


def referenced_blobs(repo: Repository, progress: ProgressTracker) -> tuple[int, set[bytes]]:
    """(number of snapshots, ids of every blob they reference: trees and data), read
    through the repository's index. Raises IntegrityError naming the first snapshot, tree
    or blob that cannot be read or found."""
    index = repo.index
    sids = snapshot_ids(repo)
    progress.set_phase("prune: reading snapshots", files_total=len(sids))
    used: set[bytes] = set()
    trees: set[bytes] = set()
    count = 0
    for sid in sids:
        try:
            snap = load_snapshot(repo, sid)
        except NotFound:
            continue  # forgotten while we listed
        except IntegrityError as exc:
            raise IntegrityError(
                f"prune refused: snapshot {sid.hex()} cannot be read ({exc}); without it prune "
                "cannot tell which data is still needed", _REFUSED_HINT) from None
        count += 1
        stack = [snap.tree]
        while stack:
            tree_id = stack.pop()
            if tree_id in trees:
                continue
            trees.add(tree_id)
            used.add(tree_id)
            try:
                tree = repo.read_tree(tree_id)
            except (IntegrityError, NotFound, StorageError) as exc:
                raise IntegrityError(
                    f"prune refused: tree {tree_id.hex()} of snapshot {sid.hex()} cannot be "
                    f"read ({exc})", _REFUSED_HINT) from None
            for node in tree.nodes:
                if node.subtree is not None:
                    stack.append(node.subtree)
                for chunk in node.content:
                    if chunk in used:
                        continue
                    if chunk not in index:
                        raise IntegrityError(
                            f"prune refused: blob {chunk.hex()} of snapshot {sid.hex()} is in "
                            f"no stored pack (file {node.name!r})", _REFUSED_HINT)
                    used.add(chunk)
        progress.add(files=1)
    return count, used


def plan_prune(repo: Repository, files: dict[bytes, IndexFile], max_repack_ratio: float,
               unindexed_grace: float, progress: ProgressTracker) -> Plan:
    """Decide the fate of every pack (see ``prune``). The repository reads through the
    index of ``files`` (only the entries whose pack is stored) from then on."""
    plan = Plan(index_files=sorted(files))
    stored = {}
    for obj in repo.backend.list(ids.PACKS_PREFIX):
        try:
            stored[ids.id_from_key(obj.key)] = obj
        except Exception:  # noqa: BLE001 - not a pack name; not ours to delete
            continue
    plan.pack_sizes = {p: o.size for p, o in stored.items()}
    by_pack: dict[bytes, dict[bytes, IndexEntry]] = {}
    missing: set[bytes] = set()
    for f in files.values():
        for e in f.entries:
            if e.pack_id in stored:
                by_pack.setdefault(e.pack_id, {}).setdefault(e.blob_id, e)
            else:
                missing.add(e.pack_id)
    plan.missing_packs = sorted(missing)
    plan.pack_entries = {p: list(d.values()) for p, d in by_pack.items()}
    damage, _ = read_damage(repo.backend, repo.cipher)
    repo.index = index = merged_index(files, set(stored), damage)
    plan.blobs = len(index)
    plan.snapshots, used = referenced_blobs(repo, progress)
    progress.set_phase("prune: planning")
    where: dict[bytes, list[bytes]] = {}
    live_bytes: dict[bytes, int] = dict.fromkeys(by_pack, 0)
    for pack_id, entries in by_pack.items():
        for blob_id, e in entries.items():
            if blob_id in used and not damage.is_damaged(blob_id, pack_id):
                where.setdefault(blob_id, []).append(pack_id)
                live_bytes[pack_id] += e.length
    for blob_id in used:
        best = max(where[blob_id], key=lambda p: (live_bytes[p], p))
        plan.keep[blob_id] = by_pack[best][blob_id]
    for pack_id in sorted(by_pack):
        live = [e for e in plan.pack_entries[pack_id] if plan.keep.get(e.blob_id) == e]
        if not live:
            plan.delete.append(pack_id)
        elif plan.unused_share(pack_id) > max_repack_ratio:
            plan.repack[pack_id] = live
        else:
            plan.kept_packs.append(pack_id)
    now = time.time()
    for pack_id, obj in sorted(stored.items()):
        if pack_id in by_pack or obj.modified is None:
            continue
        if now - obj.modified.timestamp() > unindexed_grace:
            plan.unindexed.append(pack_id)
    return plan

"""Verifying repository snapshots, and comparing a restored volume with a snapshot's tree.

``verify`` checks one backup's snapshot and only the objects it references (see
``checker.check_snapshot``), holding the repository's shared lock (no prune beside it):
a structure check by default, every referenced blob read back with ``read_data``, or a
seeded random share of the snapshot's packs with ``subset``.

``compare_tree`` (``tree_compare``, re-exported here) is what drills and replace-restores
of repo snapshots use after the restore: every entry of the restored directory compared
with the snapshot's tree, content by chunk ids.
"""

from __future__ import annotations

from common.config import Settings
from common.engine.records import StoredBackup, VerifyOutcome
from common.engine.repo import LOCK_RETRY_SECONDS, open_repo, snapshot_id
from common.engine.tree_compare import Seen, compare_backup, compare_tree
from common.errors import IntegrityError, InvalidInput, NotFound
from common.progress import ProgressTracker
from common.repository import ids
from common.repository.check.checker import check_snapshot
from common.repository.core.locks import backup_lock
from common.repository.core.snapshot import load_snapshot
from common.storage.base import Backend

__all__ = ["Seen", "compare_backup", "compare_tree", "verify"]


def verify(backend: Backend, backup: StoredBackup, tracker: ProgressTracker,
           settings: Settings, *, read_data: bool = False, subset_percent: float | None = None,
           seed: int | None = None) -> VerifyOutcome:
    """Check the backup's snapshot: structure, plus all (``read_data``) or a random
    ``subset_percent`` of its data. Damage is reported in the outcome (storage keys of
    damaged packs and the snapshot, ``blob:``/``tree:`` ids, and the files affected)."""
    scope = "subset" if subset_percent is not None and not read_data else \
        "read-data" if read_data else "structure"
    out = VerifyOutcome(ok=True, backup_id=backup.id, scope=scope,
                        subset_percent=subset_percent if scope == "subset" else None)
    repo = open_repo(backend, settings)
    sid = snapshot_id(backup)
    tracker.set_phase("opening snapshot")
    try:
        snap = load_snapshot(repo, sid)
    except (NotFound, IntegrityError) as e:
        out.ok = False
        out.damaged_objects.append(ids.snapshot_key(sid))
        out.problems.append(str(e))
        out.problem_count = 1
        return out
    with backup_lock(repo, f"verify of backup {backup.id}", retry_for=LOCK_RETRY_SECONDS):
        report = check_snapshot(repo, snap, read_data=read_data,
                                subset=out.subset_percent / 100
                                if out.subset_percent is not None else None,
                                seed=seed, progress=tracker)
    out.entries_checked = report.blobs_read if scope != "structure" else report.blobs
    out.packs_referenced, out.packs_read = report.packs, report.packs_read
    out.bytes_read, out.seed = report.bytes_read, report.seed
    for p in report.problems:
        out.ok = False
        name = _object_name(p.kind, p.object_id)
        if name not in out.damaged_objects:
            out.damaged_objects.append(name)
        shown = [x.lstrip("/") or "/" for x in p.paths[:10]]
        files = f" (affects {', '.join(shown)}{' …' if len(p.paths) > 10 else ''})" \
            if shown else ""
        out.problems.append(f"{p.message}{files}")
        out.problem_count += 1
    return out


def _object_name(kind: str, object_id: str) -> str:
    """A storage key for packs, index files and snapshots; ``kind:id`` for blobs."""
    try:
        raw = ids.parse_id(object_id)
    except InvalidInput:
        return f"{kind}:{object_id}"
    if kind == "pack":
        return ids.pack_key(raw)
    if kind == "index":
        return ids.index_key(raw)
    if kind == "snapshot":
        return ids.snapshot_key(raw)
    return f"{kind}:{object_id}"

"""Operations on one stored backup, any format: write its tags and pin into the repository
snapshot, forget (delete) it, copy it to another target.

Archives are two objects (the archive and its manifest); a ``repo`` backup is one snapshot
of the target's repository. Nothing here touches the catalog: the worker task records the
outcome there only after the storage side succeeded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from common.config import Settings
from common.engine import repo as repo_engine
from common.engine.records import StoredBackup
from common.errors import Conflict, IntegrityError, InvalidInput, NotFound
from common.progress import ProgressTracker
from common.repository import ids
from common.repository.core.snapshot import save_snapshot
from common.repository.maintenance.copy import CopyStats, copy_snapshot
from common.repository.maintenance.prune import forget_snapshots
from common.storage.base import Backend

#: Tags volkeeper itself puts on snapshots (``job:<id>``); kept when user tags change.
SYSTEM_TAG_PREFIXES = ("job:",)
_CHUNK = 1 << 20


@dataclass
class CopyOutcome:
    """What a copy stored on the destination (the fields of its catalog row)."""

    key: str
    manifest_key: str
    checksum: str
    stored_bytes: int
    tags: list[str] = field(default_factory=list)
    pinned: bool = False
    blobs_stored: int = 0
    blobs_skipped: int = 0

    def as_result(self) -> dict[str, Any]:
        return asdict(self)


def apply_labels(backend: Backend, backup: StoredBackup, settings: Settings, *,
                 tags: Sequence[str], pinned: bool) -> bool:
    """Make the ``repo`` backup's snapshot carry ``tags`` (plus volkeeper's own ``job:``
    tags) and ``pinned``. Returns whether the snapshot had to be rewritten."""
    repo, snap = repo_engine.load_backup(backend, backup, settings)
    system = {t for t in snap.tags if t.startswith(SYSTEM_TAG_PREFIXES)}
    wanted = sorted(system | set(tags))
    if sorted(set(snap.tags)) == wanted and snap.pinned == pinned:
        return False
    snap.tags, snap.pinned = wanted, pinned
    save_snapshot(repo, snap)
    return True


def user_tags(tags: Sequence[str]) -> list[str]:
    """The tags of a snapshot a user gave (without volkeeper's ``job:`` tags)."""
    return sorted(t for t in set(tags) if not t.startswith(SYSTEM_TAG_PREFIXES))


def forget(backend: Backend, backup: StoredBackup, settings: Settings) -> dict[str, Any]:
    """Delete the backup's stored objects. Objects already gone are not an error (a
    forget interrupted after the storage side finished can simply be run again). A pinned
    snapshot is refused (Conflict) — the repository's own pin wins over the catalog."""
    if backup.format != repo_engine.FORMAT:
        keys = [k for k in (backup.key, backup.manifest_key) if k]
        for k in keys:
            backend.delete(k)
        return {"deleted_objects": keys, "reclaimed_bytes_hint": None}
    repo = repo_engine.open_repo(backend, settings)
    sid = repo_engine.snapshot_id(backup)
    try:
        gone = forget_snapshots(repo, [sid], owner=f"forget of backup {backup.id}")
    except NotFound:
        gone = []  # already deleted (an earlier forget stopped before the catalog)
    except InvalidInput as e:  # pinned in the repository
        raise Conflict(f"backup {backup.id}: {e.message}",
                       f"unpin it first: volkeeper unpin {backup.id}") from None
    return {"deleted_objects": [ids.snapshot_key(s) for s in gone],
            "reclaimed_bytes_hint": "run a prune of the target to reclaim the data only this "
                                    "snapshot referenced (volkeeper prune TARGET)"}


def copy_backup(src: Backend, dst: Backend, backup: StoredBackup, *, src_settings: Settings,
                dst_settings: Settings, tracker: ProgressTracker) -> CopyOutcome:
    """Copy the backup from ``src`` to ``dst``: a repository snapshot with its blobs (not
    re-chunked; the destination repository is created on first use like a backup's), an
    archive and its manifest object by object (the archive's sha256 checked on the way)."""
    if backup.format == repo_engine.FORMAT:
        tracker.set_phase("opening repositories")
        src_repo, snap = repo_engine.load_backup(src, backup, src_settings)
        dst_repo = repo_engine.open_repo(dst, dst_settings, create=True,
                                         chunking_from=src_repo)
        stats = CopyStats()
        copied = copy_snapshot(src_repo, dst_repo, snap, progress=tracker, stats=stats,
                               owner=f"copy of backup {backup.id}")
        return CopyOutcome(key=ids.snapshot_key(copied.id), manifest_key="",
                           checksum=copied.id.hex(), stored_bytes=stats.bytes_stored,
                           tags=user_tags(copied.tags), pinned=copied.pinned,
                           blobs_stored=stats.blobs_stored, blobs_skipped=stats.blobs_skipped)
    for k in (backup.key, backup.manifest_key):
        try:
            dst.stat(k)
        except NotFound:
            continue
        raise Conflict(f"{dst.display} already holds {k}",
                       "that backup was copied there before; list the destination's backups")
    tracker.set_phase("copying archive", bytes_total=src.stat(backup.key).size)
    sha = _copy_object(src, dst, backup.key, tracker)
    if sha != backup.checksum:
        dst.delete(backup.key)
        raise IntegrityError(
            f"archive {backup.key} read from {src.display} does not match its checksum "
            f"(sha256 {sha}, catalog {backup.checksum}); nothing was copied",
            f"verify the backup: volkeeper verify {backup.id}")
    try:
        _copy_object(src, dst, backup.manifest_key, None)
    except BaseException:
        dst.delete(backup.key)
        raise
    return CopyOutcome(key=backup.key, manifest_key=backup.manifest_key, checksum=sha,
                       stored_bytes=dst.stat(backup.key).size)


def _copy_object(src: Backend, dst: Backend, key: str, tracker: ProgressTracker | None) -> str:
    """Stream one object; returns its sha256. Nothing is visible at ``dst`` on failure."""
    digest = hashlib.sha256()
    with src.open_reader(key) as reader, dst.open_writer(key) as writer:
        while chunk := reader.read(_CHUNK):
            digest.update(chunk)
            writer.write(chunk)
            if tracker is not None:
                tracker.add(len(chunk))
        writer.commit()
    return digest.hexdigest()

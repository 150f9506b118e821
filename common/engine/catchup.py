"""A migration's catch-up round (``common.jobs.migration_plan``): while the application
still runs, an incremental backup of the source after the pre-copy (or the previous
round), compared with that snapshot, so the coordinator knows whether there is anything
to apply to the destination before the cut-over's stop and how much.

``catchup_backup`` stores the snapshot as any backup does (the repository's incremental
walk: only files whose stat changed since the parent are read) and then loads both
snapshots: the same root tree id and root directory entry mean nothing changed (a tree
id covers every entry's metadata and content below it, ``repository.core.tree``), so the
round's apply can be skipped. ``bytes_read``/``files_read`` (the snapshot's counters of
what the walk had to read) are the size of the round's delta: what the cut-over would
otherwise have to read while the application is stopped.

What a migration's jobs keep in a worker for the next one: the pre-copy's trees and index
for the first round on the source (``precopy_keeping``), the index on the destination for
its syncs (``destination_index``, dropped by ``forget_index``)."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

from common.config import Settings
from common.docker import DockerHost
from common.engine.backup import backup_volume
from common.engine.records import BackupOutcome, StoredBackup
from common.engine.repo import load_backup
from common.formats import REPO_FORMAT
from common.progress import ProgressTracker
from common.repository import ids
from common.repository.backup import kept
from common.repository.core.repository import forget_kept_index, reusing_index
from common.repository.core.snapshot import load_snapshot
from common.storage.base import Backend


@dataclass
class Catchup:
    """A catch-up round's backup and how it differs from the snapshot before it."""

    backup: BackupOutcome
    changed: bool
    files_read: int
    bytes_read: int
    seconds: float

    def as_result(self) -> dict[str, Any]:
        return self.backup.as_result() | {"changed": self.changed,
                                          "files_read": self.files_read,
                                          "bytes_read": self.bytes_read,
                                          "seconds": self.seconds}


def precopy_keeping() -> contextlib.AbstractContextManager[None]:
    """Around a migration's pre-copy backup (a ``backup`` job with ``params.keep_trees``):
    it keeps its trees and index in this worker (``kept``), for the first catch-up round
    seconds later, whose parent it is. That round then reads only the index files added
    since and no parent tree (in the fleet benchmark, the index alone was 0.2-0.4 s of a
    ~0.55 s unchanged round). The collector is not paused: a pre-copy can be long."""
    return kept.keeping(pause_gc=False)


def destination_index() -> contextlib.AbstractContextManager[None]:
    """Around a migration's jobs on the destination (the pre-copy's restore, each
    ``migration-sync``): their index loads reuse and keep the index in this worker
    (``reusing_index``), so the cut-over's apply reads only the index files the catch-up
    and the final backup added. ``forget_index`` drops it when the migration is verified
    or its destination removed."""
    return reusing_index()


def forget_index() -> None:
    """Drop the index a migration's jobs kept in this worker (``destination_index``)."""
    forget_kept_index()


def catchup_backup(docker: DockerHost, backend: Backend, *, host: str, volume: str,
                   job_id: str, tracker: ProgressTracker, settings: Settings,
                   since: StoredBackup) -> Catchup:
    """Back ``volume`` up (no stop) and compare the snapshot with ``since`` (the pre-copy's
    or the previous round's)."""
    began = time.monotonic()
    with kept.keeping():  # the cut-over's backup walks this snapshot's trees again
        out = backup_volume(docker, backend, host=host, volume=volume, fmt=REPO_FORMAT,
                            job_id=job_id, tracker=tracker, settings=settings)
    tracker.set_phase("comparing with the previous snapshot")
    repo, before = load_backup(backend, since, settings)
    now = load_snapshot(repo, ids.parse_id(out.snapshot_id))
    return Catchup(out, changed=(now.tree, now.root) != (before.tree, before.root),
                   files_read=now.stats.files_read, bytes_read=now.stats.bytes_read,
                   seconds=round(time.monotonic() - began, 3))


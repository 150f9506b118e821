"""Sync a volume to a repository backup: the apply step of a migration's cut-over.

A migration pre-copies while the application runs (a backup S1 of the source, restored
into the destination volume: ``restore``), then at cut-over stops the application, backs
the source up again (S2, incremental) and applies S2 to the destination with
``sync_volume``: the destination is made equal to S2 by writing only what differs from
what it holds (``common.repository.restore.sync``: unchanged entries are left alone,
metadata-only changes fixed in place, changed files get only their changed chunks,
type changes replaced, entries S2 does not have deleted). With 5 % of the data changed
this takes a fraction of a full restore, which is the downtime the migration reports.

Semantics the migration job relies on:

- the destination volume must be reachable through its mountpoint (direct access);
  otherwise ``DockerError`` (a migration through the Docker API copies in full instead);
- only the backup's repository shared lock is held (no prune beside it), like a restore;
- nothing outside the volume is ever written: a symlink in the volume is replaced, never
  followed, and a directory swapped while the sync runs stops it (``Conflict``);
- ``in_place`` (default True here, for the cut-over: the destination is used by nobody
  until the sync and the verify that follows are done) writes changed chunks into the
  files themselves; an interrupted sync is repaired by running it again (a file it was
  writing has a current mtime, so it is checked again). ``in_place=False`` rebuilds each
  changed file under a temporary name and renames it over (atomic per file, slower);
- the sync trusts a file whose size and mtime match the backup (like restic's
  ``--overwrite if-changed``); ``verify_content=True`` hashes those files too. The
  migration's verify phase (the drill's comparison) is the independent check;
- device nodes are written only with ``VOLKEEPER_RESTORE_DEVICE_NODES`` (or for a safety
  snapshot), as for restores; ``Refused`` before anything changes otherwise;
- ``record`` (a comparison's record of the destination, ``tree_compare.Seen``: a
  migration's pre-copy record) is updated right after the sync with what it did
  (``tree_compare.sync_record``): the files whose content it wrote — every blob verified
  as written, every chunk it kept hashed — with the stat they have now, the paths it
  removed dropped; a verify trusting the record then reads none of them again (not the
  files it trusted by size and mtime: their content it never looked at). The record also
  spares the sync reading a changed file to find the chunks it still holds: where the
  file's stat equals its record entry, they are known from the backup's parent snapshot
  (what the destination was last restored or synced to: ``restore.sync_base``);
- ``held`` (a migration's own state: the id of the snapshot the volume was last restored
  or synced to without a difference or a warning, nothing having written into it since)
  makes the sync trust that it holds exactly that snapshot: entries whose node is that
  snapshot's are not looked at, directories whose subtree is its are not entered
  (``restore.sync_base``), so the cut-over's apply costs what changed since, not the
  volume's size. The migration's verify, which walks and compares every entry, is what
  catches a write the trust missed. Without ``held`` every entry is walked;
- damaged data: everything else is synced, then ``IntegrityError`` names the files;
- stopped part-way (an error, a cancelled job: the tracker's progress calls raise), the
  volume is a mix of what it held and the backup: run the sync again (its leftovers, the
  ``.vksync-*`` temporary files of atomic mode, are deleted as entries the backup does
  not have), or remove the destination as a rollback does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from common.config import Settings
from common.docker import DockerHost
from common.engine.access import direct_path
from common.engine.records import StoredBackup
from common.engine.repo import LOCK_RETRY_SECONDS, load_backup
from common.engine.tree_compare import Seen, sync_record
from common.errors import DockerError, InvalidInput
from common.formats import traits_of
from common.progress import ProgressTracker
from common.repository import Repository
from common.repository.core import ids
from common.repository.core.locks import backup_lock
from common.repository.core.snapshot import Snapshot
from common.repository.restore.sync import SyncStats, sync_snapshot
from common.storage.base import Backend


@dataclass
class SyncOutcome:
    """What a sync changed in the volume."""

    volume: str
    files_written: int
    bytes_fetched: int
    bytes_reused: int
    entries_written: int
    metadata_fixed: int
    deleted: int
    unchanged: int
    warnings: list[str]
    #: changed files whose kept chunks the record and the backup's parent told (not read)
    files_known: int = 0
    #: files recorded in ``record`` (``sync_volume``), None without one
    files_recorded: int | None = None
    #: the volume was trusted to hold the snapshot ``held`` (``sync_volume``)
    trusted: bool = False
    #: directories not entered and files not looked at: they are ``held``'s
    subtrees_skipped: int = 0
    files_held: int = 0

    @classmethod
    def of(cls, volume: str, stats: SyncStats) -> SyncOutcome:
        return cls(volume=volume, files_written=stats.files_written,
                   bytes_fetched=stats.bytes_fetched, bytes_reused=stats.bytes_reused,
                   entries_written=stats.entries_written, metadata_fixed=stats.metadata_fixed,
                   deleted=stats.deleted, unchanged=stats.unchanged,
                   warnings=list(stats.warnings), files_known=stats.files_known,
                   subtrees_skipped=stats.subtrees_skipped, files_held=stats.files_held)

    def as_result(self) -> dict[str, Any]:
        return asdict(self)


def sync_volume(docker: DockerHost, backend: Backend, backup: StoredBackup, volume: str,
                settings: Settings, tracker: ProgressTracker, *, in_place: bool = True,
                verify_content: bool = False, delete: bool = True,
                path: Path | None = None, record: Seen | None = None,
                held: str | None = None,
                opened: tuple[Repository, Snapshot] | None = None) -> SyncOutcome:
    """Make ``volume`` (on this worker's host) equal to the repo ``backup``, writing only
    what differs (see the module's docstring); ``path``: where its files are when that is
    not its mountpoint (the device directory of a ``local`` bind volume); ``record``:
    updated with what the sync wrote; ``held``: the id of the snapshot the volume is
    trusted to hold (see the module's docstring); ``opened``: the repository and the
    backup's snapshot, loaded by the caller (``load_backup``). Raises
    InvalidInput for an archive backup, DockerError when the volume's mountpoint is not
    reachable, NotFound for a missing volume, Conflict, Refused and IntegrityError as
    ``sync_snapshot`` does."""
    if traits_of(backup.format).archive:
        raise InvalidInput(f"backup {backup.id} is a {backup.format} archive: only repository "
                           "snapshots can be synced into a volume",
                           "back the volume up with --format repo, or restore in full")
    path = path or direct_path(docker, volume, settings)
    if path is None:
        raise DockerError(f"volume {volume!r} is not directly accessible, so a snapshot "
                          "cannot be synced into it",
                          "run the worker on the host as root (or bind-mount "
                          "/var/lib/docker/volumes), or restore into a new volume in full")
    tracker.set_phase("opening repository")
    repo, snap = opened or load_backup(backend, backup, settings)
    what = f"backup {backup.id}" if backup.id else f"snapshot {backup.snapshot_id[:8]}"
    with backup_lock(repo, f"sync of {what} into volume {volume}",
                     retry_for=LOCK_RETRY_SECONDS):
        stats = sync_snapshot(repo, snap, path, delete=delete, verify_content=verify_content,
                              tracker=tracker, in_place=in_place,
                              devices=settings.restore_device_nodes or backup.kind == "safety",
                              record=record, trust_base=held is not None,
                              base=_held(held) or (snap.parent if record else None))
    out = SyncOutcome.of(volume, stats)
    out.trusted = stats.trusted  # asked (``held``) and taken (its snapshot could be read)
    if record is not None:
        out.files_recorded = sync_record(path, stats, record)
    return out


def _held(snapshot_id: str | None) -> bytes | None:
    return None if snapshot_id is None else ids.parse_id(snapshot_id)

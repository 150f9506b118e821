"""Back up one volume: into a portable archive object plus its manifest, or as a snapshot
of the target's repository — the format's business (``formats``).

``consistent_backup`` is the backup jobs run: the format's backup inside the hooks
(``common.hooks``: exec hooks, the stop window) with the excludes of the volume, the
request and its ``.volkeeperignore``; read from a filesystem snapshot instead of stopping
the containers when asked (``common.hooks.snapshot_source``). When anything fails after
the backup was stored (a post hook with ``on_error=fail``), the stored backup is forgotten
again: nothing is left that looks like a good backup."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from common.archive.excludes import NO_EXCLUDES, Excludes
from common.config import Settings
from common.docker import ContainerRef, DockerHost
from common.engine.access import direct_path
from common.engine.formats import format_for
from common.engine.formats.archive import archive_key
from common.engine.records import BackupOutcome, StoredBackup
from common.errors import VolkeeperError
from common.hooks import (
    HooksReport,
    consistent,
    excludes_for,
    read_ignore_file,
    should_stop,
)
from common.hooks.snapshot_source import SnapshotReport, plan_backup, snapshot_source
from common.progress import ProgressTracker
from common.storage.base import Backend

__all__ = ["ConsistentBackup", "archive_key", "backup_volume", "consistent_backup"]

log = logging.getLogger(__name__)


def backup_volume(
    docker: DockerHost,
    backend: Backend,
    *,
    host: str,
    volume: str,
    fmt: str,
    job_id: str,
    tracker: ProgressTracker,
    settings: Settings,
    area: str = "archives",
    excludes: Excludes = NO_EXCLUDES,
) -> BackupOutcome:
    """Stream ``volume`` of ``host`` into ``backend`` in format ``fmt``. Raises NotFound
    for a missing volume, StorageError for storage failures, DockerError/IntegrityError for
    read failures, InvalidInput for an unknown format."""
    return format_for(fmt).backup(docker, backend, host=host, volume=volume, job_id=job_id,
                                  tracker=tracker, settings=settings, area=area,
                                  excludes=excludes)


@dataclass
class ConsistentBackup:
    """A stored backup and what happened around it."""

    outcome: BackupOutcome
    report: HooksReport
    snapshot: SnapshotReport | None = None

    def as_result(self) -> dict[str, Any]:
        snap = self.snapshot.as_result() if self.snapshot else {}
        return self.outcome.as_result() | self.report.as_result() | snap


def consistent_backup(
    docker: DockerHost,
    backend: Backend,
    *,
    host: str,
    volume: str,
    fmt: str,
    job_id: str,
    tracker: ProgressTracker,
    settings: Settings,
    stop_containers: bool = False,
    excludes: Sequence[str] = (),
    on_stopping: Callable[[list[ContainerRef]], None] | None = None,
    on_started: Callable[[], None] | None = None,
    snapshot: str | None = None,
    on_snapshot: Callable[[dict[str, Any] | None], None] | None = None,
) -> ConsistentBackup:
    """Back up ``volume`` between its containers' hooks, stopped when asked (or labelled),
    without the excluded paths (see the module doc). ``on_stopping`` gets the containers
    about to be stopped, before the first is (record them: a crash must not lose them);
    ``on_started`` is called once they all run again. ``snapshot`` (auto, btrfs, zfs,
    lvm, off; None: the volume's ``volkeeper.snapshot`` label) reads a filesystem snapshot
    instead of stopping; ``on_snapshot`` gets its record before it is taken and None once
    it is dropped. A failure's exception carries what happened in its ``result`` (hook
    outputs, stop windows, the snapshot)."""
    info = docker.volume(volume)
    path = direct_path(docker, volume, settings)
    ignore = read_ignore_file(docker, volume, path)
    snap = plan_backup(info, snapshot, f"{volume}-{job_id}",
                       direct=settings.volume_access != "docker-api")
    rules = excludes_for(info, [*excludes, *(snap.plan.excludes if snap.plan else [])],
                         ignore)
    report = HooksReport()
    stored: BackupOutcome | None = None
    try:
        with consistent(docker, list(info.containers), "backup", report,
                        stop=snap.plan is None and should_stop(info, stop_containers),
                        tracker=tracker, on_stopping=on_stopping, on_started=on_started), \
                snapshot_source(docker, volume, snap, tracker=tracker,
                                on_recorded=on_snapshot) as source:
            stored = backup_volume(source, backend, host=host, volume=volume, fmt=fmt,
                                   job_id=job_id, tracker=tracker, settings=settings,
                                   excludes=rules)
    except VolkeeperError as e:
        if stored is not None:  # a post hook failed the job after the backup was stored
            _forget(backend, stored, host, volume, settings)
        e.result = {**(getattr(e, "result", None) or {}),  # type: ignore[attr-defined]
                    **report.as_result(), **snap.as_result()}
        raise
    assert stored is not None
    return ConsistentBackup(stored, report, snap)


def _forget(backend: Backend, out: BackupOutcome, host: str, volume: str,
            settings: Settings) -> None:
    from common.engine.stored import forget

    try:
        forget(backend, StoredBackup.safety(out, host=host, volume=volume), settings)
    except VolkeeperError as e:
        log.error("could not forget the backup %s of a failed job: %s", out.key, e)

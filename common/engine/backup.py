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
from common.errors import InvalidInput, VolkeeperError
from common.hooks import (
    HooksReport,
    consistent,
    excludes_for,
    label_notes,
    read_ignore_file,
    should_stop,
    unhooked_notes,
)
from common.hooks.dumps import DumpSet, dumps_for
from common.hooks.precedence import policy_options
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
    dumps: DumpSet | None = None,
) -> BackupOutcome:
    """Stream ``volume`` of ``host`` (or its ``dumps``) into ``backend`` in format ``fmt``.
    Raises NotFound for a missing volume, StorageError for storage failures,
    DockerError/IntegrityError for read failures, InvalidInput for an unknown format,
    DumpFailed for a dump that failed."""
    return format_for(fmt).backup(docker, backend, host=host, volume=volume, job_id=job_id,
                                  tracker=tracker, settings=settings, area=area,
                                  excludes=excludes, dumps=dumps)


@dataclass
class ConsistentBackup:
    """A stored backup and what happened around it."""

    outcome: BackupOutcome
    report: HooksReport
    snapshot: SnapshotReport | None = None
    dumps: DumpSet | None = None

    def as_result(self) -> dict[str, Any]:
        snap = self.snapshot.as_result() if self.snapshot else {}
        return (self.outcome.as_result() | self.report.as_result() | snap
                | ({"dumps": self.dumps.as_result()} if self.dumps else {}))


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
    dump: str | None = None,
    labels_first: bool = False,
    dump_databases: list[str] | None = None,
) -> ConsistentBackup:
    """Back up ``volume`` between its containers' hooks, stopped when asked (or labelled),
    without the excluded paths (see the module doc). ``on_stopping`` gets the containers
    about to be stopped, before the first is (record them: a crash must not lose them);
    ``on_started`` is called once they all run again. ``snapshot`` (auto, btrfs, zfs,
    lvm, off; None: the volume's ``volkeeper.snapshot`` label) reads a filesystem snapshot
    instead of stopping; ``on_snapshot`` gets its record before it is taken and None once
    it is dropped. ``dump`` (or a container's ``volkeeper.dump`` label) backs up database
    dumps instead of the files (``common.hooks.dumps``; ``dump_databases``: those alone,
    each loadable under another name): their containers keep running,
    nothing is stopped or snapshotted for them. A failure's exception carries what
    happened in its ``result`` (hook outputs, stop windows, the snapshot, the dumps).
    ``labels_first``: the options are a policy's, which the volume's and its containers'
    labels override (``common.hooks.precedence``)."""
    info = docker.volume(volume)
    policy_dump = dump if labels_first else None
    if labels_first:
        decided = policy_options(info, stop_containers, snapshot, dump)
        stop_containers, snapshot, dump = decided.stop, decided.snapshot, decided.dump
    dumps = DumpSet(docker, dumps_for(info, dump, dump_databases, policy_dump))
    if dumps and (stop_containers or snapshot not in (None, "off")):
        raise InvalidInput("a dump backup neither stops the containers nor reads a "
                           "snapshot: the dump runs inside the running database",
                           "back up without --stop-containers and --snapshot (or without "
                           "--dump)")
    path = direct_path(docker, volume, settings)
    snap = plan_backup(info, "off" if dumps else snapshot, f"{volume}-{job_id}",
                       direct=settings.volume_access != "docker-api")
    if dumps:
        rules = NO_EXCLUDES
    else:
        ignore = read_ignore_file(docker, volume, path)
        rules = excludes_for(info, [*excludes, *(snap.plan.excludes if snap.plan else [])],
                             ignore)
    dumping = {s.container.id for s in dumps.sources}
    report = HooksReport(notes=label_notes(info) + unhooked_notes(
        [s.container for s in dumps.sources]))
    if dumps and excludes:
        report.notes.append(f"the excludes ({', '.join(excludes)}) do not apply to a dump "
                            "backup: the dump is the database's content, not its files")
    stored: BackupOutcome | None = None
    try:
        with consistent(docker, [c for c in info.containers if c.id not in dumping],
                        "backup", report,
                        stop=snap.plan is None and (
                            stop_containers if labels_first
                            else should_stop(info, stop_containers)),
                        tracker=tracker, on_stopping=on_stopping, on_started=on_started), \
                snapshot_source(docker, volume, snap, tracker=tracker,
                                on_recorded=on_snapshot) as source:
            stored = backup_volume(source, backend, host=host, volume=volume, fmt=fmt,
                                   job_id=job_id, tracker=tracker, settings=settings,
                                   excludes=rules, dumps=dumps or None)
    except VolkeeperError as e:
        if stored is not None:  # a post hook failed the job after the backup was stored
            _forget(backend, stored, host, volume, settings)
        e.result = {**(getattr(e, "result", None) or {}),  # type: ignore[attr-defined]
                    **report.as_result(), **snap.as_result(),
                    **({"dumps": dumps.as_result()} if dumps else {})}
        raise
    assert stored is not None
    return ConsistentBackup(stored, report, snap, dumps or None)


def _forget(backend: Backend, out: BackupOutcome, host: str, volume: str,
            settings: Settings) -> None:
    from common.engine.stored import forget

    try:
        forget(backend, StoredBackup.safety(out, host=host, volume=volume), settings)
    except VolkeeperError as e:
        log.error("could not forget the backup %s of a failed job: %s", out.key, e)

"""Replace a volume's content with a backup — safely.

Order: validate → the containers' pre-restore hooks → stop the containers using the
volume (if asked; they are *always* started again afterwards, even on failure, and their
post-restore hooks run: ``common.hooks``) → take a safety snapshot of the current content
in the backup's own format family (``Format.safety_snapshot``: a tar.zst under
``volkeeper/safety/`` for an archive backup, a snapshot tagged ``safety`` in the same
encrypted repository for a repo backup; kept for ``VOLKEEPER_SAFETY_SNAPSHOT_HOURS``) →
empty the volume → restore the backup → compare the volume with the backup (manifest, or
the snapshot's tree). If anything after the snapshot fails, the volume is emptied and the
safety snapshot is restored back into it through its ``Format``, and the job says so. A
later ``volkeeper rollback`` restores the safety snapshot the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from common.config import Settings
from common.docker import ContainerRef, DockerHost
from common.engine.access import clear_volume
from common.engine.compare import compare_volume
from common.engine.formats import format_of
from common.engine.records import BackupOutcome, StoredBackup
from common.engine.validate import validate_restore
from common.errors import DockerError, IntegrityError, RestoreRefused, RolledBack
from common.hooks import HooksReport, consistent
from common.progress import ProgressTracker
from common.storage.base import Backend

log = logging.getLogger(__name__)


@dataclass
class ReplaceOutcome:
    volume: str
    safety: BackupOutcome | None = None
    stopped_containers: list[str] = field(default_factory=list)
    restarted_containers: list[str] = field(default_factory=list)
    hooks: list[dict[str, Any]] = field(default_factory=list)
    entries_checked: int = 0
    bytes_restored: int = 0
    files_restored: int = 0

    def as_result(self) -> dict[str, Any]:
        out = asdict(self)
        out["safety"] = self.safety.as_result() if self.safety else None
        out["mode"] = "replace"
        return out


def replace_volume(docker: DockerHost, backend: Backend, backup: StoredBackup, *, volume: str,
                   host: str, job_id: str, stop_containers: bool, tracker: ProgressTracker,
                   settings: Settings,
                   on_safety: Callable[[BackupOutcome], None] | None = None,
                   on_stopping: Callable[[list[ContainerRef]], None] | None = None,
                   on_started: Callable[[], None] | None = None) -> ReplaceOutcome:
    """``on_safety`` is called as soon as the safety snapshot is stored, before the volume
    is touched: the caller records it, so a crash from then on can be rolled back.
    ``on_stopping``/``on_started``: as for ``common.hooks.StopWindow`` (the running
    containers using the volume are stopped; the restore hooks of its containers run)."""
    tracker.set_phase("validating")
    check = validate_restore(docker, backend, backup, host=host, volume=volume,
                             settings=settings, mode="replace",
                             stop_containers=stop_containers)
    problem = check.first_problem()
    if problem is not None:
        raise RestoreRefused(f"restore refused: {problem.detail}", check.as_result())
    out = ReplaceOutcome(volume=volume)
    report = HooksReport()
    try:
        with consistent(docker, list(docker.volume(volume).containers), "restore", report,
                        stop=True, tracker=tracker, on_stopping=on_stopping,
                        on_started=on_started, post_can_fail=False):
            _replace(docker, backend, backup, out, report, volume=volume, host=host,
                     job_id=job_id, tracker=tracker, settings=settings, on_safety=on_safety)
    finally:
        out.stopped_containers = report.window.stopped if report.window else []
        out.restarted_containers = report.window.restarted if report.window else []
        out.hooks = report.as_result()["hooks"]
    return out


def _replace(docker: DockerHost, backend: Backend, backup: StoredBackup, out: ReplaceOutcome,
             hooks: HooksReport, *, volume: str, host: str, job_id: str,
             tracker: ProgressTracker, settings: Settings,
             on_safety: Callable[[BackupOutcome], None] | None) -> None:
    """Safety snapshot, replace, compare; roll back on failure (containers stopped)."""
    if hooks.window is not None:
        out.stopped_containers = hooks.window.stopped
    out.safety = format_of(backup).safety_snapshot(
        docker, backend, host=host, volume=volume, job_id=job_id, tracker=tracker,
        settings=settings)
    if on_safety is not None:
        on_safety(out.safety)
    try:
        _put_backup(docker, backend, backup, volume, settings, tracker)
        report = compare_volume(docker, backend, backup, volume, settings, tracker)
        if not report.ok:
            raise IntegrityError("the restored content differs from the backup: "
                                 + "; ".join(report.problems[:3]))
        out.entries_checked = report.entries_checked
        out.bytes_restored, out.files_restored = backup.logical_bytes, backup.file_count
    except BaseException as e:
        _roll_back(docker, backend, volume, settings, tracker,
                   StoredBackup.safety(out.safety, host=host, volume=volume), e)
        raise RolledBack(
            f"restoring backup {backup.id} into volume {volume!r} failed ({e}); the "
            "volume was put back to its content from before the restore",
            out.as_result()) from e


def put_back(docker: DockerHost, backend: Backend, safety: StoredBackup, volume: str,
             settings: Settings, tracker: ProgressTracker) -> None:
    """Put a volume back to a safety snapshot (recovery after a worker died mid-replace)."""
    _put_backup(docker, backend, safety, volume, settings, tracker)


def _put_backup(docker: DockerHost, backend: Backend, backup: StoredBackup, volume: str,
                settings: Settings, tracker: ProgressTracker) -> None:
    """Empty the volume and restore the backup (an archive or a repo snapshot) into it."""
    _clear(docker, volume, settings, tracker)
    format_of(backup).restore(docker, backend, backup, volume=volume, tracker=tracker,
                              settings=settings)


def _clear(docker: DockerHost, volume: str, settings: Settings,
           tracker: ProgressTracker) -> None:
    tracker.set_phase("replacing")
    if not clear_volume(docker, volume, settings):
        raise DockerError(f"cannot empty volume {volume!r} through the Docker API",
                          "replace needs direct access to the volume's mountpoint")


def _roll_back(docker: DockerHost, backend: Backend, volume: str, settings: Settings,
               tracker: ProgressTracker, safety: StoredBackup, cause: BaseException) -> None:
    log.warning("replace-restore into %s failed (%s); rolling back", volume, cause)
    try:
        with tracker.shielded():  # a cancelled replace is rolled back all the same
            tracker.set_phase("rolling back")
            _put_backup(docker, backend, safety, volume, settings, tracker)
    except BaseException as e:
        raise IntegrityError(
            f"ROLLBACK FAILED for volume {volume!r}: {e} (after the restore failed: {cause})",
            f"its previous content is in the safety snapshot {safety.key} (the job's "
            "safety_backup_id): restore it into a new volume (volkeeper restore ID --into "
            "NEW) and copy it over (see README, 'Replacing content')") from e

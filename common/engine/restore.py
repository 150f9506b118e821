"""Restore a backup (an archive or a repository snapshot: its ``Format`` writes it) into
a new volume or an existing empty one.

Non-destructive by design: ``validate.validate_restore`` runs first (the same checks as a
dry run) and a volume with any content is refused (replacing content with a safety
snapshot and rollback is a separate mode). If anything fails — storage, checksum,
extraction — a volume we created is removed again and an empty one is emptied again, so a
failed restore never leaves a half-written volume that looks complete.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from common.config import Settings
from common.docker import DockerHost
from common.engine.access import clear_volume
from common.engine.formats import format_of
from common.engine.formats.archive import (
    SAFETY_AREA,
    extract_into,
    member_names,
    restore_policy,
)
from common.engine.records import StoredBackup
from common.engine.validate import running_users, validate_restore
from common.errors import RestoreRefused, VolkeeperError
from common.progress import ProgressTracker
from common.storage.base import Backend

log = logging.getLogger(__name__)
__all__ = ["SAFETY_AREA", "RestoreOutcome", "StoredBackup", "extract_into", "member_names",
           "restore_backup", "restore_policy", "undo"]


@dataclass(frozen=True)
class RestoreOutcome:
    volume: str
    created_volume: bool
    bytes_restored: int
    files_restored: int
    entries: int
    seconds: float

    def as_result(self) -> dict[str, Any]:
        return asdict(self)


def restore_backup(
    docker: DockerHost,
    backend: Backend,
    backup: StoredBackup,
    *,
    volume: str,
    tracker: ProgressTracker,
    settings: Settings,
    host: str = "",
    paths: list[str] | None = None,
    on_writing: Callable[[bool], None] | None = None,
    driver: str = "local",
    driver_opts: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    then: Callable[..., None] | None = None,
) -> RestoreOutcome:
    """Restore ``backup`` (only ``paths``, relative to the volume root, when given). A
    missing volume is created with ``driver``, ``driver_opts`` and ``labels``.
    ``on_writing(created)`` is called right before data is written into the volume, so the
    caller can record what to undo should this process die mid-way. ``then``: see
    ``repo.restore_into`` (a repository snapshot restored into a directory this worker
    reaches; not called otherwise); what it raises undoes the restore too."""
    tracker.set_phase("validating")
    check = validate_restore(docker, backend, backup, host=host, volume=volume,
                             settings=settings, paths=paths)
    problem = check.first_problem()
    if problem is not None:
        raise RestoreRefused(f"restore refused: {problem.detail}", check.as_result())
    created = False
    if check.volume_state == "missing":
        docker.create_volume(volume, driver=driver, driver_opts=driver_opts or None,
                             labels={"volkeeper.restored-from": backup.id, **(labels or {})})
        created = True
    _refuse_running_users(docker, volume, created, settings, check.as_result())
    if on_writing is not None:
        on_writing(created)
    started = time.monotonic()
    try:
        restored = format_of(backup).restore(docker, backend, backup, volume=volume,
                                             tracker=tracker, settings=settings, paths=paths,
                                             then=then)
    except VolkeeperError as e:
        if not _undo(docker, volume, created, settings):
            raise type(e)(f"{e.message}; volume {volume!r} may hold part of the restored data",
                          f"empty it before restoring into it again. {e.hint or ''}".strip()
                          ) from e
        raise
    except BaseException:
        _undo(docker, volume, created, settings)
        raise
    return RestoreOutcome(volume=volume, created_volume=created,
                          bytes_restored=restored.bytes, files_restored=restored.files,
                          entries=restored.entries,
                          seconds=round(time.monotonic() - started, 3))


def _refuse_running_users(docker: DockerHost, volume: str, created: bool, settings: Settings,
                          result: dict[str, Any]) -> None:
    """Right before writing: a container started since the validation still refuses the
    restore (the volume is removed again if this restore created it)."""
    running = [c.name for c in docker.volume(volume).containers if c.state == "running"]
    if running:
        if created:  # else its content (if any) is the containers', not ours
            _undo(docker, volume, created, settings)
        raise RestoreRefused(f"restore refused: {running_users(volume, running)}", result)




def undo(docker: DockerHost, volume: str, created: bool, settings: Settings) -> bool:
    """Remove a volume the restore created, or empty one it wrote into (crash recovery)."""
    return _undo(docker, volume, created, settings)


def _undo(docker: DockerHost, volume: str, created: bool, settings: Settings) -> bool:
    """Put the target back as it was before the restore; False if that failed."""
    try:
        if created:
            docker.remove_volume(volume)
            return True
        return clear_volume(docker, volume, settings)
    except Exception:
        log.exception("could not undo the failed restore into volume %s", volume)
        return False

"""Restore an archive backup into a new volume or an existing empty one.

Archives are read under a policy (``restore_policy``): device nodes are refused, and the
tar stream may not hold more file content than the catalog records (plus a slack for
headers), so a tampered archive fails early instead of filling the disk.

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

from common.archive import ExtractPolicy, ExtractStats, check_format, extract_archive
from common.config import Settings
from common.docker import DockerHost
from common.engine import repo
from common.engine.access import clear_volume, tar_sink
from common.engine.records import StoredBackup
from common.engine.validate import running_users, validate_restore
from common.errors import RestoreRefused, VolkeeperError
from common.progress import ProgressTracker
from common.storage.base import Backend

log = logging.getLogger(__name__)


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
) -> RestoreOutcome:
    """Restore ``backup`` (only ``paths``, relative to the volume root, when given).
    ``on_writing(created)`` is called right before data is written into the volume, so the
    caller can record what to undo should this process die mid-way."""
    tracker.set_phase("validating")
    check = validate_restore(docker, backend, backup, host=host, volume=volume,
                             settings=settings, paths=paths)
    problem = check.first_problem()
    if problem is not None:
        raise RestoreRefused(f"restore refused: {problem.detail}", check.as_result())
    created = False
    if check.volume_state == "missing":
        docker.create_volume(volume, labels={"volkeeper.restored-from": backup.id})
        created = True
    _refuse_running_users(docker, volume, created, settings, check.as_result())
    if on_writing is not None:
        on_writing(created)
    tracker.set_phase("restoring", bytes_total=backup.logical_bytes)
    try:
        if backup.format == "repo":
            return _restore_repo(docker, backend, backup, volume=volume, tracker=tracker,
                                 settings=settings, paths=paths, created=created)
        stats = extract_into(docker, backend, volume, settings, tracker, key=backup.key,
                             fmt=backup.format, checksum=backup.checksum, paths=paths,
                             policy=restore_policy(backup, settings))
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
                          bytes_restored=backup.logical_bytes, files_restored=backup.file_count,
                          entries=stats.entries, seconds=round(stats.seconds, 3))


def _refuse_running_users(docker: DockerHost, volume: str, created: bool, settings: Settings,
                          result: dict[str, Any]) -> None:
    """Right before writing: a container started since the validation still refuses the
    restore (the volume is removed again if this restore created it)."""
    running = [c.name for c in docker.volume(volume).containers if c.state == "running"]
    if running:
        if created:  # else its content (if any) is the containers', not ours
            _undo(docker, volume, created, settings)
        raise RestoreRefused(f"restore refused: {running_users(volume, running)}", result)


def _restore_repo(docker: DockerHost, backend: Backend, backup: StoredBackup, *, volume: str,
                  tracker: ProgressTracker, settings: Settings, paths: list[str] | None,
                  created: bool) -> RestoreOutcome:
    """Restore a snapshot of the native repository into the validated, empty volume."""
    started = time.monotonic()
    stats = repo.restore_into(docker, backend, backup, volume=volume, tracker=tracker,
                              settings=settings, paths=paths)
    return RestoreOutcome(volume=volume, created_volume=created, bytes_restored=stats.bytes,
                          files_restored=stats.files, entries=stats.files + stats.dirs,
                          seconds=round(time.monotonic() - started, 3))


SAFETY_AREA = "volkeeper/safety/"


def restore_policy(backup: StoredBackup, settings: Settings) -> ExtractPolicy:
    """What a restore of ``backup`` accepts: no device nodes (unless
    ``VOLKEEPER_RESTORE_DEVICE_NODES`` is set, or from the safety snapshots of
    replace-restores, which hold a volume's own previous content), and no more content than
    the catalog records for it (a tampered archive fails before it fills the disk)."""
    return ExtractPolicy(allow_devices=settings.restore_device_nodes
                         or backup.key.startswith(SAFETY_AREA),
                         content_bytes=backup.logical_bytes, files=backup.file_count)


def extract_into(docker: DockerHost, backend: Backend, volume: str, settings: Settings,
                 tracker: ProgressTracker, *, key: str, fmt: str, checksum: str,
                 policy: ExtractPolicy, paths: list[str] | None = None) -> ExtractStats:
    """Stream the archive ``key`` into the volume (only ``paths`` when given), checking its
    sha256; raises IntegrityError when it does not match or the archive is damaged, and
    ``Refused`` (an IntegrityError) for what ``policy`` does not accept."""
    with backend.open_reader(key) as reader, \
            tar_sink(docker, volume, settings, member_names(paths)) as sink:
        return extract_archive(reader, check_format(fmt), sink, tracker,
                               expected_sha256=checksum, name=key, policy=policy)


def member_names(paths: list[str] | None) -> list[str] | None:
    """Archive member names (``./a/b``) of volume-relative paths."""
    return ["./" + p.strip("/") for p in paths] if paths else None


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

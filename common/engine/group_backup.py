"""Back up a group of volumes (a Compose project's, or a named set) in one stop window:
the hooks of every container using any of them run once, those containers stop once —
dependents first across the whole group (``common.hooks.stop_order``) — while each volume
is backed up in turn (its own excludes and ``.volkeeperignore``), and start again in
reverse. One volume that fails fails the group: the members already stored are forgotten
again, so a group is stored whole or not at all."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from common.config import Settings
from common.docker import ContainerRef, DockerHost, VolumeInfo
from common.engine.access import direct_path
from common.engine.backup import _forget, backup_volume
from common.engine.records import BackupOutcome
from common.errors import VolkeeperError
from common.hooks import HooksReport, consistent, excludes_for, read_ignore_file, should_stop
from common.progress import ProgressTracker
from common.storage.base import Backend


@dataclass
class GroupBackup:
    """The group's stored backups (``(volume, outcome)``, in order) and what happened
    around them."""

    stored: list[tuple[str, BackupOutcome]]
    report: HooksReport

    def as_result(self) -> dict[str, Any]:
        return {"members": [{"volume": v, **out.as_result()} for v, out in self.stored],
                **self.report.as_result()}


def group_containers(infos: Sequence[VolumeInfo]) -> list[ContainerRef]:
    """Every container using any of the volumes, once."""
    seen: dict[str, ContainerRef] = {}
    for info in infos:
        for c in info.containers:
            seen.setdefault(c.id, c)
    return list(seen.values())


def group_backup(
    docker: DockerHost,
    backend: Backend,
    *,
    host: str,
    volumes: Sequence[str],
    fmt: str,
    job_id: str,
    tracker: ProgressTracker,
    settings: Settings,
    stop_containers: bool = False,
    excludes: Sequence[str] = (),
    on_stopping: Callable[[list[ContainerRef]], None] | None = None,
    on_started: Callable[[], None] | None = None,
) -> GroupBackup:
    """Back up ``volumes`` within one stop window (see the module doc): stopped when asked
    or when any volume or container using one is labelled to stop. A failure's exception
    carries what happened in its ``result``."""
    infos = [docker.volume(v) for v in volumes]
    stop = stop_containers or any(should_stop(i, False) for i in infos)
    report = HooksReport()
    stored: list[tuple[str, BackupOutcome]] = []
    try:
        with consistent(docker, group_containers(infos), "backup", report, stop=stop,
                        tracker=tracker, on_stopping=on_stopping, on_started=on_started):
            for i, info in enumerate(infos, 1):
                tracker.note(f"volume {info.name} ({i} of {len(infos)})")
                ignore = read_ignore_file(docker, info.name,
                                          direct_path(docker, info.name, settings))
                out = backup_volume(docker, backend, host=host, volume=info.name, fmt=fmt,
                                    job_id=job_id, tracker=tracker, settings=settings,
                                    excludes=excludes_for(info, excludes, ignore))
                stored.append((info.name, out))
    except VolkeeperError as e:
        for volume, out in stored:
            _forget(backend, out, host, volume, settings)
        e.result = {**(getattr(e, "result", None) or {}),  # type: ignore[attr-defined]
                    **report.as_result(), "members_forgotten": [v for v, _ in stored]}
        raise
    return GroupBackup(stored, report)

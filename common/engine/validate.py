"""Validate a restore before touching anything — the dry run, and the first step of every
real restore.

Checks: the backup's objects are present in the target with the recorded size (a quick
check; ``verify`` reads everything), the target volume's state (missing → will be created,
empty → restored into, non-empty → refused), containers using it (running ones refuse
the restore: a container writing into the volume while a root worker restores into it
could race it), and free space on the host against the restore size.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common.config import Settings
from common.docker import DockerHost
from common.engine.access import direct_path
from common.engine.formats import format_of
from common.engine.records import Check, StoredBackup
from common.errors import NotFound, VolkeeperError
from common.storage.base import Backend
from common.units import size

__all__ = ["Check", "Validation", "validate_restore"]


@dataclass
class Validation:
    backup_id: str
    host: str
    volume: str
    plan: str = ""
    volume_state: str = "unknown"  # missing | empty | not-empty
    mode: str = "new"
    stopping: list[str] = field(default_factory=list)
    restore_bytes: int = 0
    free_bytes: int | None = None
    containers: list[dict[str, str]] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def add(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append(Check(name, ok, detail))

    def first_problem(self) -> Check | None:
        return next((c for c in self.checks if not c.ok), None)

    def as_result(self) -> dict[str, Any]:
        return asdict(self) | {"ok": self.ok}


def validate_restore(docker: DockerHost, backend: Backend, backup: StoredBackup, *,
                     host: str, volume: str, settings: Settings, mode: str = "new",
                     stop_containers: bool = False,
                     paths: list[str] | None = None) -> Validation:
    """``mode`` "new": into a missing or empty volume; "replace": over a volume's content
    (a safety snapshot is taken first; running users must be stopped)."""
    files, v_bytes = _restore_totals(backend, backup, settings, paths)
    v = Validation(backup_id=backup.id, host=host, volume=volume, restore_bytes=v_bytes,
                   mode=mode)
    v.checks.extend(format_of(backup).check_stored(backend, backup, settings, paths))
    if mode == "replace":
        _check_replace(v, docker, volume, settings, stop_containers)
    else:
        _check_volume(v, docker, volume, settings)
    _check_space(v, docker, volume, settings)
    if v.ok and mode == "replace":
        stop = " after stopping " + ", ".join(v.stopping) if v.stopping else ""
        v.plan = (f"snapshot the current content of {volume!r} on {host}{stop}, then replace "
                  f"it with {files} files from backup {backup.id}; roll back "
                  "automatically on failure")
    elif v.ok:
        v.plan = (f"create volume {volume!r} on {host} and restore {files} files "
                  f"into it" if v.volume_state == "missing" else
                  f"restore {files} files into the empty volume {volume!r} on {host}")
    else:
        problem = v.first_problem()
        v.plan = f"refused: {problem.detail}" if problem else "refused"
    return v


def _restore_totals(backend: Backend, backup: StoredBackup, settings: Settings,
                    paths: list[str] | None) -> tuple[int, int]:
    """The files and bytes the restore writes: only the selected ``paths`` when given
    (the whole backup's, the safe side, when the selection cannot be sized)."""
    whole = (backup.file_count, backup.logical_bytes)
    if not paths:
        return whole
    try:
        return format_of(backup).selected_totals(backend, backup, settings, paths)
    except VolkeeperError:  # the checks name what is unreadable or missing
        return whole


def _check_volume(v: Validation, docker: DockerHost, volume: str, settings: Settings) -> None:
    try:
        info = docker.volume(volume)
    except NotFound:
        v.volume_state = "missing"
        v.add("target volume", True, f"volume {volume!r} does not exist; it will be created")
        return
    v.containers = [{"id": c.id, "name": c.name, "state": c.state} for c in info.containers]
    if docker.is_empty(volume):
        v.volume_state = "empty"
        v.add("target volume", True, f"volume {volume!r} exists and is empty")
        running = [c.name for c in info.containers if c.state == "running"]
        v.add("containers", not running, running_users(volume, running) if running
              else "no running container uses the volume")
    else:
        v.volume_state = "not-empty"
        v.add("target volume", False,
              f"volume {volume!r} is not empty; restoring would mix or overwrite its content "
              "— restore into a new volume (--into NEW_NAME), or replace its content with "
              "--mode replace (a safety snapshot is taken first; `volkeeper rollback` undoes "
              "it)")


def running_users(volume: str, running: list[str]) -> str:
    """Why a restore into a volume that running containers use is refused, and the fix."""
    names = ", ".join(running)
    return (f"volume {volume!r} is in use by running container(s) {names}: they could write "
            "into it while the restore does — stop them first (docker stop "
            f"{' '.join(running)}), or restore into a new volume (--into NEW_NAME), or "
            "replace the volume with --mode replace --stop-containers, which stops and "
            "restarts them")


def _check_replace(v: Validation, docker: DockerHost, volume: str, settings: Settings,
                   stop_containers: bool) -> None:
    try:
        info = docker.volume(volume)
    except NotFound:
        v.volume_state = "missing"
        v.add("target volume", False, f"volume {volume!r} does not exist: there is nothing to "
              "replace — restore without --mode replace to create it")
        return
    v.volume_state = "empty" if docker.is_empty(volume) else "not-empty"
    v.containers = [{"id": c.id, "name": c.name, "state": c.state} for c in info.containers]
    if direct_path(docker, volume, settings) is None:
        v.add("target volume", False, f"volume {volume!r} (driver {info.driver}) is only "
              "reachable through the Docker API, which cannot empty it; replace needs direct "
              "access — restore into a new volume instead")
        return
    v.add("target volume", True, f"volume {volume!r} exists ({v.volume_state}); its content "
          "is snapshotted before it is replaced")
    running = [c.name for c in info.containers if c.state == "running"]
    if running and not stop_containers:
        v.add("containers", False, f"volume {volume!r} is in use by running container(s) "
              f"{', '.join(running)}; pass --stop-containers to stop them during the restore "
              "(they are started again afterwards)")
    else:
        v.stopping = running
        v.add("containers", True, f"will stop and restart {', '.join(running)}" if running
              else "no running container uses the volume")


def _check_space(v: Validation, docker: DockerHost, volume: str, settings: Settings) -> None:
    where = _space_probe(docker, volume, settings)
    if where is None:
        v.add("free space", True, "not checked: the host's volume directory is not visible "
              "to this worker")
        return
    v.free_bytes = shutil.disk_usage(where).free
    if v.free_bytes < v.restore_bytes:
        v.add("free space", False, f"{size(v.free_bytes)} free at {where}, the restore needs "
              f"{size(v.restore_bytes)} — free space on the host or restore elsewhere (--host)")
    else:
        v.add("free space", True, f"{size(v.free_bytes)} free, {size(v.restore_bytes)} needed")


def _space_probe(docker: DockerHost, volume: str, settings: Settings) -> Path | None:
    if v_path := (direct_path(docker, volume, settings) if _exists(docker, volume) else None):
        return v_path
    root = docker.root_dir()
    if root is not None and (root / "volumes").is_dir():
        return root / "volumes"
    return None


def _exists(docker: DockerHost, volume: str) -> bool:
    try:
        docker.volume(volume)
        return True
    except NotFound:
        return False

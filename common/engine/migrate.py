"""The engine steps of a volume migration (``common.jobs.migrations`` drives them).

- ``check_source`` / ``check_destination``: the validation (and dry run), on the host
  that owns each side: the source volume and the containers using it, the destination
  driver with its options (a probe volume is created and mounted, then removed), the
  destination name free, free space, the via target reachable.
- ``cutover_backup``: the cut-over's final backup. With ``stop`` the running containers
  using the source are stopped first (``common.hooks.StopWindow``; recorded before; the
  file systems they sit on flushed while they still run: ``common.engine.flush``) and
  *stay stopped* when it succeeds — the application moves to the destination; they are
  started again at once when the backup fails.
- ``apply_final``: make the destination equal to the final snapshot: an in-place sync
  (``sync.sync_volume``, only what differs) where the worker reaches its mountpoint,
  otherwise (another driver, a ``local`` volume with mount options) the pre-copied
  volume is created again and the snapshot restored into it in full.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import units
from common.archive import VerifyReport
from common.config import Settings
from common.docker import ContainerRef, DockerHost
from common.engine.access import bound_dir, direct_path
from common.engine.backup import backup_volume
from common.engine.compare import compare_volume
from common.engine.flush import flush_filesystems
from common.engine.records import BackupOutcome, Check, StoredBackup, space_check
from common.engine.repo_verify import Seen, compare_backup
from common.engine.restore import restore_backup
from common.engine.sizing import scan_tree
from common.engine.sync import sync_volume
from common.errors import NotFound, VolkeeperError
from common.formats import REPO_FORMAT, traits_of
from common.hooks import StopWindow
from common.progress import ProgressTracker
from common.repository import Repository
from common.repository.core.snapshot import Snapshot
from common.storage.base import Backend

#: the options the ``local`` driver understands (``docker volume create -o``)
LOCAL_OPTIONS = frozenset({"type", "o", "device"})
#: ``local`` mount types whose files live in memory (gone when no container mounts them)
MEMORY_TYPES = frozenset({"tmpfs", "ramfs"})
#: ``local`` mount types of network file systems (the worker does not see their files)
NETWORK_TYPES = frozenset({"nfs", "nfs4", "cifs", "smb3"})


def _checks(*items: Check) -> list[dict[str, Any]]:
    return [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in items]


def check_source(docker: DockerHost, volume: str, settings: Settings) -> dict[str, Any]:
    """The source side: the volume, its size, the containers using it."""
    try:
        info = docker.volume(volume)
    except NotFound:
        return {"checks": _checks(Check("source volume", False,
                                        f"volume {volume!r} does not exist on this host — "
                                        "name an existing volume (volkeeper volumes)"))}
    kept = _check_kept("source", info.driver, info.options or {})
    if not kept.ok:
        return {"checks": _checks(kept)}
    path = direct_path(docker, volume, settings)
    size = scan_tree(path) if path is not None else None
    nbytes = size.bytes if size is not None else info.size_bytes
    running = [c.name for c in info.containers if c.state == "running"]
    checks = [Check("source volume", True, f"volume {volume!r} ({info.driver}"
                    + (f", {units.size(nbytes)}" if nbytes is not None else "") + ")"),
              Check("containers", True,
                    f"running containers using it: {', '.join(running)}" if running
                    else "no running container uses it")]
    return {"checks": _checks(*checks), "bytes": nbytes, "running": running,
            "containers": [{"id": c.id, "name": c.name, "state": c.state,
                            "image": c.image} for c in info.containers]}


def check_destination(docker: DockerHost, volume: str, driver: str, opts: dict[str, str],
                      need_bytes: int | None, settings: Settings,
                      images: list[str] | None = None, host: str | None = None
                      ) -> dict[str, Any]:
    """The destination side: the name free, the driver and its options, free space
    (against ``need_bytes``, or only measured when that is None: ``free_bytes`` and
    ``free_at`` say what was found, for a caller that learns the need later); with
    ``images`` (containers to recreate here) that this host has them. ``host`` names
    this host in the details (read where the migration was asked for, not here)."""
    checks: list[Check] = []
    try:
        docker.volume(volume)
        on = f"host {host}" if host else "this host"
        checks.append(Check("destination volume", False,
                            f"volume {volume!r} already exists on {on} — it is never "
                            "overwritten: choose another name (--to-volume) or remove it "
                            "first"))
    except NotFound:
        checks.append(_check_device_inside(docker, volume, driver, opts)
                      or _check_device_empty(volume, driver, opts))
    usable = [_check_driver(docker, driver, opts), _check_kept("destination", driver, opts),
              _check_reach(docker, driver, opts)]
    checks += usable
    if all(c.ok for c in usable) and opts:  # (a network mount could hang the probe)
        checks.append(_probe(docker, driver, opts))
    space, free, where = _check_space(docker, driver, opts, need_bytes)
    checks.append(space)
    if images:
        checks.append(_check_images(docker, images))
    return {"checks": _checks(*checks), "free_bytes": free, "free_at": where}


def _check_device_inside(docker: DockerHost, volume: str, driver: str,
                         opts: dict[str, str]) -> Check | None:
    """A ``local`` bind destination's device directory inside Docker's volumes directory
    (in the source's or another volume's files, even an empty directory there): the
    migration would write into that volume — the source, which it must only read — and
    a removal of that volume would delete the destination's files. None when it is not."""
    device = opts.get("device")
    root = docker.root_dir()
    if not (driver == "local" and device and "bind" in opts.get("o", "").split(",")
            and root is not None):
        return None
    volumes = (root / "volumes").resolve()
    if not Path(device).resolve().is_relative_to(volumes):
        return None
    return Check("destination volume", False, f"the device directory {device} of volume "
                 f"{volume!r} is inside Docker's volumes directory {volumes} (another "
                 "volume's files, maybe the source's) — choose a directory outside it "
                 "(--driver-opt device=…)")


def _check_device_empty(volume: str, driver: str, opts: dict[str, str]) -> Check:
    """The name is free; a ``local`` bind destination's device directory must hold
    nothing either: the restore would overwrite its files and the cut-over's sync delete
    the others."""
    device = opts.get("device")
    if driver == "local" and device and "bind" in opts.get("o", "").split(","):
        try:
            with os.scandir(device) as entries:
                first = next(entries, None)
        except OSError:
            first = None  # missing or not visible here: "file access" and the probe say
        if first is not None:
            return Check("destination volume", False, f"the device directory {device} of "
                         f"volume {volume!r} is not empty (it holds {first.name!r}): the "
                         "migration would overwrite and delete its files — choose an empty "
                         "directory (--driver-opt device=…) or empty it first")
    return Check("destination volume", True, f"volume {volume!r} is free")


def _check_images(docker: DockerHost, images: list[str]) -> Check:
    missing = []
    for image in images:
        try:
            docker.client.images.get(image)
        except Exception:  # noqa: BLE001 - docker's ImageNotFound, or an odd reference
            missing.append(image)
    if missing:
        return Check("images", False, f"image(s) {', '.join(missing)} of the containers to "
                     "recreate are not on this host — pull or load them here first")
    return Check("images", True, f"the containers' images are here: {', '.join(images)}")


def _check_reach(docker: DockerHost, driver: str, opts: dict[str, str]) -> Check:
    """The cut-over's sync and the verify read the destination's files: they must be
    visible to this worker (``volume_path``)."""
    root = docker.root_dir()
    if driver == "local" and not opts and root is not None:
        return Check("file access", True, "the worker reaches the volume's files")
    device = Path(opts.get("device", "/nonexistent"))
    if driver == "local" and "bind" in opts.get("o", "").split(",") and device.is_dir():
        return Check("file access", True, f"the worker reaches the files at {device}")
    kind = opts.get("type", "") if driver == "local" else ""
    what = (f"a {kind} mount (type={kind})" if kind in NETWORK_TYPES else
            f"a bind volume whose device {device} this worker does not see"
            if "bind" in opts.get("o", "").split(",") else
            f"a {driver!r} volume" if driver != "local" else "this kind of local volume")
    return Check("file access", False, f"the worker cannot reach the files of {what}, so "
                 "the cut-over cannot sync them nor the verify compare them — use the "
                 "local driver (plain, or o=bind with a device directory this worker sees"
                 + ("; mount the export on the host and bind that directory)"
                    if kind in NETWORK_TYPES else ")"))


def _check_kept(side: str, driver: str, opts: dict[str, str]) -> Check:
    """A ``local`` volume of a memory file system keeps its files only while a container
    mounts it: the cut-over's stop (source) or the end of the restore (destination)
    would drop them."""
    kind = opts.get("type", "") if driver == "local" else ""
    if kind not in MEMORY_TYPES:
        return Check(f"{side} persists", True, "its files are kept on storage")
    if side == "source":
        return Check("source persists", False, f"the source is a local volume of "
                     f"type={kind}: its files live in memory only while a container mounts "
                     "it, so the cut-over's stop would lose them — copy them into a "
                     "persistent volume first (or back it up while it runs)")
    return Check("destination persists", False, f"driver option type={kind}: such a "
                 "volume keeps its files in memory only while a container mounts it, so "
                 "the migrated data would vanish — choose a persistent destination (a "
                 "plain local volume, or type=none, o=bind, device=DIR)")


def _check_driver(docker: DockerHost, driver: str, opts: dict[str, str]) -> Check:
    drivers = docker.volume_drivers()
    if driver not in drivers:
        return Check("driver", False, f"volume driver {driver!r} is not available on this "
                     f"host (it has: {', '.join(drivers) or 'none'}) — install its plugin "
                     "or choose one of those (--driver)")
    unknown = sorted(set(opts) - LOCAL_OPTIONS) if driver == "local" else []
    if unknown:
        return Check("driver", False, f"the local driver has no option {', '.join(unknown)} "
                     "— it takes type, o and device (--driver-opt type=none "
                     "--driver-opt o=bind --driver-opt device=/path)")
    return Check("driver", True, f"driver {driver!r} is available"
                 + (f" (options {', '.join(sorted(opts))})" if opts else ""))


def _probe(docker: DockerHost, driver: str, opts: dict[str, str]) -> Check:
    """Create a volume with the driver and options and mount it once, then remove it."""
    name = f"volkeeper-probe-{uuid.uuid4().hex[:12]}"
    try:
        docker.create_volume(name, driver=driver, driver_opts=opts,
                             labels={"volkeeper.probe": "migration"})
        try:
            docker.is_empty(name)  # mounts it (a helper container through the archive API)
        finally:
            with contextlib.suppress(VolkeeperError):
                docker.remove_volume(name)
    except VolkeeperError as e:
        return Check("driver options", False, f"a volume with driver {driver!r} and these "
                     f"options cannot be mounted here: {e.message} — fix the options")
    return Check("driver options", True, "a probe volume with these options mounted")


def _check_space(docker: DockerHost, driver: str, opts: dict[str, str],
                 need: int | None) -> tuple[Check, int | None, str]:
    """The free-space check, and the free bytes and where they were measured (None, ""
    when the destination's storage is not visible here)."""
    where: Path | None = None
    if driver == "local" and not opts:
        root = docker.root_dir()
        where = root / "volumes" if root is not None and (root / "volumes").is_dir() else None
    elif driver == "local" and opts.get("device") and "bind" in opts.get("o", ""):
        device = Path(opts["device"])
        where = device if device.is_dir() else None
    if where is None:
        return Check("free space", True, "not checked: the destination's storage is not "
                     "visible to this worker"), None, ""
    free = shutil.disk_usage(where).free
    return space_check(free, str(where), need), free, str(where)


@dataclass
class Cutover:
    """The final backup and the containers stopped for it (still stopped); ``stopped_at``
    (epoch seconds) starts the downtime window of a ``--cutover stop`` (also when no
    container was running), None without a stop."""

    backup: BackupOutcome
    stopped: list[dict[str, str]] = field(default_factory=list)
    stopped_at: float | None = None
    #: where the cut-over's time went: the flush before the stop (``flush``, not
    #: downtime), stopping the containers (``stop``), the final backup (``backup``)
    seconds: dict[str, float] = field(default_factory=dict)

    def as_result(self) -> dict[str, Any]:
        return self.backup.as_result() | {"containers_stopped": self.stopped,
                                          "stopped_at": self.stopped_at,
                                          "seconds": self.seconds}


def cutover_backup(docker: DockerHost, backend: Backend, *, host: str, volume: str,
                   job_id: str, tracker: ProgressTracker, settings: Settings, stop: bool,
                   on_stopping: Any = None) -> Cutover:
    """Stop the source's running containers (with ``stop``), back the source up into the
    repository; see the module doc for what stays stopped."""
    window = None
    stopped_at = None
    seconds: dict[str, float] = {}
    began = time.monotonic()
    if stop:
        containers: list[ContainerRef] = list(docker.volume(volume).containers)
        if any(c.state == "running" for c in containers):
            # the application still runs: the stop's unmount then has little to write
            # out (``common.engine.flush``), which shortens the downtime
            tracker.set_phase("flushing")
            flush_filesystems((docker.root_dir(), volume_path(docker, volume, settings)))
            seconds["flush"] = round(time.monotonic() - began, 3)
        window = StopWindow(docker, containers, tracker=tracker, on_stopping=on_stopping)
        stopped_at = time.time()
        began = time.monotonic()
        window.__enter__()
    stopping = time.monotonic() - began
    try:
        out = backup_volume(docker, backend, host=host, volume=volume, fmt=REPO_FORMAT,
                            job_id=job_id, tracker=tracker, settings=settings)
    except BaseException:
        if window is not None:
            window.start()
        raise
    stopped = [{"id": w.id, "name": w.name} for w in window.windows] if window else []
    return Cutover(out, stopped, stopped_at, seconds | {
        "stop": round(stopping, 3),
        "backup": round(time.monotonic() - began - stopping, 3)})


def apply_final(docker: DockerHost, backend: Backend, backup: StoredBackup, volume: str,
                settings: Settings, tracker: ProgressTracker, *, driver: str,
                driver_opts: dict[str, str], labels: dict[str, str],
                record: Seen | None = None, held: str | None = None,
                opened: tuple[Repository, Snapshot] | None = None,
                path: Path | None = None) -> dict[str, Any]:
    """Make ``volume`` equal to ``backup`` (see the module doc); what was done. ``record``
    (the pre-copy's record of the destination): a sync adds the files it wrote
    (``sync.sync_volume``); a full restore leaves it alone (its verify reads them).
    ``held``: the snapshot the destination is trusted to hold, ``opened``: the repository
    and the backup's snapshot already loaded (``sync.sync_volume``); ``path``: the
    volume's ``volume_path`` when the caller has it (else looked up here)."""
    started = time.monotonic()
    path = path or volume_path(docker, volume, settings)
    if path is not None:
        out = sync_volume(docker, backend, backup, volume, settings, tracker, path=path,
                          record=record, held=held, opened=opened)
        return out.as_result() | {"method": "sync",
                                  "seconds": round(time.monotonic() - started, 3)}
    tracker.set_phase("recreating the destination")
    docker.remove_volume(volume)
    restored = restore_backup(docker, backend, backup, volume=volume, tracker=tracker,
                              settings=settings, driver=driver, driver_opts=driver_opts,
                              labels=labels)
    return restored.as_result() | {"method": "full restore",
                                   "seconds": round(time.monotonic() - started, 3)}


def volume_path(docker: DockerHost, volume: str, settings: Settings) -> Path | None:
    """Where this worker reaches the volume's files: its mountpoint (``direct_path``) or,
    for a ``local`` volume bound to a directory (``o=bind``, ``device=DIR``), that
    directory when it is visible here; None otherwise."""
    return direct_path(docker, volume, settings) or bound_dir(docker, volume)


def compare(docker: DockerHost, backend: Backend, backup: StoredBackup, volume: str,
            settings: Settings, tracker: ProgressTracker, *, trusted: Seen | None = None,
            seen: Seen | None = None, written: bool = False,
            opened: tuple[Repository, Snapshot] | None = None,
            path: Path | None = None) -> VerifyReport:
    """The drill's comparison of ``volume`` with ``backup``, also for a bind volume;
    ``trusted``/``seen``/``written`` as for ``repo_verify.compare_tree`` (a repo backup's
    files); ``opened`` as for ``repo_verify.compare_backup``; ``path`` as for
    ``apply_final``."""
    path = path or volume_path(docker, volume, settings)
    if path is not None and not traits_of(backup.format).archive:
        return compare_backup(backend, backup, path, settings, tracker, trusted=trusted,
                              seen=seen, written=written, opened=opened)
    return compare_volume(docker, backend, backup, volume, settings, tracker)

"""The host agent: registers this Docker host, heartbeats, keeps the volume inventory fresh
(periodically and on Docker volume/container events), sweeps stale jobs and removes helper
containers that dead workers left behind.

It runs as a daemon thread beside the Celery worker (fleet) or inside the embedded server.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import timedelta
from typing import Any

from common.db import hosts, jobs
from common.docker import DockerHost, VolumeInfo
from common.errors import VolkeeperError
from workers.context import WorkerContext

log = logging.getLogger(__name__)

VERSION = "0.1.0"


def register(ctx: WorkerContext, with_sizes: bool = True) -> None:
    """Record this host (Docker version, worker version) and take a first inventory
    (``with_sizes=False``: without measuring volumes — Docker walks every volume's files for
    that — keeping the sizes measured before)."""
    docker_version: str | None
    try:
        docker_version = ctx.docker.version()
    except VolkeeperError as e:
        log.warning("host %s: %s", ctx.host, e)
        docker_version = None
    with ctx.db.session() as s:
        hosts.register_host(s, ctx.host, docker_version=docker_version,
                            worker_version=VERSION, info={"docker_host": ctx.settings.docker_host})
    if docker_version is not None:
        refresh_inventory(ctx, with_sizes=with_sizes)
    sweep_orphaned(ctx)


def sweep_orphaned(ctx: WorkerContext) -> list[str]:
    """Fail this host's running jobs whose worker process on this machine is gone (say a
    ``volkeeper backup`` that was killed): otherwise their volume lock would refuse the
    next job until the heartbeat sweep, which a one-shot CLI never runs."""
    with ctx.db.session() as sess:
        failed = jobs.sweep_orphaned(sess, ctx.host, socket.gethostname(), _pid_alive)
    for job_id in failed:
        log.warning("job %s failed: its worker process is gone", job_id)
    return failed


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # this process may be running it (or reuses a dead worker's pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def volume_row(v: VolumeInfo, old_size: int | None = None) -> dict[str, Any]:
    return {
        "name": v.name,
        "driver": v.driver,
        "mountpoint": v.mountpoint,
        "size_bytes": v.size_bytes if v.size_bytes is not None else old_size,
        "labels": dict(v.labels or {}),
        "containers": {"items": [{"id": c.id, "name": c.name, "state": c.state}
                                 for c in v.containers]},
        "created_at": v.created_at,
    }


def refresh_inventory(ctx: WorkerContext, with_sizes: bool = True) -> int:
    """Replace this host's inventory with what Docker reports now. Returns the count."""
    docker: DockerHost = ctx.docker
    volumes = docker.list_volumes(with_sizes=with_sizes)
    with ctx.db.session() as s:
        old = {v.name: v.size_bytes for v in hosts.list_volumes(s, ctx.host)}
        hosts.replace_inventory(s, ctx.host, [volume_row(v, old.get(v.name)) for v in volumes])
    return len(volumes)


class HostAgent:
    """Background loops of one host. ``start()`` returns at once; ``stop()`` joins."""

    def __init__(self, ctx: WorkerContext, inventory_every: float = 60.0) -> None:
        self.ctx = ctx
        self.inventory_every = inventory_every
        self.sweep_every = ctx.settings.sweep_seconds
        self._stop = threading.Event()
        self._dirty = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        try:
            register(self.ctx)
        except Exception:
            log.exception("host %s: registration failed; will retry", self.ctx.host)
        for target, name in ((self._loop, "agent"), (self._events, "agent-events")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        self._dirty.set()
        for t in self._threads:
            t.join(timeout=2)

    def _loop(self) -> None:
        s = self.ctx.settings
        last_inventory = last_sweep = 0.0
        import time

        while not self._stop.is_set():
            now = time.monotonic()
            try:
                if self._dirty.is_set():
                    self._dirty.clear()
                    refresh_inventory(self.ctx, with_sizes=False)
                if now - last_inventory >= self.inventory_every:
                    last_inventory = now
                    register(self.ctx)
                else:
                    with self.ctx.db.session() as sess:
                        hosts.touch_host(sess, self.ctx.host)
                if now - last_sweep >= self.sweep_every:
                    last_sweep = now
                    sweep(self.ctx)
                    recover_interrupted(self.ctx)
                    prune_safety_snapshots(self.ctx)
                    sweep_helper_containers(self.ctx)
            except Exception:
                log.exception("host agent iteration failed; retrying")
            self._dirty.wait(timeout=min(s.heartbeat_seconds, self.sweep_every))

    def _events(self) -> None:
        """Mark the inventory dirty on volume and container life-cycle events."""
        while not self._stop.is_set():
            try:
                for _event in self.ctx.docker.events(["volume", "container"]):
                    if self._stop.is_set():
                        return
                    self._dirty.set()
            except Exception as e:  # noqa: BLE001 - reconnect after a pause
                log.debug("docker events stream ended: %s", e)
            self._stop.wait(5)


def recover_interrupted(ctx: WorkerContext) -> list[str]:
    """Clean up after restores that were interrupted on this host (the worker died while
    writing): a replace is put back to its safety snapshot, a volume the restore created is
    removed, one it wrote into is emptied. Then the volume's lock is released."""
    with ctx.db.session() as sess:
        pending = [(j.id, j.volume, dict(j.result))
                   for j in jobs.interrupted_restores(sess, ctx.host)]
    recovered = []
    for job_id, volume, result in pending:
        try:
            outcome = _recover_one(ctx, volume, result)
        except VolkeeperError as e:
            log.error("could not recover volume %s after job %s: %s", volume, job_id, e)
            continue
        with ctx.db.session() as sess:
            job = jobs.get_job(sess, job_id)
            state_key = "replace_state" if "replace_state" in result else "restore_state"
            job.result = {**job.result, state_key: "recovered"}
            job.error = f"{job.error} — done: {outcome}"
            job.active_lock = None
        log.warning("job %s: %s", job_id, outcome)
        recovered.append(job_id)
    return recovered


def _recover_one(ctx: WorkerContext, volume: str, result: dict[str, Any]) -> str:
    from common.db import catalog
    from common.engine.replace import put_back
    from common.engine.restore import StoredBackup, undo
    from common.progress import NullTracker

    if result.get("replace_state") == "replacing":
        with ctx.db.session() as sess:
            safety = catalog.get_backup(sess, str(result["safety_backup_id"]))
            stored, target = StoredBackup.from_row(safety), safety.target
        backend = ctx.backend(target)
        try:
            put_back(ctx.docker, backend, stored, volume, ctx.settings, NullTracker())
        finally:
            backend.close()
        return f"volume {volume!r} was put back to its content from before the restore"
    created = bool(result.get("created_volume"))
    if not undo(ctx.docker, volume, created, ctx.settings):
        raise VolkeeperError(f"could not undo the interrupted restore into {volume!r}")
    return (f"the half-restored volume {volume!r} was removed" if created
            else f"the half-restored volume {volume!r} was emptied again")


def prune_safety_snapshots(ctx: WorkerContext) -> list[str]:
    """Delete this host's safety snapshots whose keeping time is over."""
    from common.db import catalog
    from common.db.models import utcnow

    with ctx.db.session() as sess:
        expired = [(b.id, b.target, b.key, b.manifest_key)
                   for b in catalog.expired_safety_snapshots(sess, ctx.host, utcnow())]
    pruned = []
    for backup_id, target, key, manifest_key in expired:
        try:
            backend = ctx.backend(target)
            try:
                backend.delete(manifest_key)
                backend.delete(key)
            finally:
                backend.close()
        except VolkeeperError as e:
            log.warning("could not prune safety snapshot %s: %s", backup_id, e)
            continue
        with ctx.db.session() as sess:
            sess.delete(catalog.get_backup(sess, backup_id))
        pruned.append(backup_id)
    return pruned


def sweep_helper_containers(ctx: WorkerContext) -> list[str]:
    """Remove helper containers of dead workers on this host (and any older than a day)."""
    removed = ctx.docker.sweep_helpers()
    for container_id in removed:
        log.warning("removed leftover helper container %s", container_id[:12])
    return removed


def sweep(ctx: WorkerContext) -> list[str]:
    s = ctx.settings
    with ctx.db.session() as sess:
        failed = jobs.sweep_stale(
            sess, running_after=timedelta(seconds=s.stale_job_seconds),
            queued_after=timedelta(seconds=s.queued_job_timeout_seconds))
    for job_id in failed:
        log.warning("job %s failed by the stale-job sweep", job_id)
    return failed

"""The host side of jobs: what a worker process does for its Docker host besides running
jobs. Each step has this one owner; ``loops.HostLoops`` schedules them in the background,
a one-shot embedded command runs ``arrive`` once.

- ``register``: the host row (Docker and worker version) — the host is online;
- ``heartbeat``: keeps it online between registrations;
- ``refresh_inventory``: the host's volumes as Docker reports them now;
- ``fail_orphaned``: running jobs of this host whose process on this machine is gone;
- ``recover_interrupted``: undo restores whose process died while writing, and start the
  containers a dead job had stopped (``common.hooks``) — only once that process is known
  dead (``owners.is_dead``), never because its heartbeat is late;
- ``leftovers.remove_leftovers``: archive objects a killed job stored but never cataloged;
- ``prune_safety_snapshots`` and ``sweep_helper_containers``: housekeeping.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from common import procs
from common.db import catalog, hosts, jobs
from common.db.models import utcnow
from common.errors import VolkeeperError
from common.jobs import owners
from common.jobs.context import JobContext
from common.jobs.host_rows import VERSION as VERSION
from common.jobs.host_rows import volume_row as volume_row
from common.jobs.leftovers import remove_leftovers

log = logging.getLogger(__name__)


def arrive(ctx: JobContext, *, with_sizes: bool) -> None:
    """What a process does as it starts working for its host: register it, take an
    inventory (``with_sizes=False``: keep the sizes measured before — Docker walks every
    file of every volume to measure them), fail the jobs of killed processes and clean up
    after their restores. Docker problems are logged as warnings, not raised."""
    if register(ctx):
        try:
            refresh_inventory(ctx, with_sizes=with_sizes)
        except VolkeeperError as e:
            log.warning("host %s: no volume inventory: %s", ctx.host, e)
    fail_orphaned(ctx)
    recover_interrupted(ctx)
    remove_leftovers(ctx)


def register(ctx: JobContext) -> bool:
    """Record this host (Docker version, worker version) as online. Returns whether Docker
    answered (the host is registered either way)."""
    docker_version: str | None
    try:
        docker_version = ctx.docker.version()
    except VolkeeperError as e:
        log.warning("host %s: %s", ctx.host, e)
        docker_version = None
    with ctx.db.session() as s:
        hosts.register_host(s, ctx.host, docker_version=docker_version,
                            worker_version=VERSION,
                            info={"docker_host": ctx.settings.docker_host},
                            worker=owners.worker_name(ctx.host))
    return docker_version is not None


def heartbeat(ctx: JobContext) -> None:
    """Keep this host online (``last_seen_at``)."""
    with ctx.db.session() as s:
        hosts.touch_host(s, ctx.host)


def refresh_inventory(ctx: JobContext, with_sizes: bool = True) -> int:
    """Replace this host's inventory with what Docker reports now. Returns the count."""
    volumes = ctx.docker.list_volumes(with_sizes=with_sizes)
    with ctx.db.session() as s:
        old = {v.name: v.size_bytes for v in hosts.list_volumes(s, ctx.host)}
        hosts.replace_inventory(s, ctx.host, [volume_row(v, old.get(v.name)) for v in volumes])
    return len(volumes)


def fail_orphaned(ctx: JobContext) -> list[str]:
    """Fail this host's running jobs whose worker process on this machine is gone (say a
    ``volkeeper backup`` that was killed): otherwise their volume lock would refuse the
    next job until the stale-job sweep, which a one-shot command never waits for."""
    with ctx.db.session() as s:
        failed = jobs.sweep_orphaned(s, ctx.host, socket.gethostname(), _pid_alive)
    for job_id in failed:
        log.warning("job %s failed: its worker process is gone", job_id)
    if failed:
        from common import notify

        notify.jobs_failed(ctx.db, ctx.settings, failed)
    return failed


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # this process may be running it (or reuses a dead worker's pid)
    return procs.pid_alive(pid)


def recover_interrupted(ctx: JobContext, only: str | None = None) -> list[str]:
    """Clean up after restores that were interrupted on this host (the worker died while
    writing): a replace is put back to its safety snapshot, a volume the restore created is
    removed, one it wrote into is emptied; containers a dead backup or replace had stopped
    are started again. Then the volume's lock is released. A restore
    whose process is not known dead (``owners.is_dead``) may still be writing: it is left
    alone (an operator who knows better releases it: ``volkeeper job ID --release``).
    ``only``: just that job."""
    with ctx.db.session() as s:
        found = [j for j in jobs.interrupted_restores(s, ctx.host)
                 if only is None or j.id == only]
        pending = []
        for j in found:
            if owners.is_dead(s, j):
                pending.append((j.id, j.volume, dict(j.result)))
            else:
                log.info("job %s: its worker %s is not known to be dead; volume %s is left "
                         "locked as it is", j.id, j.worker, j.volume)
    recovered = []
    for job_id, volume, result in pending:
        try:
            done = _recover_one(ctx, volume, result)
        except VolkeeperError as e:
            log.error("could not recover volume %s after job %s: %s", volume, job_id, e)
            continue
        from common.jobs import record

        record.recovered(ctx, job_id, done)
        log.warning("job %s: %s", job_id, done)
        recovered.append(job_id)
    return recovered


def _recover_one(ctx: JobContext, volume: str, result: dict[str, Any]) -> str:
    """Undo a half-done restore (if any), then start the containers the job stopped."""
    done = []
    if result.get("replace_state") == "replacing" or \
            result.get("restore_state") == "writing":
        done.append(_undo_restore(ctx, volume, result))
    stopped = result.get(jobs.STOPPED_KEY) or []
    if stopped:
        from common.hooks import start_again

        started = start_again(ctx.docker, stopped)
        done.append(f"containers {', '.join(started)} were started again" if started
                    else "the containers it had stopped were running (or gone) already")
    snapshots = result.get(jobs.SNAPSHOTS_KEY) or []
    if snapshots:
        from common.hooks.snapshots import drop_recorded

        dropped = [str(s.get("handle")) for s in snapshots if drop_recorded(s)]
        done.append(f"its snapshots {', '.join(dropped)} were dropped" if dropped
                    else "the snapshots it had taken were gone already")
    return "; ".join(done) or "the containers it had stopped were running again"


def _undo_restore(ctx: JobContext, volume: str, result: dict[str, Any]) -> str:
    from common.engine.records import StoredBackup
    from common.engine.replace import put_back
    from common.engine.restore import undo
    from common.progress import NullTracker

    if result.get("replace_state") == "replacing":
        with ctx.db.session() as s:
            safety = catalog.get_backup(s, str(result["safety_backup_id"]))
        with ctx.open_target(safety.target) as backend:
            put_back(ctx.docker, backend, StoredBackup.from_row(safety), volume,
                     ctx.settings_for(safety.target), NullTracker())
        return f"volume {volume!r} was put back to its content from before the restore"
    created = bool(result.get("created_volume"))
    if not undo(ctx.docker, volume, created, ctx.settings):
        raise VolkeeperError(f"could not undo the interrupted restore into {volume!r}",
                             "remove or empty the volume by hand, then restore again")
    return (f"the half-restored volume {volume!r} was removed" if created
            else f"the half-restored volume {volume!r} was emptied again")


def prune_safety_snapshots(ctx: JobContext) -> list[str]:
    """Forget this host's safety snapshots whose keeping time is over."""
    from common.engine.records import StoredBackup
    from common.engine.stored import forget
    from common.jobs import record

    with ctx.db.session() as s:
        expired = [(b.id, b.target, StoredBackup.from_row(b))
                   for b in catalog.expired_safety_snapshots(s, ctx.host, utcnow())]
    pruned = []
    for backup_id, target, stored in expired:
        try:
            with ctx.open_target(target) as backend:
                forget(backend, stored, ctx.settings_for(target))
        except VolkeeperError as e:
            log.warning("could not prune safety snapshot %s: %s", backup_id, e)
            continue
        record.forgotten(ctx, backup_id)
        pruned.append(backup_id)
    return pruned


def sweep_helper_containers(ctx: JobContext) -> list[str]:
    """Remove helper containers of dead workers on this host (and any older than a day)."""
    removed = ctx.docker.sweep_helpers()
    for container_id in removed:
        log.warning("removed leftover helper container %s", container_id[:12])
    return removed

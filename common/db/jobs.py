"""Job queries and the job state machine: queued → running → succeeded | failed.

A job holds ``active_lock = "host/volume"`` while queued or running; the unique index on it
makes a second job on the same volume fail atomically, which ``create_job`` turns into a
Conflict (HTTP 409). Finishing a job clears the lock.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from common.db.models import Job, JobState, utcnow
from common.errors import Conflict, NotFound


def lock_key(host: str, volume: str) -> str:
    return f"{host}/{volume}"


def new_lock_suffix() -> str:
    """A unique lock suffix for jobs that exclude nothing (read-only jobs)."""
    return uuid.uuid4().hex


def create_job(
    session: Session,
    *,
    kind: str,
    host: str,
    volume: str,
    target: str | None = None,
    backup_id: str | None = None,
    params: dict[str, Any] | None = None,
    requested_by: str | None = None,
    lock: str | None = None,
) -> Job:
    """Insert a queued job holding a lock — by default the volume's ("host/volume");
    Conflict if another active job holds it."""
    lock = lock or lock_key(host, volume)
    job = Job(
        kind=kind,
        host=host,
        volume=volume,
        target=target,
        backup_id=backup_id,
        params=params or {},
        requested_by=requested_by,
        active_lock=lock,
    )
    try:
        with session.begin_nested():
            session.add(job)
            session.flush()
    except sa_exc.IntegrityError:
        other = session.scalar(select(Job).where(Job.active_lock == lock))
        detail = f" (job {other.id}, {other.kind}, {other.state})" if other else ""
        what = (f"volume {volume!r} on host {host!r}" if lock == lock_key(host, volume)
                else f"target {target!r}" if lock == f"target/{target}"
                else f"{kind} of {backup_id or volume!r}")
        raise Conflict(
            f"{what} already has an active job{detail}",
            "wait for that job to finish (volkeeper job ID) and submit again",
        ) from None
    return job


def get_job(session: Session, job_id: str) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound("job", job_id, "list jobs with `volkeeper jobs` or GET /api/v1/jobs")
    return job


def list_jobs(
    session: Session,
    *,
    host: str | None = None,
    volume: str | None = None,
    state: JobState | None = None,
    kind: str | None = None,
    limit: int = 100,
) -> list[Job]:
    q = select(Job).order_by(Job.created_at.desc()).limit(limit)
    if host:
        q = q.where(Job.host == host)
    if volume:
        q = q.where(Job.volume == volume)
    if state:
        q = q.where(Job.state == state)
    if kind:
        q = q.where(Job.kind == kind)
    return list(session.scalars(q))


def active_jobs_on_backup(session: Session, backup_id: str, *, exclude: str) -> list[Job]:
    """Queued or running jobs (other than ``exclude``) that use the backup."""
    q = select(Job).where(Job.backup_id == backup_id, Job.id != exclude,
                          Job.state.in_((JobState.queued, JobState.running)))
    return list(session.scalars(q))


def start_job(session: Session, job_id: str, worker: str) -> Job | None:
    """Mark a queued job running. Returns None when it must not run (already finished, or
    already running elsewhere — a redelivered message after a worker died is failed here)."""
    job = session.get(Job, job_id, with_for_update=True)
    if job is None or job.state.finished:
        return None
    now = utcnow()
    if job.state == JobState.running:
        _finish(job, JobState.failed, error=(
            f"worker {job.worker} stopped while running this job; it was not retried "
            "automatically — submit it again"))
        return None
    job.state = JobState.running
    job.worker = worker
    job.started_at = now
    job.heartbeat_at = now
    return job


def heartbeat(session: Session, job_id: str, progress: dict[str, Any]) -> None:
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state == JobState.running)
        .values(progress=progress, heartbeat_at=utcnow())
    )


def update_result(session: Session, job_id: str, patch: dict[str, Any]) -> None:
    """Merge ``patch`` into the job's result (progress markers a crash must not lose)."""
    job = get_job(session, job_id)
    job.result = {**(job.result or {}), **patch}


def finish_job(
    session: Session,
    job_id: str,
    state: JobState,
    *,
    result: dict[str, Any] | None = None,
    error: str | None = None,
    backup_id: str | None = None,
    progress: dict[str, Any] | None = None,
) -> Job:
    job = get_job(session, job_id)
    _finish(job, state, result=result, error=error, progress=progress)
    if backup_id:
        job.backup_id = backup_id
    return job


def _finish(
    job: Job,
    state: JobState,
    *,
    result: dict[str, Any] | None = None,
    error: str | None = None,
    progress: dict[str, Any] | None = None,
) -> None:
    job.state = state
    job.finished_at = utcnow()
    job.active_lock = None
    if result is not None:
        job.result = result
    if error is not None:
        job.error = error
    if progress is not None:
        job.progress = progress


def sweep_stale(
    session: Session, *, running_after: timedelta, queued_after: timedelta
) -> list[str]:
    """Fail running jobs whose worker stopped reporting and queued jobs nobody picked up.
    Returns the ids of the jobs it failed."""
    now = utcnow()
    failed: list[str] = []
    running = select(Job).where(
        Job.state == JobState.running, Job.heartbeat_at < now - running_after
    )
    for job in session.scalars(running.with_for_update(skip_locked=True)):
        _fail_lost(job, f"worker {job.worker} stopped reporting (last heartbeat "
                        f"{_ago(now, job.heartbeat_at)} ago)")
        failed.append(job.id)
    queued = select(Job).where(Job.state == JobState.queued, Job.created_at < now - queued_after)
    for job in session.scalars(queued.with_for_update(skip_locked=True)):
        _finish(job, JobState.failed, error=(
            f"no worker for host {job.host} picked this job up within "
            f"{int(queued_after.total_seconds())}s; start `volkeeper worker --host {job.host}`"
            " and submit the job again"))
        failed.append(job.id)
    return failed


def sweep_orphaned(session: Session, host: str, machine: str,
                   alive: Callable[[int], bool]) -> list[str]:
    """Fail running jobs of ``host`` whose worker process ran on ``machine`` (this machine)
    and no longer exists — a killed CLI or worker cannot be running anything, so its jobs
    need not wait for their heartbeat to go stale. ``alive(pid)`` says whether a process
    exists. Returns the ids of the jobs it failed."""
    prefix = f"{host}@{machine}:"
    failed: list[str] = []
    running = select(Job).where(Job.host == host, Job.state == JobState.running)
    for job in session.scalars(running.with_for_update(skip_locked=True)):
        worker = job.worker or ""
        pid = worker[len(prefix):] if worker.startswith(prefix) else ""
        if not pid.isdigit() or alive(int(pid)):
            continue
        _fail_lost(job, f"worker {job.worker} is gone (its process no longer exists)")
        failed.append(job.id)
    return failed


def _fail_lost(job: Job, lost: str) -> None:
    """Fail a running job whose worker is lost; an interrupted restore keeps its volume
    locked until the host's worker has cleaned up (``common.jobs.host.recover_interrupted``)."""
    if (job.result or {}).get("replace_state") == "replacing":
        # the volume is half replaced: keep it locked until the host's worker has put
        # it back to the safety snapshot
        lock = job.active_lock
        _finish(job, JobState.failed, error=(
            f"{lost} while replacing the volume's content; the worker of host "
            f"{job.host} puts the volume back to its safety snapshot when it runs again"))
        job.active_lock = lock
    elif (job.result or {}).get("restore_state") == "writing":
        lock = job.active_lock
        undo = ("removes the half-restored volume" if job.result.get("created_volume")
                else "empties the half-restored volume again")
        _finish(job, JobState.failed, error=(
            f"{lost} while restoring into the volume; the worker of host {job.host} "
            f"{undo} when it runs again"))
        job.active_lock = lock
    else:
        _finish(job, JobState.failed, error=(
            f"{lost}; the job was abandoned — check the worker on host {job.host} and "
            "submit the job again"))


def interrupted_restores(session: Session, host: str) -> list[Job]:
    """Restores of ``host`` whose worker died while writing: their volume is still locked
    and awaits recovery (put back to the safety snapshot, or removed/emptied)."""
    q = select(Job).where(Job.host == host, Job.kind == "restore",
                          Job.state == JobState.failed, Job.active_lock.is_not(None))
    return [j for j in session.scalars(q)
            if (j.result or {}).get("replace_state") == "replacing"
            or (j.result or {}).get("restore_state") == "writing"]


def mark_recovered(session: Session, job_id: str, done: str) -> None:
    """An interrupted restore was cleaned up on its host (``done`` says how): note it on
    the failed job and release the volume's lock."""
    job = get_job(session, job_id)
    state_key = "replace_state" if "replace_state" in (job.result or {}) else "restore_state"
    job.result = {**(job.result or {}), state_key: "recovered"}
    job.error = f"{job.error} — done: {done}"
    job.active_lock = None


def _ago(now: datetime, then: datetime | None) -> str:
    if then is None:
        return "never"
    return f"{int((now - then).total_seconds())}s"

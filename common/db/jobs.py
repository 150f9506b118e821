"""Job queries and the job state machine: queued → running → succeeded | failed |
cancelled.

A job holds ``active_lock = "host/volume"`` while queued or running; the unique index on it
makes a second job on the same volume fail atomically, which ``create_job`` turns into a
Conflict (HTTP 409). Finishing a job clears the lock.

**Fencing.** A running job belongs to the worker process named in ``worker``: only that
process refreshes its heartbeat, records its outcome and finishes it (``heartbeat``,
``hold`` and ``finish_job(worker=…)`` touch the row only while it is running under that
name). Once the sweep, a redelivery check or an operator has failed the job, its process
is *fenced*: its heartbeat updates no row, which stops it (``common.jobs.runner``). All
times are the database server's (``common.db.clock``), never a worker's clock.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session, make_transient_to_detached

from common.db.clock import db_now
from common.db.clock import now as db_time
from common.db.kinds import GROUP_KIND, QUIET_KINDS
from common.db.models import Job, JobState, new_id
from common.db.paging import page_limit, page_offset
from common.errors import Conflict, NotFound, VolkeeperError


class Fenced(VolkeeperError):
    """This process no longer owns the job (failed by the sweep or an operator, or taken
    over): it must stop and record nothing."""

    code = "fenced"


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
        created_at=db_time(session),
    )
    if lock == lock_key(host, volume):
        group = group_holding(session, host, [volume])
        if group is not None:
            raise _in_group(host, volume, group)
    try:
        with session.begin_nested():
            session.add(job)
            session.flush()
    except sa_exc.IntegrityError:
        other = session.scalar(select(Job).where(Job.active_lock == lock))
        raise _busy(job, other) from None
    return job




def group_holding(session: Session, host: str, volumes: list[str]) -> Job | None:
    """The active group job of ``host`` that holds one of ``volumes``, if any."""
    q = select(Job).where(Job.host == host, Job.kind == GROUP_KIND,
                          Job.active_lock.is_not(None))
    wanted = set(volumes)
    return next((j for j in session.scalars(q)
                 if wanted & set((j.params or {}).get("volumes") or [])), None)


def _grouped_volumes(session: Session) -> dict[tuple[str, str], Job]:
    """(host, volume) of every volume an active group job holds, with that job."""
    q = select(Job).where(Job.kind == GROUP_KIND, Job.active_lock.is_not(None))
    return {(j.host, v): j for j in session.scalars(q)
            for v in (j.params or {}).get("volumes") or []}


def _in_group(host: str, volume: str, group: Job) -> Conflict:
    return Conflict(f"volume {volume!r} on host {host!r} is part of an active group "
                    f"backup (job {group.id}, {group.state})",
                    "wait for that job to finish (volkeeper job ID) and submit again")


def create_jobs(session: Session, specs: list[dict[str, Any]]) -> list[Job | Conflict]:
    """Many ``create_job``s (each spec its keyword arguments) in one INSERT: the locks are
    looked up first, and a held one (or one an earlier spec takes) gives the Conflict
    ``create_job`` would raise, in its place in the returned list. Should another
    transaction take a lock meanwhile, falls back to ``create_job`` one at a time. The
    jobs come back detached (not in ``session``), every column set."""
    now = db_time(session)
    rows = [{"id": new_id(), "state": JobState.queued, "kind": sp["kind"], "host": sp["host"],
             "volume": sp["volume"], "target": sp.get("target"),
             "backup_id": sp.get("backup_id"), "params": sp.get("params") or {},
             "progress": {}, "result": {}, "error": None,
             "requested_by": sp.get("requested_by"), "worker": None,
             "active_lock": sp.get("lock") or lock_key(sp["host"], sp["volume"]),
             "created_at": now, "started_at": None, "finished_at": None,
             "heartbeat_at": None, "cancel_requested_by": None} for sp in specs]
    keys = [r["active_lock"] for r in rows]
    held: dict[str, Job] = {}
    for k in range(0, len(keys), 500):
        held.update((str(j.active_lock), j) for j in session.scalars(
            select(Job).where(Job.active_lock.in_(keys[k:k + 500]))))
    grouped = _grouped_volumes(session)
    out: list[Job | Conflict] = []
    fresh = []
    for row in rows:
        job = Job(**row)
        other = held.get(row["active_lock"])
        if other is not None:
            out.append(_busy(job, other))
            continue
        group = grouped.get((job.host, job.volume))
        if group is not None and row["active_lock"] == lock_key(job.host, job.volume):
            out.append(_in_group(job.host, job.volume, group))
            continue
        held[row["active_lock"]] = job
        fresh.append(row)
        out.append(job)
    try:
        with session.begin_nested():
            if fresh:
                session.connection().execute(insert(Job), fresh)
    except sa_exc.IntegrityError:  # a lock taken since the look-up: one by one
        again: list[Job | Conflict] = []
        for sp in specs:
            try:
                again.append(create_job(session, **sp))
            except Conflict as e:
                again.append(e)
        return again
    for made in out:
        if isinstance(made, Job):
            make_transient_to_detached(made)
    return out


def _busy(job: Job, other: Job | None) -> Conflict:
    """The Conflict of ``job`` whose lock ``other`` holds."""
    detail = f" (job {other.id}, {other.kind}, {other.state})" if other else ""
    lock = job.active_lock
    what = (f"volume {job.volume!r} on host {job.host!r}"
            if lock == lock_key(job.host, job.volume)
            else f"target {job.target!r}" if lock == f"target/{job.target}"
            else f"{job.kind} of {job.backup_id or job.volume!r}")
    return Conflict(
        f"{what} already has an active job{detail}",
        "wait for that job to finish (volkeeper job ID) and submit again",
    )


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
    offset: int = 0,
) -> list[Job]:
    q = (select(Job).order_by(Job.created_at.desc()).offset(page_offset(offset))
         .limit(page_limit(limit)))
    if host:
        q = q.where(Job.host == host)
    if volume:
        q = q.where(Job.volume == volume)
    if state:
        q = q.where(Job.state == state)
    # a helper job is listed only when its kind is asked for
    q = q.where(Job.kind == kind) if kind else q.where(Job.kind.not_in(QUIET_KINDS))
    return list(session.scalars(q))


def active_jobs_on_backup(session: Session, backup_id: str, *, exclude: str) -> list[Job]:
    """Queued or running jobs (other than ``exclude``) that use the backup."""
    q = select(Job).where(Job.backup_id == backup_id, Job.id != exclude,
                          Job.state.in_((JobState.queued, JobState.running)))
    return list(session.scalars(q))


def start_job(session: Session, job_id: str, worker: str, *,
              stale_after: timedelta | None = None,
              owner_dead: Callable[[Job], bool] | None = None) -> Job | None:
    """Mark a queued job running under ``worker``. Returns None when it must not run: it
    has finished, or it is running — a redelivered message. A running job is failed only
    when its worker is known dead (``owner_dead(job)``) or its heartbeat is older than
    ``stale_after`` by the database's clock; a live worker's job is left alone (the
    duplicate message is dropped)."""
    job = session.get(Job, job_id, with_for_update=True)
    if job is None or job.state.finished:
        return None
    now = db_time(session)
    if job.state == JobState.running:
        if job.worker == worker:
            return None
        stale = (stale_after is not None and job.heartbeat_at is not None
                 and job.heartbeat_at < now - stale_after)
        if stale or (owner_dead is not None and owner_dead(job)):
            why = (f"stopped reporting (last heartbeat {_ago(now, job.heartbeat_at)} ago)"
                   if stale else "is gone")
            _fail_lost(job, f"worker {job.worker} {why}; the job was not retried "
                            "automatically", now)
        return None
    job.state = JobState.running
    job.worker = worker
    job.started_at = now
    job.heartbeat_at = now
    return job


def heartbeat(session: Session, job_id: str, progress: dict[str, Any],
              worker: str | None = None) -> bool:
    """Refresh a running job's heartbeat (database time) and progress. Returns False when
    no row was updated: the job is no longer running (under ``worker``, when given)."""
    q = update(Job).where(Job.id == job_id, Job.state == JobState.running)
    if worker is not None:
        q = q.where(Job.worker == worker)
    res = session.execute(q.values(progress=progress, heartbeat_at=db_now())
                          .execution_options(synchronize_session=False))
    return bool(res.rowcount)  # type: ignore[attr-defined]


def hold(session: Session, job_id: str, worker: str) -> Job:
    """Lock the job's row for this transaction if it still runs under ``worker``; raise
    ``Fenced`` otherwise. Outcomes (catalog rows) are written after it, in the same
    transaction, so a fenced job adds nothing."""
    job = session.get(Job, job_id, with_for_update=True, populate_existing=True)
    if job is None or job.state != JobState.running or job.worker != worker:
        raise Fenced(f"job {job_id} is no longer running under worker {worker}"
                     + (f" ({job.state}: {job.error})" if job is not None and job.error else ""),
                     "nothing of it was recorded; see the job (volkeeper job ID) and submit "
                     "it again if needed")
    return job


def whose(session: Session, job_id: str) -> str:
    """Why a job is not ours any more, for the log: its state, worker and error."""
    job = session.get(Job, job_id)
    if job is None:
        return "the job no longer exists"
    return f"it is {job.state} under worker {job.worker}" + (
        f": {job.error}" if job.error else "")


def update_result(session: Session, job_id: str, patch: dict[str, Any],
                  worker: str | None = None) -> None:
    """Merge ``patch`` into the job's result (progress markers a crash must not lose).
    With ``worker``: only while the job runs under it (else ``Fenced``)."""
    job = hold(session, job_id, worker) if worker is not None else get_job(session, job_id)
    job.result = {**(job.result or {}), **patch}


def finish_job(
    session: Session,
    job_id: str,
    state: JobState,
    *,
    worker: str | None = None,
    result: dict[str, Any] | None = None,
    error: str | None = None,
    backup_id: str | None = None,
    progress: dict[str, Any] | None = None,
) -> Job | None:
    """Give an unfinished job its outcome and release its lock. With ``worker`` (a job's
    own process): only ``running → state`` while the row still runs under ``worker``.
    Returns None when nothing changed — the job had finished or is not this worker's."""
    cond = [Job.id == job_id]
    if worker is not None:
        cond += [Job.state == JobState.running, Job.worker == worker]
    else:
        cond.append(Job.state.in_((JobState.queued, JobState.running)))
    values: dict[str, Any] = {"state": state, "finished_at": db_now(), "active_lock": None}
    for key, value in (("result", result), ("error", error), ("progress", progress),
                       ("backup_id", backup_id)):
        if value is not None:
            values[key] = value
    res = session.execute(update(Job).where(*cond).values(**values)
                          .execution_options(synchronize_session=False))
    if not res.rowcount:  # type: ignore[attr-defined]
        return None
    return session.get(Job, job_id, populate_existing=True)


def _finish(
    job: Job,
    state: JobState,
    now: datetime,
    *,
    result: dict[str, Any] | None = None,
    error: str | None = None,
    progress: dict[str, Any] | None = None,
) -> None:
    job.state = state
    job.finished_at = now
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
    Returns the ids of the jobs it failed. Judged by the database's clock."""
    now = db_time(session)
    failed: list[str] = []
    running = select(Job).where(
        Job.state == JobState.running, Job.heartbeat_at < now - running_after
    )
    for job in session.scalars(running.with_for_update(skip_locked=True)):
        _fail_lost(job, f"worker {job.worker} stopped reporting (last heartbeat "
                        f"{_ago(now, job.heartbeat_at)} ago)", now)
        failed.append(job.id)
    queued = select(Job).where(Job.state == JobState.queued, Job.created_at < now - queued_after)
    for job in session.scalars(queued.with_for_update(skip_locked=True)):
        _finish(job, JobState.failed, now, error=(
            f"no worker for host {job.host} picked this job up within "
            f"{int(queued_after.total_seconds())}s; start `volkeeper worker --host {job.host}`"
            " and submit the job again"))
        failed.append(job.id)
    return failed


def waiting_jobs(session: Session, *, older_than: timedelta) -> list[Job]:
    """Queued jobs created more than ``older_than`` ago (by the database's clock)."""
    now = db_time(session)
    q = select(Job).where(Job.state == JobState.queued, Job.created_at < now - older_than)
    return list(session.scalars(q))


def sweep_orphaned(session: Session, host: str, machine: str,
                   alive: Callable[[int], bool]) -> list[str]:
    """Fail running jobs — and queued jobs claimed by an in-process dispatcher
    (``claim_queued``) — of ``host`` whose worker process ran on ``machine`` (this machine)
    and no longer exists — a killed CLI or worker cannot be running anything, so its jobs
    need not wait for their heartbeat to go stale. ``alive(pid)`` says whether a process
    exists. Returns the ids of the jobs it failed."""
    prefix = f"{host}@{machine}:"
    failed: list[str] = []
    now = db_time(session)
    active = select(Job).where(Job.host == host,
                               Job.state.in_((JobState.running, JobState.queued)))
    for job in session.scalars(active.with_for_update(skip_locked=True)):
        worker = job.worker or ""
        pid = worker[len(prefix):] if worker.startswith(prefix) else ""
        if not pid.isdigit() or alive(int(pid)):
            continue
        if job.state == JobState.queued:  # claimed (``claim_queued``), never started
            _finish(job, JobState.failed, now, error=(
                f"the volkeeper process that was to run it ({job.worker}) is gone: it was "
                "killed before the job started; nothing was done, submit the job again"))
        else:
            _fail_lost(job, f"worker {job.worker} is gone (its process no longer exists)",
                       now)
        failed.append(job.id)
    return failed


def claim_queued(session: Session, job_id: str, worker: str) -> None:
    """Name ``worker`` (an in-process dispatcher: the process that will run it) on a queued
    job nobody claimed, so that ``sweep_orphaned`` fails it should that process be killed
    before the job starts (it would otherwise hold its volume's lock until the queued-job
    timeout)."""
    session.execute(update(Job).where(Job.id == job_id, Job.state == JobState.queued,
                                      Job.worker.is_(None)).values(worker=worker))


_RELEASE = (" (if it never comes back, release the volume's lock: "
            "volkeeper job ID --release, or POST /api/v1/jobs/ID/release)")


#: a job's result key: the containers it stopped and has not started again (``[{id,
#: name}]`` in stop order); a lost job keeps its lock until its host started them
STOPPED_KEY = "containers_to_start"
#: a job's result key: the filesystem snapshots it took and has not dropped yet (their
#: ``common.hooks.snapshots.Plan.record``); a lost job keeps its lock until its host
#: dropped them
SNAPSHOTS_KEY = "snapshots_to_drop"


def _left_behind(job: Job) -> bool:
    """Whether a lost job left containers stopped or snapshots to drop on its host."""
    result = job.result or {}
    return bool(result.get(STOPPED_KEY) or result.get(SNAPSHOTS_KEY))


def _stopped_note(job: Job) -> str:
    names = [c.get("name", "?") for c in (job.result or {}).get(STOPPED_KEY) or []]
    if not names:
        return ""
    return (f"; containers {', '.join(names)} were stopped for it: the worker of host "
            f"{job.host} starts them again once that process is known to have stopped")


def _fail_lost(job: Job, lost: str, now: datetime) -> None:
    """Fail a running job whose worker is lost (or late); an interrupted restore keeps its
    volume locked until the host's worker knows that process is dead and has cleaned up
    (``common.jobs.host.recover_interrupted``)."""
    if (job.result or {}).get("replace_state") == "replacing":
        # the volume is half replaced: keep it locked until the host's worker has put
        # it back to the safety snapshot
        lock = job.active_lock
        _finish(job, JobState.failed, now, error=(
            f"{lost} while replacing the volume's content; the worker of host "
            f"{job.host} puts the volume back to its safety snapshot once that process is "
            f"known to have stopped{_stopped_note(job)}{_RELEASE}"))
        job.active_lock = lock
    elif (job.result or {}).get("restore_state") == "writing":
        lock = job.active_lock
        undo = ("removes the half-restored volume" if job.result.get("created_volume")
                else "empties the half-restored volume again")
        _finish(job, JobState.failed, now, error=(
            f"{lost} while restoring into the volume; the worker of host {job.host} "
            f"{undo} once that process is known to have stopped{_stopped_note(job)}"
            f"{_RELEASE}"))
        job.active_lock = lock
    elif _left_behind(job):
        lock = job.active_lock  # the containers are down: no other job on the volume
        _finish(job, JobState.failed, now, error=f"{lost}{_stopped_note(job)}{_RELEASE}")
        job.active_lock = lock
    elif job.cancel_requested_by:  # it was to stop anyway: cancelled, not failed
        _finish(job, JobState.cancelled, now, error=(
            f"cancelled by {job.cancel_requested_by}; {lost} before it stopped"))
    else:
        _finish(job, JobState.failed, now, error=(
            f"{lost}; the job was abandoned — check the worker on host {job.host} and "
            "submit the job again"))


def interrupted_restores(session: Session, host: str) -> list[Job]:
    """Jobs of ``host`` whose worker died while writing or with containers stopped: their
    volume is still locked and awaits recovery (put back to the safety snapshot, or
    removed/emptied; the stopped containers started again)."""
    q = select(Job).where(Job.host == host,
                          Job.kind.in_(("restore", "backup", "cutover", GROUP_KIND)),
                          Job.state == JobState.failed, Job.active_lock.is_not(None))
    return [j for j in session.scalars(q)
            if (j.result or {}).get("replace_state") == "replacing"
            or (j.result or {}).get("restore_state") == "writing"
            # a lost job kept its lock for its stopped containers (even if its process,
            # late rather than dead, started them again since: the lock is still to free)
            or STOPPED_KEY in (j.result or {}) or SNAPSHOTS_KEY in (j.result or {})]


def mark_recovered(session: Session, job_id: str, done: str) -> None:
    """An interrupted restore was cleaned up on its host (``done`` says how): note it on
    the failed job and release the volume's lock."""
    job = get_job(session, job_id)
    result = dict(job.result or {})
    for key in (STOPPED_KEY, SNAPSHOTS_KEY):
        if key in result:
            result[key] = []
    if "replace_state" in result or "restore_state" in result:
        state_key = "replace_state" if "replace_state" in result else "restore_state"
        result[state_key] = "recovered"
    job.result = result
    job.error = f"{job.error} — done: {done}"
    job.active_lock = None


def _ago(now: datetime, then: datetime | None) -> str:
    if then is None:
        return "never"
    return f"{int((now - then).total_seconds())}s"


def request_cancel(session: Session, job_id: str, *, by: str) -> Job:
    """Cancel a job on behalf of ``by``. A queued job ends ``cancelled`` at once (its
    message, when it arrives, is dropped: it is no longer runnable); a running one is
    asked to stop: ``cancel_requested_by`` is set, its worker sees it with its next
    heartbeat and stops at the next safe point. ``Conflict`` for a finished job."""
    job = session.get(Job, job_id, with_for_update=True)
    if job is None:
        raise NotFound("job", job_id, "list jobs with `volkeeper jobs` or GET /api/v1/jobs")
    if job.state.finished:
        raise Conflict(f"job {job_id} ({job.kind}) has already finished: {job.state}",
                       "only a queued or running job can be cancelled")
    now = db_time(session)
    if job.state == JobState.queued:
        _finish(job, JobState.cancelled, now,
                error=f"cancelled by {by} at {now:%Y-%m-%d %H:%M:%S} UTC before it started")
    job.cancel_requested_by = job.cancel_requested_by or by
    return job


def cancel_requested(session: Session, job_id: str) -> str | None:
    """Who asked running job ``job_id`` to stop (None: nobody)."""
    by: str | None = session.scalar(select(Job.cancel_requested_by).where(Job.id == job_id))
    return by


def release(session: Session, job_id: str, *, by: str, reason: str | None = None) -> Job:
    """An operator's override for a stuck lock: fail the job (if it has not finished) with
    "released by operator …" and release its lock, without waiting for its worker. A
    process still running it is fenced: its next heartbeat stops it."""
    job = session.get(Job, job_id, with_for_update=True)
    if job is None:
        raise NotFound("job", job_id, "list jobs with `volkeeper jobs` or GET /api/v1/jobs")
    if job.active_lock is None:
        raise Conflict(f"job {job_id} ({job.kind}, {job.state}) holds no lock",
                       "nothing to release; submit the next job")
    now = db_time(session)
    note = (f"released by operator {by} at {now:%Y-%m-%d %H:%M:%S} UTC"
            + (f" ({reason})" if reason else ""))
    result = dict(job.result or {})
    partial = ""
    for key in ("replace_state", "restore_state"):
        if result.get(key) in ("replacing", "writing"):
            result[key] = "released"
            partial = (f"; volume {job.volume!r} on host {job.host} may hold a partial "
                       "restore: check it, then restore into it again"
                       + (f" (its safety snapshot is backup {result['safety_backup_id']})"
                          if result.get("safety_backup_id") else ""))
    names = [c.get("name", "?") for c in result.get(STOPPED_KEY) or []]
    if names:
        partial += (f"; containers {', '.join(names)} were stopped for it and may still be: "
                    "start them (docker start NAME)")
        result[STOPPED_KEY] = []
    if job.state.finished:
        job.error = f"{job.error} — {note}{partial}"
        job.active_lock = None
    else:
        _finish(job, JobState.failed, now, error=(
            f"{note} while {job.state} under worker {job.worker or '(none)'}{partial}"))
    job.result = result
    return job

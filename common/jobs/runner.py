"""Running one job: load it, mark it running, track progress, call its body, record the
outcome on the job row. Every path ends in a finished job row; no traceback reaches a user."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from common.db import JobState, jobs
from common.db.models import Job
from common.errors import VolkeeperError
from common.jobs.context import JobContext
from common.progress import ProgressTracker, Snapshot

log = logging.getLogger(__name__)


class Outcome(NamedTuple):
    """What a job body returns: the job row's result, and the backup it made (if any)."""

    result: dict[str, Any]
    backup_id: str | None = None


JobBody = Callable[[JobContext, Job, ProgressTracker], Outcome]


def worker_name(host: str) -> str:
    """``HOST@machine:pid`` — which worker of which Docker host ran a job."""
    return f"{host}@{socket.gethostname()}:{os.getpid()}"


class _Heartbeat:
    """Writes progress to the job row (every few seconds) — the stale-job sweep's signal."""

    def __init__(self, ctx: JobContext, job_id: str, every: float = 3.0) -> None:
        self.ctx, self.job_id, self.every = ctx, job_id, every
        self._last = 0.0

    def __call__(self, snap: Snapshot) -> None:
        now = time.monotonic()
        if now - self._last < self.every:
            return
        self._last = now
        with self.ctx.db.session() as s:
            jobs.heartbeat(s, self.job_id, snap)


def run_job(ctx: JobContext, job_id: str, body: JobBody) -> None:
    """Run ``body`` as job ``job_id`` on this host; a job that already ran is skipped."""
    with ctx.db.session() as s:
        job = jobs.start_job(s, job_id, worker_name(ctx.host))
    if job is None:
        log.info("job %s is not runnable any more; message dropped", job_id)
        return
    if job.host != ctx.host:
        fail_job(ctx, job_id, f"job for host {job.host!r} reached the worker of {ctx.host!r}")
        return
    tracker = ProgressTracker(job_id, ctx.bus, ctx.settings.progress_interval_seconds,
                              listeners=[_Heartbeat(ctx, job_id)])
    log.info("job %s (%s of %s on %s) started", job_id, job.kind, job.volume, job.host)
    try:
        with tracker:
            result, backup_id = body(ctx, job, tracker)
            tracker.finish()
    except VolkeeperError as e:
        log.warning("job %s failed: %s", job_id, e)
        fail_job(ctx, job_id, str(e), tracker.snapshot() | {"phase": "failed"},
                 result=getattr(e, "result", None))
        return
    except Exception as e:
        log.exception("job %s failed with an internal error", job_id)
        fail_job(ctx, job_id, f"internal error ({type(e).__name__}: {e}); see the worker "
                 f"log on host {ctx.host}", tracker.snapshot() | {"phase": "failed"})
        return
    final = tracker.snapshot()
    with ctx.db.session() as s:
        jobs.finish_job(s, job_id, JobState.succeeded, result=result, backup_id=backup_id,
                        progress=final)
    ctx.bus.publish(job_id, final | {"state": "succeeded"})
    log.info("job %s succeeded", job_id)


def fail_job(ctx: JobContext, job_id: str, error: str, progress: dict[str, Any] | None = None,
             result: dict[str, Any] | None = None, *, unless_finished: bool = False) -> None:
    """Record the failure of a job and publish it; never raises. ``unless_finished`` leaves
    a job alone that already has an outcome (a crash after its body recorded one)."""
    try:
        with ctx.db.session() as s:
            if unless_finished and jobs.get_job(s, job_id).state.finished:
                return
            jobs.finish_job(s, job_id, JobState.failed, error=error, progress=progress,
                            result=result)
    except Exception:
        log.exception("could not record the failure of job %s", job_id)
    with contextlib.suppress(Exception):
        ctx.bus.publish(job_id, (progress or {}) | {"state": "failed", "error": error})

"""Running one job: load it, mark it running, track progress, call the engine, record the
outcome. Every path ends in a finished job row; no traceback ever reaches the user."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from common.db import JobState, jobs
from common.db.models import Job
from common.errors import VolkeeperError
from common.progress import ProgressTracker, Snapshot
from workers.context import WorkerContext

log = logging.getLogger(__name__)

#: What a job body returns: (result dict for the job row, backup id or None)
Outcome = tuple[dict[str, Any], str | None]
JobBody = Callable[[WorkerContext, Job, ProgressTracker], Outcome]


def worker_name(host: str) -> str:
    """``HOST@machine:pid`` — which worker of which Docker host ran a job."""
    return f"{host}@{socket.gethostname()}:{os.getpid()}"


class _Heartbeat:
    """Writes progress to the job row (every few seconds) — the stale-job sweep's signal."""

    def __init__(self, ctx: WorkerContext, job_id: str, every: float = 3.0) -> None:
        self.ctx, self.job_id, self.every = ctx, job_id, every
        self._last = 0.0

    def __call__(self, snap: Snapshot) -> None:
        now = time.monotonic()
        if now - self._last < self.every:
            return
        self._last = now
        with self.ctx.db.session() as s:
            jobs.heartbeat(s, self.job_id, snap)


def run_job(ctx: WorkerContext, job_id: str, body: JobBody) -> None:
    with ctx.db.session() as s:
        job = jobs.start_job(s, job_id, worker_name(ctx.host))
    if job is None:
        log.info("job %s is not runnable any more; message dropped", job_id)
        return
    if job.host != ctx.host:
        _fail(ctx, job_id, f"job for host {job.host!r} reached the worker of {ctx.host!r}", {})
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
        _fail(ctx, job_id, str(e), tracker.snapshot() | {"phase": "failed"},
              result=getattr(e, "result", None))
        return
    except Exception as e:
        log.exception("job %s failed with an internal error", job_id)
        _fail(ctx, job_id, f"internal error ({type(e).__name__}: {e}); see the worker log "
              f"on host {ctx.host}", tracker.snapshot() | {"phase": "failed"})
        return
    final = tracker.snapshot()
    with ctx.db.session() as s:
        jobs.finish_job(s, job_id, JobState.succeeded, result=result, backup_id=backup_id,
                        progress=final)
    ctx.bus.publish(job_id, final | {"state": "succeeded"})
    log.info("job %s succeeded", job_id)


def _fail(ctx: WorkerContext, job_id: str, error: str, progress: dict[str, Any],
          result: dict[str, Any] | None = None) -> None:
    try:
        with ctx.db.session() as s:
            jobs.finish_job(s, job_id, JobState.failed, error=error, progress=progress,
                            result=result)
    except Exception:
        log.exception("could not record the failure of job %s", job_id)
    with contextlib.suppress(Exception):
        ctx.bus.publish(job_id, progress | {"state": "failed", "error": error})

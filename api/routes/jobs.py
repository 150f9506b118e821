"""Jobs: history, one job with live progress, and a Server-Sent Events stream."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import Field

from api.deps import Admin, AppState, DbSession, Operator, State, Viewer
from api.schemas import Input, JobOut
from common.db import Job, JobState, jobs
from common.errors import InvalidInput
from common.jobs import views
from common.jobs.release import cancel_job, release_job

router = APIRouter(prefix="/jobs", tags=["jobs"])


def job_out(job: Job, state: AppState) -> JobOut:
    return views.job_out(job, state.bus)


@router.get("", response_model=list[JobOut])
def list_jobs(session: DbSession, state: State, _user: Viewer, host: str | None = None,
              volume: str | None = None,
              only: Annotated[JobState | None, Query(alias="state")] = None,
              job_state: JobState | None = None,
              kind: str | None = None, limit: int = 100, offset: int = 0) -> list[JobOut]:
    """Jobs, newest first: ``limit`` rows (at most 1000) after skipping ``offset``;
    ``state`` (or its older name ``job_state``) only those in that state, ``kind`` only
    those of that kind (an unknown one is 422 naming the known kinds). Quick helper jobs
    (``browse``: a backup's directory listed) are left out unless ``kind`` asks for them."""
    if only and job_state and only != job_state:
        raise InvalidInput(f"state={only} and job_state={job_state} disagree",
                           "send one of them")
    return views.list_jobs(session, state.bus, host=host, volume=volume,
                           state=only or job_state,
                           kind=kind, limit=limit, offset=offset)


@router.get("/{job_id}", response_model=JobOut)
def get_job(job_id: str, session: DbSession, state: State, _user: Viewer) -> JobOut:
    return views.get_job(session, state.bus, job_id)


class ReleaseIn(Input):
    reason: str | None = Field(default=None, max_length=500,
                               description="why the lock is released (kept on the job)")


@router.post("/{job_id}/release", response_model=JobOut)
def release(job_id: str, state: State, user: Admin,
            body: ReleaseIn | None = None) -> JobOut:
    """Operator override for a stuck lock: fail the job ("released by operator …") and
    release its lock now, without waiting for its worker to be known dead. 409 when the
    job holds no lock."""
    job = release_job(state.db, job_id, by=user.name, reason=body.reason if body else None)
    return job_out(job, state)


@router.post("/{job_id}/cancel", response_model=JobOut)
def cancel(job_id: str, state: State, user: Operator) -> JobOut:
    """Cancel a queued or running job. A queued job ends ``cancelled`` at once; a running
    one is asked to stop and ends ``cancelled`` at its next safe point (within a few
    seconds; follow it with GET /jobs/{id}). 409 when the job has already finished."""
    return job_out(cancel_job(state.db, job_id, by=user.name), state)


def _load(job_id: str, state: AppState) -> tuple[Job, JobOut]:
    with state.db.session() as s:
        job = jobs.get_job(s, job_id)
        return job, job_out(job, state)


@router.get("/{job_id}/events")
def job_events(job_id: str, state: State, _user: Viewer,
               interval: float = 1.0) -> StreamingResponse:
    """``text/event-stream``: a ``progress`` event for every published progress snapshot
    (pushed through the progress bus as the worker publishes it), then one ``end`` event
    with the final job when it has finished. The job's state itself is read from the
    database every ``interval`` seconds (0.05 to 5)."""
    if not math.isfinite(interval):  # nan passed the clamp below: a stream without pauses
        raise InvalidInput(f"interval must be a number of seconds (got {interval!r})",
                           "give 0.05 to 5, e.g. interval=1")
    with state.db.session() as s:
        jobs.get_job(s, job_id)  # 404 before the stream starts
    interval = min(max(interval, 0.05), 5.0)

    async def stream() -> AsyncIterator[str]:
        sub = await asyncio.to_thread(state.bus.subscribe, job_id)
        last = None
        try:
            while True:
                job, out = await asyncio.to_thread(_load, job_id, state)
                snap = json.dumps(out.progress, sort_keys=True, default=str)
                if snap != last:
                    last = snap
                    yield f"event: progress\ndata: {snap}\n\n"
                if job.state.finished:
                    yield f"event: end\ndata: {out.model_dump_json()}\n\n"
                    return
                deadline = time.monotonic() + interval
                while (left := deadline - time.monotonic()) > 0:
                    pushed = await asyncio.to_thread(sub.next, left)
                    if pushed is None:
                        continue
                    snap = json.dumps(pushed, sort_keys=True, default=str)
                    if snap != last:
                        last = snap
                        yield f"event: progress\ndata: {snap}\n\n"
        finally:
            sub.close()

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

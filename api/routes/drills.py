"""Restore drills: restore into a scratch volume, compare with the backup, measure, clean up."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import DbSession, Operator, State, Viewer
from api.routes.jobs import job_out
from api.schemas import DrillIn, JobOut
from common.jobs import views

router = APIRouter(prefix="/drills", tags=["drills"])


@router.post("", response_model=JobOut, status_code=202)
def start_drill(body: DrillIn, state: State, user: Operator) -> JobOut:
    """Queue a drill. The job's result has ``passed``, ``restore_seconds`` (the measured
    recovery time), ``throughput_bytes_per_s`` and any differences found."""
    job = state.service.submit_drill(backup_id=body.backup_id, host=body.host,
                                     requested_by=user.name)
    return job_out(job, state)


@router.get("", response_model=list[JobOut])
def list_drills(session: DbSession, state: State, _user: Viewer, volume: str | None = None,
                limit: int = 100) -> list[JobOut]:
    """Drill history, newest first (optionally of one volume)."""
    return views.list_jobs(session, state.bus, volume=volume, kind="drill", limit=limit)

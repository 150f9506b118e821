"""Restore drills: restore into a scratch volume, compare with the backup, measure, clean up."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from api.deps import CurrentUser, DbSession, State
from api.routes.jobs import job_out
from api.schemas import JobOut
from common.db import jobs
from common.db.paging import page_limit

router = APIRouter(prefix="/drills", tags=["drills"])


class DrillIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    backup_id: str = Field(min_length=1, max_length=32)
    host: str | None = Field(default=None, max_length=200,
                             description="host to drill on (default: the backup's host)")


@router.post("", response_model=JobOut, status_code=202)
def start_drill(body: DrillIn, state: State, user: CurrentUser) -> JobOut:
    """Queue a drill. The job's result has ``passed``, ``restore_seconds`` (the measured
    recovery time), ``throughput_bytes_per_s`` and any differences found."""
    job = state.service.submit_drill(backup_id=body.backup_id, host=body.host,
                                     requested_by=user)
    return job_out(job, state)


@router.get("", response_model=list[JobOut])
def list_drills(session: DbSession, state: State, _user: CurrentUser, volume: str | None = None,
                limit: int = 100) -> list[JobOut]:
    """Drill history, newest first (optionally of one volume)."""
    return [job_out(j, state) for j in jobs.list_jobs(
        session, volume=volume, kind="drill", limit=page_limit(limit))]

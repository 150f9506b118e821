"""Restores: start one (a job)."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import Admin, Operator, State, require_role
from api.routes.jobs import job_out
from api.schemas import JobOut, RestoreIn, ValidationOut
from common.jobs.views import validation_out

router = APIRouter(prefix="/restores", tags=["restores"])


@router.post("", response_model=JobOut, status_code=202)
def start_restore(body: RestoreIn, state: State, user: Operator) -> JobOut:
    """Queue a restore of a backup into a new or empty volume (default: the original name
    on the backup's host). A non-empty target volume fails the job with a clear error.
    ``mode=replace`` needs the admin role."""
    if body.mode == "replace":
        require_role(user, "admin", "a replace-restore", state)
    if body.replace_database:
        require_role(user, "admin", "replacing a database", state)
    job = state.service.submit_restore(backup_id=body.backup_id, into=body.into,
                                       host=body.host, requested_by=user.name, mode=body.mode,
                                       stop_containers=body.stop_containers, paths=body.paths,
                                       dump_into=body.dump_into, dump_from=body.dump_from,
                                       database=body.database,
                                       replace_database=body.replace_database)
    return job_out(job, state)


@router.post("/{job_id}/rollback", response_model=JobOut, status_code=202)
def rollback(job_id: str, state: State, user: Admin) -> JobOut:
    """Undo a completed ``replace`` restore within the safety window: its safety snapshot
    is restored over the volume (itself as a safe replace)."""
    return job_out(state.service.rollback(restore_job_id=job_id, requested_by=user.name), state)


@router.post("/validate", response_model=ValidationOut)
def validate_restore(body: RestoreIn, state: State, user: Operator) -> ValidationOut:
    """Dry run: check the backup's objects, the target volume (missing / empty / not empty,
    containers using it), host online and free space — on the target host, without changing
    anything. The same checks run again at the start of the real restore."""
    job = state.service.validate_restore(backup_id=body.backup_id, into=body.into,
                                         host=body.host, requested_by=user.name, mode=body.mode,
                                         stop_containers=body.stop_containers,
                                         paths=body.paths)
    return validation_out(job)

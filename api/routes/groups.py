"""Volume groups: back up a Compose project's volumes (or a named set) as one job in one
stop window, list a group's backups, restore a group together (``common.jobs.groups``)."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import DbSession, Operator, State, Viewer, require_role
from api.routes.jobs import job_out
from api.schemas import BackupOut, JobOut
from common.db import Job
from common.db.kinds import GROUP_KIND
from common.errors import NotFound
from common.jobs import views
from common.jobs.groups import GroupBackupIn, GroupJobs, GroupRestoreIn

router = APIRouter(prefix="/groups", tags=["groups"])


@router.post("", response_model=JobOut, status_code=202)
def start_group_backup(body: GroupBackupIn, state: State, user: Operator) -> JobOut:
    """Queue one backup job for all volumes of a Compose project (``project``) or of a
    named set (``name`` + ``volumes``): the containers using any of them stop once (when
    asked or labelled), in Compose dependency order, and start again in reverse; one
    backup per volume, tied together by the job's id as ``group_id``. 409 if one of the
    volumes has an active job."""
    return job_out(GroupJobs(state.service).submit_backup(g=body, requested_by=user.name),
                   state)


@router.get("/{group_id}", response_model=list[BackupOut])
def get_group(group_id: str, session: DbSession, _user: Viewer) -> list[BackupOut]:
    """The backups of a group (one per volume); 404 for an id no group job has (a group
    job that failed has none: an empty list)."""
    made = views.list_backups(session, group=group_id)
    job = session.get(Job, group_id)
    if not made and (job is None or job.kind != GROUP_KIND):
        raise NotFound("group", group_id, "a group's id is the id of the job that backed it "
                       "up (`volkeeper backups`, column group; GET /api/v1/backups)")
    return made


@router.post("/{group_id}/restore", response_model=list[JobOut], status_code=202)
def restore_group(group_id: str, state: State, user: Operator,
                  body: GroupRestoreIn | None = None) -> list[JobOut]:
    """Queue one restore per member of the group, into each member's own volume (or
    ``<volume><suffix>``), each with the checks and safety of a single restore.
    ``mode=replace`` needs the admin role."""
    body = body or GroupRestoreIn()
    if body.mode == "replace":
        require_role(user, "admin", "a replace-restore", state)
    made = GroupJobs(state.service).submit_restore(group_id=group_id, r=body,
                                                   requested_by=user.name)
    return [job_out(j, state) for j in made]

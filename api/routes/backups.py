"""Backups: start one (a job), list and show the catalog."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from api.deps import CurrentUser, DbSession, State
from api.routes.jobs import job_out
from api.schemas import BackupIn, BackupOut, JobOut
from common.db import Backup, catalog
from common.jobs.names import REPO_FORMAT

router = APIRouter(prefix="/backups", tags=["backups"])


def backup_out(b: Backup) -> BackupOut:
    out = BackupOut.model_validate(b, from_attributes=True)
    out.tags = list(b.tags or [])
    out.snapshot_id = b.checksum if b.format == REPO_FORMAT else None
    return out


@router.post("", response_model=JobOut, status_code=202)
def start_backup(body: BackupIn, state: State, user: CurrentUser) -> JobOut:
    """Queue a backup of a volume; returns the job. 409 if the volume has an active job."""
    job = state.service.submit_backup(volume=body.volume, host=body.host, target=body.target,
                                      fmt=body.format, requested_by=user)
    return job_out(job, state)


@router.get("", response_model=list[BackupOut])
def list_backups(session: DbSession, _user: CurrentUser, host: str | None = None,
                 volume: str | None = None, target: str | None = None,
                 kind: str = "backup", tag: str | None = None, pinned: bool | None = None,
                 limit: int = 200) -> list[BackupOut]:
    """Backups, newest first. ``kind=safety`` lists the safety snapshots of replace-restores
    instead; ``kind=all`` both. ``tag`` and ``pinned`` filter by label."""
    return [backup_out(b) for b in catalog.list_backups(
        session, host=host, volume=volume, target=target, limit=limit,
        kind=None if kind == "all" else kind, tag=tag, pinned=pinned)]


class VerifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    read_data: bool = Field(
        default=False, description="repo snapshots: read back, decrypt and re-hash every "
        "blob the snapshot references (default: a structure check). Archives are always "
        "read whole.")
    subset: str | float | None = Field(
        default=None, description="repo snapshots: read back a random share of the "
        "snapshot's packs, in percent (\"5%\" or 5). Refused for archives.")
    seed: int | None = Field(default=None, ge=0, lt=2**32,
                             description="seed of the subset's random choice (reported "
                             "in the result; random when not given)")


@router.post("/{backup_id}/verify", response_model=JobOut, status_code=202)
def verify_backup(backup_id: str, state: State, user: CurrentUser,
                  host: str | None = None, body: VerifyIn | None = None) -> JobOut:
    """Queue a verification. Archives: checksum, full decompression, every member compared
    with the manifest. Repo snapshots: a structure check of the snapshot (trees, every
    referenced blob indexed, its packs present and intact), with ``read_data`` all of its
    data read back, with ``subset`` a random share of its packs. The job fails (naming
    each damaged object and file) on damage; the outcome is also kept on the backup
    (``verify_status``, ``verified_at``)."""
    body = body or VerifyIn()
    job = state.service.submit_verify(backup_id=backup_id, host=host, requested_by=user,
                                      read_data=body.read_data, subset=body.subset,
                                      seed=body.seed)
    return job_out(job, state)


@router.get("/{backup_id}", response_model=BackupOut)
def get_backup(backup_id: str, session: DbSession, _user: CurrentUser) -> BackupOut:
    return backup_out(catalog.get_backup(session, backup_id))

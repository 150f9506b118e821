"""Backups: start one (a job), list and show the catalog."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import DbSession, Operator, State, Viewer
from api.routes.jobs import job_out
from api.schemas import BackupIn, BackupOut, JobOut, VerifyIn
from common.errors import InvalidInput
from common.jobs import views
from common.jobs.views import BackedUpVolumeOut

router = APIRouter(prefix="/backups", tags=["backups"])


@router.post("", response_model=JobOut, status_code=202)
def start_backup(body: BackupIn, state: State, user: Operator) -> JobOut:
    """Queue a backup of a volume; returns the job. 409 if the volume has an active job."""
    job = state.service.submit_backup(volume=body.volume, host=body.host, target=body.target,
                                      fmt=body.format, requested_by=user.name,
                                      stop_containers=body.stop_containers,
                                      excludes=body.excludes, snapshot=body.snapshot,
                                      dump=body.dump, dump_databases=body.dump_databases)
    return job_out(job, state)


@router.get("", response_model=list[BackupOut])
def list_backups(session: DbSession, _user: Viewer, host: str | None = None,
                 volume: str | None = None, target: str | None = None,
                 kind: str = "backup", tag: str | None = None, pinned: bool | None = None,
                 limit: int = 200, offset: int = 0, group: str | None = None
                 ) -> list[BackupOut]:
    """Backups, newest first. ``kind=safety`` lists the safety snapshots of replace-restores
    instead; ``kind=all`` both. ``tag`` and ``pinned`` filter by label, ``group`` by the
    group job that made them (``group_id``). ``limit`` rows (at most 1000) after skipping
    ``offset``."""
    return views.list_backups(session, host=host, volume=volume, target=target, kind=kind,
                              tag=tag, pinned=pinned, limit=limit, offset=offset,
                              group=group)


@router.get("/volumes", response_model=list[BackedUpVolumeOut])
def backed_up_volumes(session: DbSession, _user: Viewer) -> list[BackedUpVolumeOut]:
    """Every volume that has backups — also one removed from its host since — with how
    many and when the newest was taken (what the restore wizard offers first)."""
    return views.backed_up_volumes(session)


@router.post("/{backup_id}/verify", response_model=JobOut, status_code=202)
def verify_backup(backup_id: str, state: State, user: Operator,
                  host: str | None = None, body: VerifyIn | None = None) -> JobOut:
    """Queue a verification. Archives: checksum, full decompression, every member compared
    with the manifest. Repo snapshots: a structure check of the snapshot (trees, every
    referenced blob indexed, its packs present and intact), with ``read_data`` all of its
    data read back, with ``subset`` a random share of its packs. The job fails (naming
    each damaged object and file) on damage; the outcome is also kept on the backup
    (``verify_status``, ``verified_at``)."""
    body = body or VerifyIn()
    if host and body.host and host != body.host:
        raise InvalidInput(f"two hosts named: ?host={host} and body host {body.host!r}",
                           "name the host once (in the body, as the other operations do)")
    job = state.service.submit_verify(backup_id=backup_id, host=host or body.host,
                                      requested_by=user.name,
                                      read_data=body.read_data, subset=body.subset,
                                      seed=body.seed)
    return job_out(job, state)


@router.get("/{backup_id}", response_model=BackupOut)
def get_backup(backup_id: str, session: DbSession, _user: Viewer) -> BackupOut:
    return views.get_backup(session, backup_id)

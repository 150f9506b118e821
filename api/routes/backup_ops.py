"""Operations on one stored backup: tag and pin (PATCH), forget (DELETE), copy, and the
listing of one of its directories (the restore wizard's tree)."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import Admin, Operator, State
from api.routes.jobs import job_out
from api.schemas import BackupPatch, CopyIn, JobOut, LabelOut
from common.jobs.views import TreeOut, backup_out

router = APIRouter(prefix="/backups", tags=["backups"])


@router.patch("/{backup_id}", response_model=LabelOut)
def label_backup(backup_id: str, body: BackupPatch, state: State, user: Operator
                 ) -> LabelOut:
    """Add/remove tags and pin/unpin. The catalog changes at once; for a ``repo`` backup a
    job also writes the change into its repository snapshot (``job``), so the repository
    alone — without this database — knows its tags and pins."""
    row, job = state.service.label_backup(
        backup_id=backup_id, add=body.add_tags, remove=body.remove_tags, pinned=body.pinned,
        host=body.host, requested_by=user.name)
    return LabelOut(backup=backup_out(row), job=job_out(job, state) if job else None)


@router.delete("/{backup_id}", response_model=JobOut, status_code=202)
def forget_backup(backup_id: str, state: State, user: Admin,
                  host: str | None = None) -> JobOut:
    """Queue the deletion of a backup: its stored objects, then its catalog row. 409 for a
    pinned backup or one another job uses. For a ``repo`` backup only the snapshot goes;
    prune the target to reclaim the data nothing else references."""
    return job_out(state.service.forget_backup(backup_id=backup_id, host=host,
                                               requested_by=user.name), state)


@router.post("/{backup_id}/copy", response_model=JobOut, status_code=202)
def copy_backup(backup_id: str, body: CopyIn, state: State, user: Operator) -> JobOut:
    """Queue a copy to another target through a worker; the job's result names the new
    backup (``copy_backup_id``)."""
    return job_out(state.service.copy_backup(backup_id=backup_id, target=body.target,
                                             host=body.host, requested_by=user.name), state)


@router.get("/{backup_id}/tree", response_model=TreeOut)
def backup_tree(backup_id: str, state: State, user: Operator, path: str = "",
                host: str | None = None) -> TreeOut:
    """One directory level of a backup (``path`` inside the volume; empty: its root), read
    from its manifest or snapshot by a worker that reaches the target: each entry's name,
    type (dir, file, symlink …), size and mtime, directories first; ``more`` counts the
    entries past the first 2,000. 404 for a path not in the backup, 422 for a file."""
    listing = state.service.browse_backup(backup_id=backup_id, path=path, host=host,
                                          requested_by=user.name)
    return TreeOut(backup_id=backup_id, **listing)

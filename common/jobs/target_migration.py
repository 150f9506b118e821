"""Moving backups from one target to another (``volkeeper migrate-target FROM TO``): one
job that copies every regular backup of FROM (or of the ``--volume``s named) to TO the way
``volkeeper copy`` does — a repository snapshot with its blobs, not re-chunked; an archive
and its manifest object by object — catalogs each copy as a new backup row (same volume,
time, tags and pin), reads each copy back in full, and only then, with ``delete_source``,
forgets the original (a pinned one is kept and named).

It is resumable: a backup whose copy the destination's catalog already holds (an archive
with the same sha256; a snapshot of the same host, volume and time) is not copied again,
only verified (and deleted at the source when asked). Both targets are checked before
anything is copied: an unreachable one fails the job with nothing deleted. The job's
progress names the backup it is on; its result is the summary, one entry per backup.
It is queued by ``OperationsService.migrate_target``.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from common.db import Backup, Job, catalog
from common.engine import stored
from common.engine import verify as verify_engine
from common.engine.records import StoredBackup
from common.errors import Damaged, StorageError
from common.formats import traits_of
from common.jobs import record
from common.jobs.context import JobContext, target_errors
from common.jobs.runner import Outcome
from common.progress import ProgressTracker


@dataclass
class Moved:
    """What happened to one backup."""

    source_backup_id: str
    volume: str
    copy_backup_id: str = ""
    copied: bool = False  # False: the destination held it already (a resumed run)
    verified: bool = False
    deleted: bool = False
    note: str = ""


def migrate(ctx: JobContext, job: Job, tracker: ProgressTracker) -> Outcome:
    """The job body: check both targets, then per backup copy, verify, delete."""
    src_name, dst_name = job.target or "", str(job.params["destination"])
    delete_source = bool(job.params.get("delete_source"))
    with ctx.db.session() as s:
        q = select(Backup).where(Backup.target == src_name, Backup.kind == "backup")
        if job.params.get("volumes"):
            q = q.where(Backup.volume.in_(job.params["volumes"]))
        todo = list(s.scalars(q.order_by(Backup.created_at, Backup.id)))
    tracker.set_phase("connecting")
    moved: list[Moved] = []
    with contextlib.ExitStack() as stack:
        src = stack.enter_context(ctx.open_target(src_name))
        dst = stack.enter_context(ctx.open_target(dst_name))
        for name, backend in ((src_name, src), (dst_name, dst)):
            with target_errors(name):
                backend.check()  # an unreachable target is named before anything moves
        for n, b in enumerate(todo, 1):
            tracker.set_phase(f"backup {n}/{len(todo)}: {b.host}/{b.volume} {b.id}")
            m = Moved(source_backup_id=b.id, volume=b.volume)
            moved.append(m)
            with ctx.db.session() as s:
                there = _copy_on(s, b, dst_name)
            if there is None:
                try:
                    out = stored.copy_backup(
                        src, dst, StoredBackup.from_row(b),
                        src_settings=ctx.settings_for(src_name),
                        dst_settings=ctx.settings_for(dst_name), tracker=tracker)
                except StorageError as e:
                    raise type(e)(f"copy of backup {b.id} from target {src_name!r} to "
                                  f"{dst_name!r}: {e.message}", e.hint) from e
                m.copy_backup_id, already = record.copy(ctx, job, b, dst_name, out)
                m.copied = not already
            else:
                m.copy_backup_id = there.id
            _verify_copy(ctx, job, dst, dst_name, m, tracker)
            if delete_source:
                _delete_source(ctx, src, src_name, b, m)
    return Outcome(_summary(src_name, dst_name, delete_source, moved))


def _copy_on(s: Session, b: Backup, target: str) -> Backup | None:
    """The catalog row of ``b``'s copy on ``target``, None when there is none yet: an
    archive with the same sha256 and key, a snapshot of the same host, volume and time."""
    if traits_of(b.format).archive:
        return catalog.find_stored_backup(s, target, checksum=b.checksum, key=b.key)
    return s.scalar(select(Backup).where(
        Backup.target == target, Backup.host == b.host, Backup.volume == b.volume,
        Backup.format == b.format, Backup.created_at == b.created_at).limit(1))


def _verify_copy(ctx: JobContext, job: Job, dst: Any, dst_name: str, m: Moved,
                 tracker: ProgressTracker) -> None:
    """Read the copy back whole; a damaged copy stops the job (its source stays)."""
    with ctx.db.session() as s:
        copy_row = catalog.get_backup(s, m.copy_backup_id)
    out = verify_engine.verify_backup(dst, StoredBackup.from_row(copy_row), tracker,
                                      ctx.settings_for(dst_name), read_data=True)
    record.verification(ctx, job, copy_row.id, out)
    if not out.ok:
        raise Damaged(f"the copy {copy_row.id} of backup {m.source_backup_id} on target "
                      f"{dst_name!r} does not verify: {out.summary()}; nothing of it was "
                      "deleted at the source", out.as_result(),
                      "forget the damaged copy (volkeeper forget ID) and run the "
                      "migration again")
    m.verified = True


def _delete_source(ctx: JobContext, src: Any, src_name: str, b: Backup, m: Moved) -> None:
    if b.pinned:
        m.note = "pinned: kept at the source"
        return
    with target_errors(src_name):
        stored.forget(src, StoredBackup.from_row(b), ctx.settings_for(src_name))
    record.forgotten(ctx, b.id)
    m.deleted = True


def _summary(src: str, dst: str, delete_source: bool, moved: list[Moved]) -> dict[str, Any]:
    return {"source": src, "destination": dst, "delete_source": delete_source,
            "backups": len(moved), "copied": sum(m.copied for m in moved),
            "already_there": sum(not m.copied for m in moved),
            "verified": sum(m.verified for m in moved),
            "deleted": sum(m.deleted for m in moved),
            "kept_pinned": sum(bool(m.note) for m in moved),
            "items": [asdict(m) for m in moved]}

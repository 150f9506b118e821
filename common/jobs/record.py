"""Recording what jobs did: the catalog rows of backups, safety snapshots, copies and
adopted snapshots, a verification's status on its backup, and the restore markers a crash
must not lose. Job bodies hand over the engine's typed outcomes; the catalog is written
only after the storage side succeeded, and only while the job still runs under its worker
(``_ours``: the job row is held in the same transaction, so a fenced job adds nothing)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from common.db import Backup, catalog, jobs
from common.db.jobs import SNAPSHOTS_KEY, STOPPED_KEY
from common.db.models import Job, utcnow
from common.engine.records import BackupOutcome, CopyOutcome, VerifyOutcome
from common.jobs.context import JobContext
from common.jobs.dump_records import held_dumps
from common.jobs.names import REPO_FORMAT
from common.jobs.owners import worker_name
from common.repository import ids

log = logging.getLogger(__name__)


def _ours(s: Session, job: Job) -> None:
    """Hold ``job``'s row for this transaction; ``jobs.Fenced`` when it is no longer
    running under its worker (failed by the sweep or an operator meanwhile)."""
    jobs.hold(s, job.id, job.worker or "")


def backup(ctx: JobContext, job: Job, out: BackupOutcome,
           dumps: Sequence[dict[str, Any]] | None = None) -> str:
    """Catalog a backup of ``job``'s volume to its target (``dumps``: the runs of the
    database dumps it holds); returns the backup's id."""
    assert job.target is not None
    with ctx.db.session() as s:
        _ours(s, job)
        return catalog.add_backup(s, job_id=job.id, host=job.host, volume=job.volume,
                                  target=job.target, dumps=held_dumps(dumps),
                                  **_stored(out)).id


def group_members(ctx: JobContext, job: Job, stored: Sequence[tuple[str, BackupOutcome]],
                  dumps: dict[str, list[dict[str, Any]]] | None = None) -> list[str]:
    """Catalog the backups of a group job (``(volume, outcome)`` each) in one
    transaction, tied together by ``group_id`` = the job's id (``dumps``: the dump runs
    of each volume read as dumps); returns their ids."""
    assert job.target is not None
    with ctx.db.session() as s:
        _ours(s, job)
        return [catalog.add_backup(s, job_id=job.id, host=job.host, volume=volume,
                                   target=job.target, group_id=job.id,
                                   dumps=held_dumps((dumps or {}).get(volume)),
                                   **_stored(out)).id
                for volume, out in stored]


def safety_snapshot(ctx: JobContext, job: Job, target: str, out: BackupOutcome) -> str:
    """Catalog the safety snapshot a replace took (kind "safety", with its expiry) and
    mark the job as replacing, in one transaction: from here on a crash is rolled back to
    that snapshot by the host (``host.recover_interrupted``). Returns its backup id."""
    expires = utcnow() + timedelta(hours=ctx.settings.safety_snapshot_hours)
    with ctx.db.session() as s:
        _ours(s, job)
        row = catalog.add_backup(s, job_id=job.id, host=job.host, volume=job.volume,
                                 target=target, kind="safety", expires_at=expires,
                                 **_stored(out))
        jobs.update_result(s, job.id, {"safety_backup_id": row.id,
                                       "replace_state": "replacing"})
        return row.id


def restore_writing(ctx: JobContext, job_id: str, created: bool) -> None:
    """Before data lands in the volume: what a crash from here on leaves to undo. Raises
    ``jobs.Fenced`` (nothing is written) when the job is no longer this process's."""
    with ctx.db.session() as s:
        jobs.update_result(s, job_id, {"restore_state": "writing", "created_volume": created},
                           worker=worker_name(ctx.host))


def containers_stopping(ctx: JobContext, job_id: str, containers: Sequence[Any]) -> None:
    """Before containers are stopped for a job: which ones (``ContainerRef``s, in stop
    order), so the host's recovery starts them again if the job's process dies. Raises
    ``jobs.Fenced`` (nothing is stopped) when the job is no longer this process's."""
    with ctx.db.session() as s:
        jobs.update_result(s, job_id, {STOPPED_KEY: [{"id": c.id, "name": c.name}
                                                     for c in containers]},
                           worker=worker_name(ctx.host))


def containers_started(ctx: JobContext, job_id: str) -> None:
    """The containers a job stopped all run again: nothing left for a recovery."""
    with ctx.db.session() as s:
        jobs.update_result(s, job_id, {STOPPED_KEY: []})


def snapshots_taking(ctx: JobContext, job_id: str, records: Sequence[dict[str, Any]]
                     ) -> None:
    """Before a filesystem snapshot is taken for a job (and once it is dropped: an empty
    list): the ones not dropped yet, so the host's recovery drops them if the job's
    process dies. Raises ``jobs.Fenced`` (nothing is taken) when the job is no longer
    this process's."""
    with ctx.db.session() as s:
        jobs.update_result(s, job_id, {SNAPSHOTS_KEY: list(records)},
                           worker=worker_name(ctx.host) if records else None)


def verification(ctx: JobContext, job: Job, backup_id: str, out: VerifyOutcome) -> None:
    """Keep a verification's outcome on the backup; a partial check does not read as a
    full one in listings."""
    _verify_status(ctx, job, backup_id, "damaged" if not out.ok else
                   "ok" if out.scope in ("full", "read-data") else f"ok ({out.scope})")


def _verify_status(ctx: JobContext, job: Job, backup_id: str, status: str) -> None:
    with ctx.db.session() as s:
        _ours(s, job)
        catalog.record_verification(s, backup_id, status=status, job_id=job.id, at=utcnow())


def damage_found(ctx: JobContext, job: Job, backup_id: str) -> None:
    """A restore or drill found ``backup_id``'s stored data damaged: kept on the backup as a
    failed verification's outcome is (best effort: the job's own error comes first)."""
    try:
        _verify_status(ctx, job, backup_id, "damaged")
    except Exception:  # the job fails with its own error either way
        log.warning("could not mark backup %s damaged after job %s", backup_id, job.id,
                    exc_info=True)


def copy(ctx: JobContext, job: Job, source: Backup, destination: str,
         out: CopyOutcome) -> tuple[str, bool]:
    """Catalog a copy of ``source`` on ``destination``. Returns its backup id and whether
    the destination held it already (the same snapshot or archive: no second row)."""
    with ctx.db.session() as s:
        _ours(s, job)
        known = catalog.find_stored_backup(s, destination, checksum=out.checksum,
                                           snapshot_id=out.snapshot_id, key=out.key)
        if known is not None:
            return known.id, True
        row = catalog.add_backup(
            s, job_id=job.id, host=source.host, volume=source.volume, target=destination,
            format=source.format, key=out.key, manifest_key=out.manifest_key,
            stored_bytes=out.stored_bytes, logical_bytes=source.logical_bytes,
            file_count=source.file_count, checksum=out.checksum,
            snapshot_id=out.snapshot_id, created_at=source.created_at,
            tags=sorted(set(source.tags or []) | set(out.tags)), pinned=bool(source.pinned),
            dumps=source.dumps)
        return row.id, False


def forgotten(ctx: JobContext, backup_id: str) -> None:
    """Remove a backup's catalog row once its stored objects are gone."""
    with ctx.db.session() as s:
        catalog.delete_backup(s, backup_id)


def adopted_snapshots(ctx: JobContext, job: Job, snapshots: Sequence[dict[str, Any]]) -> int:
    """Catalog the repository snapshots the catalog does not know yet (as backups of their
    host and volume — a replace's safety snapshot as kind "safety" with the expiry it had;
    each entry as ``repo_admin.snapshots`` lists it). A snapshot a repair rewrote while its
    catalog row still names the one it replaced (the repair was interrupted before it
    updated the catalog) re-points that row instead. Sets their ``backup_id`` and returns
    how many were adopted or re-pointed."""
    assert job.target is not None
    adopted = 0
    with ctx.db.session() as s:
        _ours(s, job)
        for snap in snapshots:
            if snap["backup_id"]:
                continue
            replaced = snap.get("original") and s.scalar(select(Backup).where(
                Backup.target == job.target, Backup.snapshot_id == snap["original"]))
            if replaced:
                replaced.snapshot_id = snap["id"]
                replaced.key = ids.snapshot_key(bytes.fromhex(snap["id"]))
                snap["backup_id"] = replaced.id
                adopted += 1
                continue
            taken = datetime.fromisoformat(snap["time"])
            safety = snap.get("kind") == "safety"  # kept for its window only, as when taken
            row = catalog.add_backup(
                s, job_id=job.id, host=snap["host"], volume=snap["volume"],
                target=job.target, format=REPO_FORMAT,
                key=ids.snapshot_key(bytes.fromhex(snap["id"])), manifest_key="",
                stored_bytes=snap["stored_bytes"], logical_bytes=snap["bytes"],
                file_count=snap["files"], checksum="", snapshot_id=snap["id"],
                created_at=taken, tags=snap["tags"], pinned=snap["pinned"],
                kind="safety" if safety else "backup",
                expires_at=taken + timedelta(hours=ctx.settings.safety_snapshot_hours)
                if safety else None)
            snap["backup_id"] = row.id
            adopted += 1
    return adopted


def repaired_snapshots(ctx: JobContext, job: Job, rewritten: dict[str, str]) -> int:
    """Point the catalog's backups of snapshots a repair rewrote (old id -> new id, hex)
    at the new snapshots, tagged ``repaired`` as those are (so ``volkeeper backups`` shows
    that they lack the broken files); returns how many rows changed."""
    from common.repository.maintenance.repair_snapshots import REPAIRED_TAG  # repair's

    assert job.target is not None
    changed = 0
    with ctx.db.session() as s:
        _ours(s, job)
        for old, new in rewritten.items():
            for row in s.query(Backup).filter(Backup.target == job.target,
                                              Backup.snapshot_id == old):
                row.snapshot_id = new
                row.key = ids.snapshot_key(bytes.fromhex(new))
                row.tags = sorted(set(row.tags or []) | {REPAIRED_TAG})
                changed += 1
    return changed


def recovered(ctx: JobContext, job_id: str, done: str) -> None:
    """An interrupted restore was cleaned up (``done`` says how): the job says so and its
    volume is free again."""
    with ctx.db.session() as s:
        jobs.mark_recovered(s, job_id, done)


def _stored(out: BackupOutcome) -> dict[str, Any]:
    """The catalog fields of a stored backup."""
    return {"format": out.format, "key": out.key, "manifest_key": out.manifest_key,
            "stored_bytes": out.stored_bytes, "logical_bytes": out.logical_bytes,
            "file_count": out.file_count, "checksum": out.checksum,
            "snapshot_id": out.snapshot_id}

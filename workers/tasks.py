"""Celery tasks. Thin on purpose: each loads its context and hands over to the runner and
the engine. Task names are in ``common.jobs.names``; the API sends tasks by name only."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

from celery import shared_task

from common.db import catalog, jobs
from common.db.models import Job, utcnow
from common.engine import backup as backup_engine
from common.engine import drill as drill_engine
from common.engine import replace as replace_engine
from common.engine import restore as restore_engine
from common.engine import validate as validate_engine
from common.engine import verify as verify_engine
from common.errors import Damaged, RolledBack, StorageError, VolkeeperError
from common.jobs.names import (
    TASK_BACKUP,
    TASK_DRILL,
    TASK_INVENTORY,
    TASK_RESTORE,
    TASK_VALIDATE,
    TASK_VERIFY,
)
from common.progress import ProgressTracker
from common.storage.base import Backend
from workers import agent, context
from workers.runner import Outcome, run_job


def job_task(name: str, body: Callable[..., Outcome]) -> Any:
    """A Celery task ``name(job_id)`` that runs ``body`` through the job runner."""

    @shared_task(name=name)
    def task(job_id: str) -> None:
        run_job(context.current(), job_id, body)

    return task


@shared_task(name=TASK_INVENTORY)
def inventory() -> dict[str, Any]:
    ctx = context.current()
    count = agent.refresh_inventory(ctx)
    return {"host": ctx.host, "volumes": count}


def job_backup(ctx: context.WorkerContext, job: Job) -> Any:
    """The catalog row of the backup a restore/verify/validate/drill job works on."""
    assert job.backup_id is not None
    with ctx.db.session() as s:
        return catalog.get_backup(s, job.backup_id)


@contextlib.contextmanager
def open_target(ctx: context.WorkerContext, name: str) -> Iterator[Backend]:
    """The target's backend; storage errors are prefixed with the target's name."""
    with open_target_errors(name):
        backend = ctx.backend(name)
        try:
            yield backend
        finally:
            backend.close()


@contextlib.contextmanager
def open_target_errors(name: str) -> Iterator[None]:
    """Prefix storage errors raised inside with the target's name (once)."""
    try:
        yield
    except StorageError as e:
        if e.message.startswith(("target ", "copy from target ")):
            raise
        raise type(e)(f"target {name!r}: {e.message}", e.hint) from e


def _backup(ctx: context.WorkerContext, job: Job, tracker: ProgressTracker) -> Outcome:
    assert job.target is not None
    with open_target(ctx, job.target) as backend:
        out = backup_engine.backup_volume(
            ctx.docker, backend, host=job.host, volume=job.volume,
            fmt=job.params.get("format", ctx.settings.default_format), job_id=job.id,
            tracker=tracker, settings=ctx.settings_for(job.target))
    with ctx.db.session() as s:
        b = catalog.add_backup(
            s, job_id=job.id, host=job.host, volume=job.volume, target=job.target,
            format=out.format, key=out.key, manifest_key=out.manifest_key,
            stored_bytes=out.stored_bytes, logical_bytes=out.logical_bytes,
            file_count=out.file_count, checksum=out.checksum, snapshot_id=out.snapshot_id)
        backup_id = b.id
    return out.as_result() | {"backup_id": backup_id}, backup_id


def _restore(ctx: context.WorkerContext, job: Job, tracker: ProgressTracker) -> Outcome:
    b = job_backup(ctx, job)
    if job.params.get("mode") == "replace":
        return _replace(ctx, job, b, tracker)
    with open_target(ctx, b.target) as backend:
        out = restore_engine.restore_backup(
            ctx.docker, backend, restore_engine.StoredBackup.from_row(b), volume=job.volume,
            tracker=tracker, settings=ctx.settings_for(b.target), host=job.host,
            paths=job.params.get("paths"), on_writing=lambda created: _mark_writing(
                ctx, job.id, created))
    return out.as_result(), None


def _validate(ctx: context.WorkerContext, job: Job, tracker: ProgressTracker) -> Outcome:
    b = job_backup(ctx, job)
    with open_target(ctx, b.target) as backend:
        v = validate_engine.validate_restore(
            ctx.docker, backend, restore_engine.StoredBackup.from_row(b), host=job.host,
            volume=job.volume, settings=ctx.settings_for(b.target),
            mode=job.params.get("mode", "new"),
            stop_containers=bool(job.params.get("stop_containers")),
            paths=job.params.get("paths"))
    return v.as_result(), None


def _verify(ctx: context.WorkerContext, job: Job, tracker: ProgressTracker) -> Outcome:
    b = job_backup(ctx, job)
    with open_target(ctx, b.target) as backend:
        out = verify_engine.verify_backup(
            backend, restore_engine.StoredBackup.from_row(b), tracker,
            ctx.settings_for(b.target), read_data=bool(job.params.get("read_data")),
            subset_percent=job.params.get("subset_percent"), seed=job.params.get("seed"))
    with ctx.db.session() as s:
        row = catalog.get_backup(s, b.id)
        row.verified_at = utcnow()
        # a partial check must not read as a full one in listings
        row.verify_status = "damaged" if not out.ok else \
            "ok" if out.scope in ("full", "read-data") else f"ok ({out.scope})"
        row.verify_job_id = job.id
    if not out.ok:
        raise Damaged(out.summary(), out.as_result(),
                      "restore an older backup of this volume, and back it up again now")
    return out.as_result(), None


def _drill(ctx: context.WorkerContext, job: Job, tracker: ProgressTracker) -> Outcome:
    b = job_backup(ctx, job)
    with open_target(ctx, b.target) as backend:
        out = drill_engine.run_drill(
            ctx.docker, backend, restore_engine.StoredBackup.from_row(b), host=job.host,
            scratch=job.params["scratch_volume"], tracker=tracker,
            settings=ctx.settings_for(b.target))
    if not out.passed:
        raise Damaged(out.summary(), out.as_result(),
                      "verify the backup (volkeeper verify) and back the volume up again")
    return out.as_result(), None


def _replace(ctx: context.WorkerContext, job: Job, b: Any, tracker: ProgressTracker) -> Outcome:
    safety_id: list[str | None] = [None]

    def on_safety(safety: Any) -> None:
        safety_id[0] = _record_safety(ctx, job, b.target, safety.as_result())
        with ctx.db.session() as s:
            jobs.update_result(s, job.id, {"safety_backup_id": safety_id[0],
                                           "replace_state": "replacing"})

    try:
        with open_target(ctx, b.target) as backend:
            out = replace_engine.replace_volume(
                ctx.docker, backend, restore_engine.StoredBackup.from_row(b), volume=job.volume,
                host=job.host, job_id=job.id,
                stop_containers=bool(job.params.get("stop_containers")), tracker=tracker,
                settings=ctx.settings_for(b.target), on_safety=on_safety)
    except RolledBack as e:
        e.result |= {"safety_backup_id": safety_id[0], "replace_state": "rolled_back"}
        raise
    except VolkeeperError as e:
        if safety_id[0] is not None:  # failed while rolling back: keep the marker
            e.result = {"safety_backup_id": safety_id[0],  # type: ignore[attr-defined]
                        "replace_state": "rollback_failed"}
        raise
    result = out.as_result() | {"safety_backup_id": safety_id[0], "replace_state": "done"}
    return result, None


def _record_safety(ctx: context.WorkerContext, job: Job, target: str,
                   safety: Any) -> str | None:
    """Catalog the safety snapshot (kind "safety", with its expiry)."""
    if not safety:
        return None
    with ctx.db.session() as s:
        row = catalog.add_backup(
            s, job_id=job.id, host=job.host, volume=job.volume, target=target,
            format=safety["format"], key=safety["key"], manifest_key=safety["manifest_key"],
            stored_bytes=safety["stored_bytes"], logical_bytes=safety["logical_bytes"],
            file_count=safety["file_count"], checksum=safety["checksum"], kind="safety",
            expires_at=utcnow() + timedelta(hours=ctx.settings.safety_snapshot_hours))
        return row.id


def _mark_writing(ctx: context.WorkerContext, job_id: str, created: bool) -> None:
    """Before data lands in the volume: what a crash from here on leaves to undo."""
    with ctx.db.session() as s:
        jobs.update_result(s, job_id, {"restore_state": "writing", "created_volume": created})


backup = job_task(TASK_BACKUP, _backup)
restore = job_task(TASK_RESTORE, _restore)
verify = job_task(TASK_VERIFY, _verify)
validate = job_task(TASK_VALIDATE, _validate)
drill = job_task(TASK_DRILL, _drill)

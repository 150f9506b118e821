"""Celery tasks of the operations on stored backups (label, forget, copy) and on a
target's repository (prune, stats, snapshots, keys, unlock). Like ``workers.tasks``: each
loads its context and hands over to the runner and the engine; the catalog is changed only
after the storage side succeeded."""

from __future__ import annotations

import contextlib
import functools
from datetime import datetime
from typing import Any

from celery import shared_task

from common.db import catalog
from common.db.models import Job
from common.engine import repo_admin, stored
from common.engine.records import StoredBackup
from common.errors import Conflict, InvalidInput, StorageError
from common.jobs.names import (
    REPO_FORMAT,
    TASK_COPY,
    TASK_FORGET,
    TASK_KEYS,
    TASK_LABEL,
    TASK_PRUNE,
    TASK_SNAPSHOTS,
    TASK_STATS,
    TASK_UNLOCK,
)
from common.progress import ProgressTracker
from common.repository import ids
from workers import context
from workers.runner import Outcome, run_job
from workers.tasks import job_backup, job_task, open_target, open_target_errors

#: How often a label job re-applies the catalog's state when it changed meanwhile.
_LABEL_ROUNDS = 5


def _label(ctx: context.WorkerContext, job: Job, tracker: ProgressTracker) -> Outcome:
    """Write the catalog's tags and pin into the repo backup's snapshot, and again when
    they changed while we wrote (so one active label job serves every request)."""
    tracker.set_phase("writing tags and pin into the snapshot")
    rewritten = False
    b = job_backup(ctx, job)
    with open_target(ctx, b.target) as backend:
        settings = ctx.settings_for(b.target)
        for _ in range(_LABEL_ROUNDS):
            tags, pinned = list(b.tags or []), bool(b.pinned)
            rewritten |= stored.apply_labels(backend, StoredBackup.from_row(b), settings,
                                             tags=tags, pinned=pinned)
            b = job_backup(ctx, job)
            if sorted(b.tags or []) == sorted(tags) and b.pinned == pinned:
                break
    return {"tags": tags, "pinned": pinned, "rewritten": rewritten,
            "snapshot_id": b.snapshot_id}, None


def _forget(ctx: context.WorkerContext, job: Job, tracker: ProgressTracker) -> Outcome:
    b = job_backup(ctx, job)
    if b.pinned:  # pinned after the forget was queued
        raise Conflict(f"backup {b.id} is pinned; nothing was deleted",
                       f"unpin it first if you mean to delete it: volkeeper unpin {b.id}")
    tracker.set_phase("deleting")
    with open_target(ctx, b.target) as backend:
        out = stored.forget(backend, StoredBackup.from_row(b), ctx.settings_for(b.target))
    with ctx.db.session() as s:
        catalog.delete_backup(s, b.id)
    return out | {"forgotten_backup_id": b.id, "target": b.target}, None


def _copy(ctx: context.WorkerContext, job: Job, tracker: ProgressTracker) -> Outcome:
    b = job_backup(ctx, job)
    dst_name = job.params["destination"]
    tracker.set_phase("connecting")
    with contextlib.ExitStack() as stack:
        src = stack.enter_context(open_target(ctx, b.target))
        dst = stack.enter_context(open_target(ctx, dst_name))
        for name, backend in ((b.target, src), (dst_name, dst)):
            with open_target_errors(name):
                backend.check()  # an unreachable target is named before anything is copied
        try:
            out = stored.copy_backup(
                src, dst, StoredBackup.from_row(b), src_settings=ctx.settings_for(b.target),
                dst_settings=ctx.settings_for(dst_name), tracker=tracker)
        except StorageError as e:
            raise type(e)(f"copy from target {b.target!r} to {dst_name!r}: {e.message}",
                          e.hint) from e
    with ctx.db.session() as s:
        known = catalog.find_stored_backup(s, dst_name, checksum=out.checksum,
                                           snapshot_id=out.snapshot_id)
        if known is not None:  # copied there before: the same snapshot/archive
            return out.as_result() | {"copy_backup_id": known.id, "source_backup_id": b.id,
                                      "destination": dst_name, "already_there": True}, None
        row = catalog.add_backup(
            s, job_id=job.id, host=b.host, volume=b.volume, target=dst_name,
            format=b.format, key=out.key, manifest_key=out.manifest_key,
            stored_bytes=out.stored_bytes, logical_bytes=b.logical_bytes,
            file_count=b.file_count, checksum=out.checksum, snapshot_id=out.snapshot_id,
            created_at=b.created_at,
            tags=sorted(set(b.tags or []) | set(out.tags)), pinned=bool(b.pinned))
        copy_id = row.id
    return out.as_result() | {"copy_backup_id": copy_id, "source_backup_id": b.id,
                              "destination": dst_name}, None


def _prune(ctx: context.WorkerContext, job: Job, tracker: ProgressTracker) -> Outcome:
    assert job.target is not None
    with open_target(ctx, job.target) as backend:
        return repo_admin.prune_target(backend, ctx.settings_for(job.target),
                                       dry_run=bool(job.params.get("dry_run")),
                                       tracker=tracker, owner=f"prune job {job.id}"), None


def _stats(ctx: context.WorkerContext, job: Job, tracker: ProgressTracker) -> Outcome:
    assert job.target is not None
    tracker.set_phase("reading the repository")
    with open_target(ctx, job.target) as backend:
        return repo_admin.stats(backend, ctx.settings_for(job.target)), None


def _snapshots(ctx: context.WorkerContext, job: Job, tracker: ProgressTracker) -> Outcome:
    assert job.target is not None
    with ctx.db.session() as s:
        known = catalog.snapshot_backup_ids(s, job.target)
    tracker.set_phase("listing snapshots")
    with open_target(ctx, job.target) as backend:
        out = repo_admin.snapshots(backend, ctx.settings_for(job.target), known.get)
    if job.params.get("adopt"):
        out["adopted"] = _adopt(ctx, job, out["snapshots"])
    return out, None


def _adopt(ctx: context.WorkerContext, job: Job, snaps: list[dict[str, Any]]) -> int:
    """Catalog the snapshots the catalog does not know (as backups of their host/volume)."""
    adopted = 0
    with ctx.db.session() as s:
        for snap in snaps:
            if snap["backup_id"]:
                continue
            row = catalog.add_backup(
                s, job_id=job.id, host=snap["host"], volume=snap["volume"],
                target=job.target, format=REPO_FORMAT, key=ids.snapshot_key(
                    bytes.fromhex(snap["id"])), manifest_key="",
                stored_bytes=snap["stored_bytes"], logical_bytes=snap["bytes"],
                file_count=snap["files"], checksum="", snapshot_id=snap["id"],
                created_at=datetime.fromisoformat(snap["time"]), tags=snap["tags"],
                pinned=snap["pinned"])
            snap["backup_id"] = row.id
            adopted += 1
    return adopted


def _keys(ctx: context.WorkerContext, job: Job, tracker: ProgressTracker,
          new_password: str | None = None) -> Outcome:
    assert job.target is not None
    action = job.params.get("action")
    with open_target(ctx, job.target) as backend:
        settings = ctx.settings_for(job.target)
        if action == "list":
            return repo_admin.keys(backend, settings), None
        if action == "add":
            if not new_password:
                raise InvalidInput("no new passphrase reached the worker",
                                   "give it with --new-password-file or at the prompt")
            return repo_admin.new_key(backend, settings, new_password), None
        if action == "remove":
            return repo_admin.drop_key(backend, settings, str(job.params.get("key_id")),
                                       owner=f"key removal job {job.id}"), None
    raise InvalidInput(f"unknown key action {action!r}", "use list, add or remove")


def _unlock(ctx: context.WorkerContext, job: Job, tracker: ProgressTracker) -> Outcome:
    assert job.target is not None
    with open_target(ctx, job.target) as backend:
        return repo_admin.unlock(backend, ctx.settings_for(job.target)), None


@shared_task(name=TASK_KEYS)
def keys(job_id: str, new_password: str | None = None) -> None:
    """The key task: a new passphrase travels only in the message, never in the job row."""
    run_job(context.current(), job_id, functools.partial(_keys, new_password=new_password))


label = job_task(TASK_LABEL, _label)
forget = job_task(TASK_FORGET, _forget)
copy = job_task(TASK_COPY, _copy)
prune = job_task(TASK_PRUNE, _prune)
stats = job_task(TASK_STATS, _stats)
snapshots = job_task(TASK_SNAPSHOTS, _snapshots)
unlock = job_task(TASK_UNLOCK, _unlock)

"""Job bodies on one stored backup, any format: verify it, write its tags and pin into its
repository snapshot (label), forget (delete) it, copy it to another target, list one of
its directories (browse). The storage
side runs first; the catalog changes only after it succeeded (``record``)."""

from __future__ import annotations

import contextlib

from common.db.models import Job
from common.engine import stored
from common.engine import verify as verify_engine
from common.engine.records import StoredBackup
from common.errors import Conflict, Damaged, InvalidInput, NotFound, StorageError
from common.jobs import record
from common.jobs.context import JobContext, target_errors
from common.jobs.runner import Outcome
from common.progress import ProgressTracker

#: How often a label job re-applies the catalog's state when it changed meanwhile.
_LABEL_ROUNDS = 5


def verify(ctx: JobContext, job: Job, tracker: ProgressTracker) -> Outcome:
    b = ctx.job_backup(job)
    with ctx.open_target(b.target) as backend:
        out = verify_engine.verify_backup(
            backend, StoredBackup.from_row(b), tracker, ctx.settings_for(b.target),
            read_data=bool(job.params.get("read_data")),
            subset_percent=job.params.get("subset_percent"), seed=job.params.get("seed"))
    record.verification(ctx, job, b.id, out)
    if not out.ok:
        raise Damaged(out.summary(), out.as_result(),
                      "restore an older backup of this volume, and back it up again now")
    return Outcome(out.as_result())


def label(ctx: JobContext, job: Job, tracker: ProgressTracker) -> Outcome:
    """Write the catalog's tags and pin into the repo backup's snapshot, and again when
    they changed while we wrote (so one active label job serves every request)."""
    tracker.set_phase("writing tags and pin into the snapshot")
    rewritten = False
    b = ctx.job_backup(job)
    with ctx.open_target(b.target) as backend:
        settings = ctx.settings_for(b.target)
        for _ in range(_LABEL_ROUNDS):
            tags, pinned = list(b.tags or []), bool(b.pinned)
            rewritten |= stored.apply_labels(backend, StoredBackup.from_row(b), settings,
                                             tags=tags, pinned=pinned)
            b = ctx.job_backup(job)
            if sorted(b.tags or []) == sorted(tags) and b.pinned == pinned:
                break
    return Outcome({"tags": tags, "pinned": pinned, "rewritten": rewritten,
                    "snapshot_id": b.snapshot_id})


def forget(ctx: JobContext, job: Job, tracker: ProgressTracker) -> Outcome:
    b = ctx.job_backup(job)
    if b.pinned:  # pinned after the forget was queued
        raise Conflict(f"backup {b.id} is pinned; nothing was deleted",
                       f"unpin it first if you mean to delete it: volkeeper unpin {b.id}")
    tracker.set_phase("deleting")
    with ctx.open_target(b.target) as backend:
        out = stored.forget(backend, StoredBackup.from_row(b), ctx.settings_for(b.target))
    record.forgotten(ctx, b.id)
    return Outcome(out | {"forgotten_backup_id": b.id, "target": b.target})


def copy(ctx: JobContext, job: Job, tracker: ProgressTracker) -> Outcome:
    b = ctx.job_backup(job)
    dst_name = job.params["destination"]
    tracker.set_phase("connecting")
    with contextlib.ExitStack() as stack:
        src = stack.enter_context(ctx.open_target(b.target))
        dst = stack.enter_context(ctx.open_target(dst_name))
        for name, backend in ((b.target, src), (dst_name, dst)):
            with target_errors(name):
                backend.check()  # an unreachable target is named before anything is copied
        try:
            out = stored.copy_backup(
                src, dst, StoredBackup.from_row(b), src_settings=ctx.settings_for(b.target),
                dst_settings=ctx.settings_for(dst_name), tracker=tracker)
        except StorageError as e:
            raise type(e)(f"copy from target {b.target!r} to {dst_name!r}: {e.message}",
                          e.hint) from e
    copy_id, already_there = record.copy(ctx, job, b, dst_name, out)
    result = out.as_result() | {"copy_backup_id": copy_id, "source_backup_id": b.id,
                                "destination": dst_name}
    return Outcome(result | {"already_there": True} if already_there else result)


def browse(ctx: JobContext, job: Job, tracker: ProgressTracker) -> Outcome:
    """One directory level of the backup (the restore wizard's tree); nothing changes."""
    b = ctx.job_backup(job)
    tracker.set_phase("listing")
    path = job.params.get("path", "")
    with ctx.open_target(b.target) as backend:
        try:
            return Outcome(stored.list_dir(backend, StoredBackup.from_row(b),
                                           ctx.settings_for(b.target), path))
        except (NotFound, InvalidInput) as e:  # the request's fault, not the job's
            return Outcome({"path": path, "entries": [], "more": 0, "refused": {
                "code": e.code, "message": e.message, "hint": e.hint}})

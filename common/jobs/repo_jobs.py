"""Job bodies on a target's native repository: prune, stats, the snapshot listing (which
may adopt snapshots the catalog does not know), keys and unlock."""

from __future__ import annotations

from common.db import catalog
from common.db.models import Job
from common.engine import repo_admin
from common.errors import InvalidInput
from common.jobs import record
from common.jobs.context import JobContext
from common.jobs.runner import Outcome
from common.progress import ProgressTracker


def _target(job: Job) -> str:
    assert job.target is not None, "target jobs always name their target"
    return job.target


def prune(ctx: JobContext, job: Job, tracker: ProgressTracker) -> Outcome:
    target = _target(job)
    with ctx.open_target(target) as backend:
        return Outcome(repo_admin.prune_target(
            backend, ctx.settings_for(target), dry_run=bool(job.params.get("dry_run")),
            tracker=tracker, owner=f"prune job {job.id}"))


def repair(ctx: JobContext, job: Job, tracker: ProgressTracker) -> Outcome:
    target = _target(job)
    with ctx.open_target(target) as backend:
        out = repo_admin.repair_target(
            backend, ctx.settings_for(target), dry_run=bool(job.params.get("dry_run")),
            read_data=bool(job.params.get("read_data")),
            forget_broken=bool(job.params.get("forget_broken")),
            tracker=tracker, owner=f"repair job {job.id}")
    rewritten = out["report"].get("snapshots_rewritten") or {}
    if rewritten:
        out["catalog_updated"] = record.repaired_snapshots(ctx, job, rewritten)
    return Outcome(out)


def stats(ctx: JobContext, job: Job, tracker: ProgressTracker) -> Outcome:
    target = _target(job)
    tracker.set_phase("reading the repository")
    with ctx.open_target(target) as backend:
        return Outcome(repo_admin.stats(backend, ctx.settings_for(target)))


def snapshots(ctx: JobContext, job: Job, tracker: ProgressTracker) -> Outcome:
    target = _target(job)
    with ctx.db.session() as s:
        known = catalog.snapshot_backup_ids(s, target)
    tracker.set_phase("listing snapshots")
    with ctx.open_target(target) as backend:
        out = repo_admin.snapshots(backend, ctx.settings_for(target), known.get)
    if job.params.get("adopt"):
        out["adopted"] = record.adopted_snapshots(ctx, job, out["snapshots"])
    return Outcome(out)


def keys(ctx: JobContext, job: Job, tracker: ProgressTracker,
         new_password: str | None = None) -> Outcome:
    """List, add or remove key files; a new passphrase comes only with the task message."""
    target = _target(job)
    action = job.params.get("action")
    with ctx.open_target(target) as backend:
        settings = ctx.settings_for(target)
        if action == "list":
            return Outcome(repo_admin.keys(backend, settings))
        if action == "add":
            if not new_password:
                raise InvalidInput("no new passphrase reached the worker",
                                   "give it with --new-password-file or at the prompt")
            return Outcome(repo_admin.new_key(backend, settings, new_password))
        if action == "remove":
            return Outcome(repo_admin.drop_key(backend, settings, str(job.params.get("key_id")),
                                               owner=f"key removal job {job.id}"))
    raise InvalidInput(f"unknown key action {action!r}", "use list, add or remove")


def unlock(ctx: JobContext, job: Job, tracker: ProgressTracker) -> Outcome:
    target = _target(job)
    with ctx.open_target(target) as backend:
        return Outcome(repo_admin.unlock(backend, ctx.settings_for(target)))

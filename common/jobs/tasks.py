"""The task registry: ``TASKS`` maps each task name of ``names`` to the plain function a
worker calls with the message's keyword arguments, e.g. ``TASKS[TASK_BACKUP](job_id=...)``.
Each runs in the context ``context.current()`` gives; a job task runs its body through
``runner.run_job``. The Celery worker registers one Celery task per entry; the in-process
dispatcher calls them in its threads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from common.db.models import Job
from common.jobs import (
    group_jobs,
    host,
    migration_steps,
    repo_jobs,
    stored_jobs,
    target_migration,
    volume_jobs,
)
from common.jobs.context import JobContext, current
from common.jobs.names import (
    TASK_BACKUP,
    TASK_BROWSE,
    TASK_COPY,
    TASK_DRILL,
    TASK_FORGET,
    TASK_GROUP_BACKUP,
    TASK_INVENTORY,
    TASK_KEYS,
    TASK_LABEL,
    TASK_MIGRATE_TARGET,
    TASK_MIGRATION_CHECK,
    TASK_MIGRATION_STEP,
    TASK_PRUNE,
    TASK_REPAIR,
    TASK_RESTORE,
    TASK_SNAPSHOTS,
    TASK_STATS,
    TASK_UNLOCK,
    TASK_VALIDATE,
    TASK_VERIFY,
)
from common.jobs.runner import JobBody, Outcome, run_job
from common.progress import ProgressTracker


def job_task(body: JobBody) -> Callable[[str], None]:
    """The task ``(job_id)`` that runs ``body`` as that job."""

    def task(job_id: str) -> None:
        run_job(current(), job_id, body)

    task.__name__ = task.__qualname__ = body.__name__
    task.__doc__ = body.__doc__
    return task


def keys(job_id: str, new_password: str | None = None) -> None:
    """The key job: a new passphrase travels only in the message, never in the job row."""

    def body(ctx: JobContext, job: Job, tracker: ProgressTracker) -> Outcome:
        return repo_jobs.keys(ctx, job, tracker, new_password=new_password)

    run_job(current(), job_id, body)


def inventory() -> dict[str, Any]:
    """Refresh this host's volume inventory now (no job row)."""
    ctx = current()
    return {"host": ctx.host, "volumes": host.refresh_inventory(ctx)}


TASKS: dict[str, Callable[..., Any]] = {
    TASK_BACKUP: job_task(volume_jobs.backup),
    TASK_GROUP_BACKUP: job_task(group_jobs.group_backup),
    TASK_RESTORE: job_task(volume_jobs.restore),
    TASK_VALIDATE: job_task(volume_jobs.validate),
    TASK_DRILL: job_task(volume_jobs.drill),
    TASK_VERIFY: job_task(stored_jobs.verify),
    TASK_LABEL: job_task(stored_jobs.label),
    TASK_FORGET: job_task(stored_jobs.forget),
    TASK_COPY: job_task(stored_jobs.copy),
    TASK_BROWSE: job_task(stored_jobs.browse),
    TASK_MIGRATE_TARGET: job_task(target_migration.migrate),
    TASK_PRUNE: job_task(repo_jobs.prune),
    TASK_REPAIR: job_task(repo_jobs.repair),
    TASK_STATS: job_task(repo_jobs.stats),
    TASK_SNAPSHOTS: job_task(repo_jobs.snapshots),
    TASK_UNLOCK: job_task(repo_jobs.unlock),
    TASK_MIGRATION_STEP: job_task(migration_steps.run),
    TASK_MIGRATION_CHECK: job_task(migration_steps.check),
    TASK_KEYS: keys,
    TASK_INVENTORY: inventory,
}

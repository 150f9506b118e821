"""The task registry: ``TASKS`` maps each task name of ``names`` to the plain function a
worker calls with the message's keyword arguments, e.g. ``TASKS[TASK_BACKUP](job_id=...)``.
Each runs in the context ``context.current()`` gives; a job task runs its body through
``runner.run_job``. The Celery worker registers one Celery task per entry; the in-process
dispatcher calls them in its threads.

A job body's module is imported when its task first runs (``body_of``): a one-shot
``volkeeper backup`` loads the backup engine, not restore, drills, migrations or
repository maintenance."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from common.db.models import Job
from common.jobs import host
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


def keys(job_id: str, new_password: str | None = None) -> None:
    """The key job: a new passphrase travels only in the message, never in the job row."""
    from common.jobs import repo_jobs

    def body(ctx: JobContext, job: Job, tracker: ProgressTracker) -> Outcome:
        return repo_jobs.keys(ctx, job, tracker, new_password=new_password)

    run_job(current(), job_id, body)


def inventory() -> dict[str, Any]:
    """Refresh this host's volume inventory now (no job row)."""
    ctx = current()
    return {"host": ctx.host, "volumes": host.refresh_inventory(ctx)}


#: each job task's body, as ``module.function`` of ``common.jobs``
_BODIES: dict[str, str] = {
    TASK_BACKUP: "volume_jobs.backup",
    TASK_GROUP_BACKUP: "group_jobs.group_backup",
    TASK_RESTORE: "volume_jobs.restore",
    TASK_VALIDATE: "volume_jobs.validate",
    TASK_DRILL: "volume_jobs.drill",
    TASK_VERIFY: "stored_jobs.verify",
    TASK_LABEL: "stored_jobs.label",
    TASK_FORGET: "stored_jobs.forget",
    TASK_COPY: "stored_jobs.copy",
    TASK_BROWSE: "stored_jobs.browse",
    TASK_MIGRATE_TARGET: "target_migration.migrate",
    TASK_PRUNE: "repo_jobs.prune",
    TASK_REPAIR: "repo_jobs.repair",
    TASK_STATS: "repo_jobs.stats",
    TASK_SNAPSHOTS: "repo_jobs.snapshots",
    TASK_UNLOCK: "repo_jobs.unlock",
    TASK_MIGRATION_STEP: "migration_steps.run",
    TASK_MIGRATION_CHECK: "migration_steps.check",
}


def body_of(name: str) -> JobBody:
    """The body of the job task ``name``, its module imported now (once)."""
    module, attr = _BODIES[name].rsplit(".", 1)
    body: JobBody = getattr(importlib.import_module(f"common.jobs.{module}"), attr)
    return body


def _job_task(name: str) -> Callable[[str], None]:
    """The task ``(job_id)`` that runs the body of ``name`` as that job."""

    def task(job_id: str) -> None:
        run_job(current(), job_id, body_of(name))

    task.__name__ = task.__qualname__ = _BODIES[name].rsplit(".", 1)[1]
    return task


TASKS: dict[str, Callable[..., Any]] = {**{name: _job_task(name) for name in _BODIES},
                                        TASK_KEYS: keys, TASK_INVENTORY: inventory}

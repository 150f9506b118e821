"""The task registry: ``TASKS`` maps each task name of ``names`` to the plain function a
worker calls with the message's keyword arguments, e.g. ``TASKS[TASK_BACKUP](job_id=...)``.
Each runs in the context ``context.current()`` gives; a job task runs its body through
``runner.run_job``. The Celery worker registers one Celery task per entry; the in-process
dispatcher calls them in its threads.

A job body's module is imported when its task is first looked up: a one-shot ``volkeeper
backup`` loads the backup engine, not restore, drills, migrations or repository
maintenance (iterating ``TASKS.items()``, as the Celery worker does, loads them all)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, MutableMapping
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


def job_task(body: JobBody) -> Callable[[str], None]:
    """The task ``(job_id)`` that runs ``body`` as that job."""

    def task(job_id: str) -> None:
        run_job(current(), job_id, body)

    task.__name__ = task.__qualname__ = body.__name__
    task.__doc__ = body.__doc__
    return task


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


class TaskRegistry(MutableMapping[str, Callable[..., Any]]):
    """Task name -> function; a job task is built (its body's module imported) on first
    lookup. Assigning replaces an entry (tests do, with ``monkeypatch.setitem``)."""

    def __init__(self, bodies: dict[str, str], plain: dict[str, Callable[..., Any]]) -> None:
        self._bodies = dict(bodies)
        self._made: dict[str, Callable[..., Any]] = dict(plain)
        self._names = [*bodies, *(n for n in plain if n not in bodies)]

    def __getitem__(self, name: str) -> Callable[..., Any]:
        fn = self._made.get(name)
        if fn is None:
            module, attr = self._bodies[name].rsplit(".", 1)  # KeyError: no such task
            body = getattr(importlib.import_module(f"common.jobs.{module}"), attr)
            fn = self._made[name] = job_task(body)
        return fn

    def __setitem__(self, name: str, fn: Callable[..., Any]) -> None:
        if name not in self._names:
            self._names.append(name)
        self._made[name] = fn

    def __delitem__(self, name: str) -> None:
        if name not in self._names:
            raise KeyError(name)
        self._names.remove(name)
        self._bodies.pop(name, None)
        self._made.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._names))

    def __len__(self) -> int:
        return len(self._names)


TASKS = TaskRegistry(_BODIES, {TASK_KEYS: keys, TASK_INVENTORY: inventory})

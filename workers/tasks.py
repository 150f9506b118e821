"""The Celery tasks: one per entry of ``common.jobs.tasks.TASKS``, under the same name,
calling the same function with the message's keyword arguments. The job bodies, the
runner and the recording of outcomes all live in ``common.jobs``; the context is this
process's ``common.jobs.context.current()``, built from the environment on first use."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from common.jobs.tasks import TASKS

#: the registered Celery tasks by name
CELERY_TASKS: dict[str, Any] = {name: shared_task(name=name)(fn) for name, fn in TASKS.items()}

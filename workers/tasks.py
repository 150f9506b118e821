"""The Celery tasks: one per entry of ``common.jobs.tasks.TASKS``, under the same name,
calling the same function with the message's keyword arguments — sealed secrets
(``common.secretbox.seal_task_secrets``) opened first. The job bodies, the runner and the
recording of outcomes all live in ``common.jobs``; the context is this process's
``common.jobs.context.current()``, built from the environment on first use."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from celery import shared_task

from common.errors import VolkeeperError
from common.jobs.context import current
from common.jobs.runner import fail_job
from common.jobs.tasks import TASKS
from common.secretbox import unseal_task_secrets


def _opening(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def run(**kwargs: Any) -> Any:
        try:
            opened = unseal_task_secrets(kwargs, current().settings)
        except VolkeeperError as e:  # the job fails saying why, never stays queued
            if kwargs.get("job_id"):
                fail_job(current(), kwargs["job_id"], str(e), unless_finished=True)
            return None
        return fn(**opened)

    return run


#: the registered Celery tasks by name
CELERY_TASKS: dict[str, Any] = {name: shared_task(name=name)(_opening(fn))
                                for name, fn in TASKS.items()}

"""The in-process dispatcher of the embedded mode: runs the tasks of ``tasks.TASKS`` for the
local host in threads of this process — the same functions a fleet worker runs, without a
broker (and without Celery)."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from common.db import jobs
from common.errors import InvalidInput, Unavailable
from common.jobs import context, owners
from common.jobs.context import JobContext
from common.jobs.names import QUICK_TASKS
from common.jobs.runner import fail_job

log = logging.getLogger(__name__)


class InProcessDispatcher:
    """Implements ``dispatch.Dispatcher`` for one host: long tasks share ``max_workers``
    threads, quick tasks (dry runs, inventory, labels) have two of their own so they never
    wait behind a backup. Each task runs with ``ctx`` as ``context.current()``. A task that
    crashes before it recorded an outcome has its job failed here, never left queued."""

    def __init__(self, ctx: JobContext, max_workers: int = 2) -> None:
        self.ctx = ctx
        self.host = ctx.host
        self.pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="job")
        self.quick_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="quick")
        self._ended = threading.Condition()
        self._ended_count = 0  # tasks ended so far (``wait_ended``)

    def send(self, task: str, host: str, kwargs: dict[str, Any], *,
             secrets: dict[str, Any] | None = None) -> None:
        if host != self.host:
            raise Unavailable(f"embedded mode has one host, {self.host!r}; {host!r} is not it",
                              f"run it on this host (--host {self.host}; a backup of {host!r} "
                              "restores here through its target), or use the fleet (volkeeper "
                              "serve with VOLKEEPER_DATABASE_URL and VOLKEEPER_REDIS_URL) for "
                              "several hosts")
        from common.jobs.tasks import TASKS  # the engine is loaded with the first job

        if task not in TASKS:
            raise InvalidInput(f"unknown task {task!r}",
                               "this volkeeper does not know that job; upgrade it")
        job_id = kwargs.get("job_id")
        if job_id:  # this process runs it: a kill before it starts must not strand it
            with self.ctx.db.session() as s:
                jobs.claim_queued(s, job_id, owners.worker_name(self.host))
        pool = self.quick_pool if task in QUICK_TASKS else self.pool
        pool.submit(self._run, task, kwargs, secrets or {})

    def _run(self, task: str, kwargs: dict[str, Any], secrets: dict[str, Any]) -> None:
        from common.jobs.tasks import TASKS

        try:
            with context.bound(self.ctx):
                TASKS[task](**kwargs, **secrets)
        except Exception as e:  # noqa: BLE001 - recorded on the job below
            log.error("task %s crashed: %r", task, e)
            job_id = kwargs.get("job_id")
            if job_id:
                fail_job(self.ctx, job_id, f"internal error ({type(e).__name__}: {e}); "
                         f"see the log of this volkeeper process", unless_finished=True)
        finally:
            with self._ended:
                self._ended_count += 1
                self._ended.notify_all()

    def wait_ended(self, since: int, timeout: float) -> int:
        """Wait until more than ``since`` tasks have ended (at most ``timeout`` seconds);
        the count now. A loop that follows jobs (a migration driven here) wakes when one
        ends instead of polling the database meanwhile."""
        with self._ended:
            self._ended.wait_for(lambda: self._ended_count > since, timeout)
            return self._ended_count

    def shutdown(self, wait: bool = True) -> None:
        """Stop taking tasks; with ``wait``, return once the running ones have ended."""
        self.quick_pool.shutdown(wait=wait)
        self.pool.shutdown(wait=wait)

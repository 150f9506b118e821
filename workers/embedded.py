"""Embedded mode: the API app, the same Celery task functions and the host agent in one
process, with SQLite and an in-memory progress bus. Tasks run through ``Task.apply`` in a
small thread pool — the same code a fleet worker runs, no second code path."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from celery import Celery
from fastapi import FastAPI

from common.config import Settings
from common.db import JobState, jobs
from common.errors import Unavailable
from common.jobs.names import QUICK_TASKS
from common.progress import MemoryProgressBus
from workers import agent, context
from workers.celery_app import create_celery

log = logging.getLogger(__name__)


class ThreadDispatcher:
    """Runs tasks for the local host in background threads of this process. A task that
    crashes before it could record an outcome has its job failed here, never left queued."""

    def __init__(self, app: Celery, ctx: context.WorkerContext, max_workers: int = 2) -> None:
        import workers.ops_tasks
        import workers.tasks  # noqa: F401

        self.app = app
        self.ctx = ctx
        self.host = ctx.host
        self.pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="job")
        # quick tasks (dry runs, inventory) never wait behind long jobs
        self.quick_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="quick")

    def send(self, task: str, host: str, kwargs: dict[str, Any], *,
             secrets: dict[str, Any] | None = None) -> None:
        if host != self.host:
            raise Unavailable(f"embedded mode has one host, {self.host!r}; {host!r} is not it",
                              "use the fleet (volkeeper serve with VOLKEEPER_DATABASE_URL and "
                              "VOLKEEPER_REDIS_URL) for several hosts")
        pool = self.quick_pool if task in QUICK_TASKS else self.pool
        pool.submit(self._run, task, kwargs | (secrets or {}))

    def _run(self, task: str, kwargs: dict[str, Any]) -> None:
        error: BaseException | None = None
        try:
            result = self.app.tasks[task].apply(kwargs=kwargs)
            if result.failed():
                error = result.result
        except Exception as e:  # noqa: BLE001 - recorded on the job below
            error = e
        if error is None:
            return
        log.error("task %s crashed: %r", task, error)
        job_id = kwargs.get("job_id")
        if job_id:
            with self.ctx.db.session() as s:
                job = jobs.get_job(s, job_id)
                if not job.state.finished:
                    jobs.finish_job(s, job_id, JobState.failed,
                                    error=f"internal error ({type(error).__name__}: {error})")

    def shutdown(self) -> None:
        self.quick_pool.shutdown(wait=True)
        self.pool.shutdown(wait=True)


def build_embedded_app(settings: Settings, *, background: bool,
                       volume_sizes: bool = False) -> FastAPI:
    """The API app wired to an in-process worker for the local host.

    ``background`` starts the host agent loops (heartbeat, inventory on Docker events,
    stale-job sweep) as ``volkeeper serve`` needs; one-shot CLI commands only register the
    host, take an inventory and recover restores that a killed command left half done.
    Their inventory measures volume sizes only when ``volume_sizes`` is asked for (the
    ``volumes`` command): Docker walks every file of every volume to measure them.
    """
    from api.main import create_app  # the composition root may host the API in-process

    bus = MemoryProgressBus()
    ctx = context.WorkerContext(settings, bus=bus)
    context.install(ctx)
    celery_app = create_celery(settings)
    dispatcher = ThreadDispatcher(celery_app, ctx)
    host_agent = agent.HostAgent(ctx)

    def start() -> None:
        if background:
            host_agent.start()
        else:
            try:
                # also fails jobs of volkeeper processes that were killed
                agent.register(ctx, with_sizes=volume_sizes)
                agent.recover_interrupted(ctx)  # and cleans up after their restores
            except Exception as e:  # noqa: BLE001 - the CLI reports Docker problems per command
                log.warning("could not register host %s: %s", settings.host_name, e)

    def stop() -> None:
        dispatcher.shutdown()
        host_agent.stop()

    return create_app(settings, dispatcher=dispatcher, bus=bus, db=ctx.db,
                      on_startup=[start], on_shutdown=[stop])

"""The application factory. Nothing is created at import time: ``create_app(settings, …)``
builds the database, the progress bus and the dispatcher (or takes them from the caller —
the embedded CLI passes its in-process dispatcher and shared progress bus)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

from fastapi import APIRouter, FastAPI

from api.console import router as console_router
from api.deps import AppState
from api.errors import install_error_handlers
from api.routes import (
    backup_ops,
    backups,
    drills,
    health,
    hosts,
    jobs,
    repository,
    restores,
    targets,
)
from common.config import Settings
from common.db import Database, catalog
from common.db import jobs as job_queries
from common.db.migrate import upgrade
from common.errors import VolkeeperError
from common.jobs.dispatch import Dispatcher
from common.jobs.operations import OperationsService
from common.progress import MemoryProgressBus, ProgressBus, RedisProgressBus

log = logging.getLogger(__name__)
Hook = Callable[[], None]


def create_app(
    settings: Settings,
    *,
    dispatcher: Dispatcher | None = None,
    bus: ProgressBus | None = None,
    db: Database | None = None,
    on_startup: list[Hook] | None = None,
    on_shutdown: list[Hook] | None = None,
    sweep_every: float | None = None,
) -> FastAPI:
    if settings.mode == "fleet" and settings.api_token is None:
        raise VolkeeperError("VOLKEEPER_API_TOKEN is not set",
                             "the fleet API requires a bearer token; set VOLKEEPER_API_TOKEN")
    db = db or Database(settings.effective_database_url)
    if bus is None:
        bus = RedisProgressBus(settings.redis_url) if settings.redis_url else MemoryProgressBus()
    if dispatcher is None:
        if not settings.redis_url:
            raise VolkeeperError("no dispatcher: VOLKEEPER_REDIS_URL is not set",
                                 "set VOLKEEPER_REDIS_URL (fleet) or use the embedded CLI")
        from api.dispatch import CeleryDispatcher

        dispatcher = CeleryDispatcher(settings.redis_url)
    state = AppState(settings=settings, db=db, bus=bus,
                     service=OperationsService(db, dispatcher, settings))

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        upgrade(db)
        if settings.mode == "embedded":
            with db.session() as s:
                catalog.ensure_target(s, settings.default_target, settings.default_target_url)
        for hook in on_startup or []:
            hook()
        sweeper = asyncio.create_task(
            _sweep_loop(state, sweep_every or settings.sweep_seconds))
        try:
            yield
        finally:
            sweeper.cancel()
            for hook in on_shutdown or []:
                hook()

    app = FastAPI(title="volkeeper", version="0.1.0", lifespan=lifespan,
                  docs_url="/api/docs", openapi_url="/api/v1/openapi.json",
                  description="Backup, restore and verification of Docker volumes.")
    app.state.volkeeper = state
    install_error_handlers(app)
    v1 = APIRouter(prefix="/api/v1")
    for r in (health.router, hosts.router, targets.router, repository.router, backups.router,
              backup_ops.router, restores.router, drills.router, jobs.router):
        v1.include_router(r)
    app.include_router(v1)
    app.include_router(console_router)
    return app


def app_from_env() -> FastAPI:
    """The uvicorn factory (``uvicorn api.main:app_from_env --factory``): settings from the
    environment; in embedded mode the app carries the embedded runtime (in-process worker
    and host agent), started and closed with the app."""
    from common.config import get_settings

    settings = get_settings()
    if settings.mode != "embedded":
        return create_app(settings)
    from common.jobs.embedded import EmbeddedRuntime

    runtime = EmbeddedRuntime(settings, background=True)
    return create_app(settings, dispatcher=runtime.dispatcher, bus=runtime.bus, db=runtime.db,
                      on_startup=[runtime.start], on_shutdown=[runtime.close])


async def _sweep_loop(state: AppState, every: float) -> None:
    s = state.settings
    while True:
        try:
            await asyncio.to_thread(_sweep_once, state)
        except Exception:
            log.exception("stale-job sweep failed")
        await asyncio.sleep(every if every > 0 else s.heartbeat_seconds)


def _sweep_once(state: AppState) -> None:
    s = state.settings
    with state.db.session() as sess:
        job_queries.sweep_stale(
            sess, running_after=timedelta(seconds=s.stale_job_seconds),
            queued_after=timedelta(seconds=s.queued_job_timeout_seconds))

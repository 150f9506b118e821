"""The application factory. Nothing is created at import time: ``create_app(settings, …)``
builds the database, the progress bus and the dispatcher (or takes them from the caller).
Embedded, it runs an ``EmbeddedRuntime`` (in-process jobs, the host's loops, the stale-job
sweep) for its lifetime; in the fleet it sends jobs to the hosts' Celery queues and owns the
stale-job sweep (``common.jobs.sweep``). ``app_from_env`` is the factory for uvicorn."""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import AsyncIterator, Callable

from fastapi import APIRouter, FastAPI

from api.console import router as console_router
from api.deps import AppState
from api.errors import ERROR_RESPONSES, install_error_handlers
from api.routes import (
    backup_ops,
    backups,
    drills,
    evacuations,
    groups,
    health,
    hosts,
    jobs,
    metrics,
    migrations,
    policies,
    repository,
    restores,
    security,
    targets,
)
from api.security import install_host_check, install_openapi, install_text_check
from common.auth import TokenService, bootstrap_secrets
from common.config import Settings, get_settings
from common.db import Database, catalog
from common.db.migrate import upgrade
from common.errors import VolkeeperError
from common.jobs.dispatch import Dispatcher
from common.jobs.embedded import EmbeddedRuntime
from common.jobs.loops import sweep_loop
from common.jobs.operations import OperationsService
from common.progress import MemoryProgressBus, ProgressBus, RedisProgressBus
from common.sessions import ConsoleSessions, session_key

log = logging.getLogger(__name__)
Hook = Callable[[], None]


def _quiet_deferred_models() -> None:
    """The request and output models defer their build to their first use (the CLI's
    start, ``common.jobs.inputs.Input``), so FastAPI's type adapter of a route's body is
    built at the route's first request instead of when FastAPI declares it — outside the
    ``catch_warnings`` in which FastAPI silences pydantic's warning about the body's
    ``alias`` it adds itself (``fastapi._compat.v2.ModelField``). Silence it as FastAPI
    does: nothing for the operator to fix."""
    from pydantic.warnings import UnsupportedFieldAttributeWarning

    warnings.filterwarnings("ignore", category=UnsupportedFieldAttributeWarning)


def create_app(
    settings: Settings,
    *,
    dispatcher: Dispatcher | None = None,
    bus: ProgressBus | None = None,
    db: Database | None = None,
    on_startup: list[Hook] | None = None,
    on_shutdown: list[Hook] | None = None,
    sweep_every: float | None = None,
    in_process: bool = False,
    scheduler: bool = False,
) -> FastAPI:
    """The API app. Without a ``dispatcher`` it runs jobs itself when embedded (an
    ``EmbeddedRuntime``, whose database and bus it uses) and sends them to the hosts' queues
    in the fleet. ``sweep_every`` overrides the fleet's stale-job sweep period.

    Every route but ``GET /api/v1/health`` and the login page needs a token: the bootstrap
    admin secret (``VOLKEEPER_API_TOKEN``; embedded, ``<home>/api.token``, created here
    on first start) or a named one. ``in_process`` marks an app that is never served on a
    socket (an in-process test client, ``tests.fixtures.embedded.embedded_http``):
    requests without credentials act as the local user (``cli:local-user``), and the Host
    check is off. ``scheduler``: run the policy scheduler (one active across every
    process that runs it; ``common.jobs.policy_scheduler``) and the migration coordinator
    (``common.jobs.migration_flow``) — the served app does."""
    _quiet_deferred_models()
    if settings.mode == "fleet" and not (settings.api_token is not None
                                         and settings.api_token.get_secret_value().strip()):
        # empty (``VOLKEEPER_API_TOKEN=$(cat missing-file)``) is not set either: the API
        # would run with no admin at all, refusing every request with "unknown token"
        raise VolkeeperError("VOLKEEPER_API_TOKEN is not set (or empty)",
                             "the fleet API requires a bearer token; set VOLKEEPER_API_TOKEN "
                             "(e.g. `openssl rand -hex 32`)")
    runtime: EmbeddedRuntime | None = None
    if dispatcher is None and settings.mode == "embedded":
        runtime = EmbeddedRuntime(settings, background=True)
        dispatcher, bus, db = runtime.dispatcher, runtime.bus, runtime.db
    db = db or Database(settings.effective_database_url)
    if bus is None:
        bus = RedisProgressBus(settings.redis_url) if settings.redis_url else MemoryProgressBus()
    if dispatcher is None:
        if not settings.redis_url:
            raise VolkeeperError("no dispatcher: VOLKEEPER_REDIS_URL is not set",
                                 "set VOLKEEPER_REDIS_URL (fleet) or use the embedded CLI")
        from api.dispatch import CeleryDispatcher

        dispatcher = CeleryDispatcher(settings.redis_url, settings)
    served_embedded = settings.mode == "embedded" and not in_process
    tokens = TokenService(db, bootstrap_secrets(settings, token_file_too=served_embedded))
    state = AppState(settings=settings, db=db, bus=bus,
                     service=OperationsService(db, dispatcher, settings), tokens=tokens,
                     sessions=ConsoleSessions(_session_key(settings, tokens), tokens),
                     in_process=in_process)
    # the fleet's control plane owns the stale-job sweep; embedded, the runtime does
    sweeper = (sweep_loop(db, settings, sweep_every, dispatcher)
               if settings.mode == "fleet" else None)
    from common.jobs.policy_watch import metric_families
    from common.metrics import add_source

    add_source(metric_families)  # volume_overdue, volume_rpo_seconds, scheduler_lag
    policy_loop = None
    if scheduler:
        from common.jobs.policy_scheduler import policy_scheduler

        policy_loop = policy_scheduler(state.service)
    migration_loop = None
    if scheduler:
        from common.jobs.migration_flow import coordinator_loop

        migration_loop = coordinator_loop(state.service, bus=bus)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if runtime is not None:
            runtime.start()
        else:
            upgrade(db)
            if settings.mode == "embedded" and settings.creates_default_target:
                with db.session() as s:
                    catalog.ensure_target(s, settings.default_target,
                                          settings.default_target_url)
        for hook in on_startup or []:
            hook()
        if sweeper is not None:
            sweeper.start()
        if policy_loop is not None:
            policy_loop.start()
        if migration_loop is not None:
            migration_loop.start()
        try:
            yield
        finally:
            if migration_loop is not None:
                migration_loop.stop()
            if policy_loop is not None:
                policy_loop.stop()
            if sweeper is not None:
                sweeper.stop()
            for hook in on_shutdown or []:
                hook()
            if runtime is not None:
                runtime.close()

    app = FastAPI(title="volkeeper", version="0.1.0", lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None,
                  description="Backup, restore and verification of Docker volumes.")
    app.state.volkeeper = state
    install_error_handlers(app)
    install_text_check(app)
    if not in_process:
        install_host_check(app, settings)
    v1 = APIRouter(prefix="/api/v1", responses=ERROR_RESPONSES)
    install_openapi(app, v1)
    for r in (health.router, hosts.router, targets.router, repository.router, backups.router,
              backup_ops.router, restores.router, drills.router, jobs.router,
              security.router, policies.router, groups.router, migrations.router,
              evacuations.router):
        v1.include_router(r)
    app.include_router(v1)
    app.include_router(metrics.router)
    app.include_router(console_router)
    return app


def app_from_env() -> FastAPI:
    """The app for the settings in the environment (``VOLKEEPER_*``), embedded or fleet:
    ``uvicorn --factory api.main:app_from_env``."""
    return create_app(get_settings(), scheduler=True)


def _session_key(settings: Settings, tokens: TokenService) -> bytes:
    """The console cookies' signing key, the same on every API replica: from the
    installation secret, else the fleet's bootstrap token (a process-own random key if
    neither is set: its sessions then end with it)."""
    from common.secretbox import installation_secret

    secret = installation_secret(settings) or "\0".join(tokens.bootstrap)
    return session_key(secret) if secret else os.urandom(32)

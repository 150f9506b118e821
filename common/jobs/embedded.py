"""TEMPORARY shim, replaced by jobs-core (the job runner moving from ``workers`` into
``common.jobs``). It implements the agreed ``EmbeddedRuntime`` contract on top of today's
``workers.embedded.ThreadDispatcher`` / ``workers.agent`` / ``workers.context`` — which is
why it imports ``workers`` (lazily), something ``common`` must not do once jobs-core lands.

The embedded runtime: the database, the in-memory progress bus, the in-process
dispatcher (threads, no broker) and the services, for one Docker host on this machine.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from common.config import Settings
from common.db import Database, catalog
from common.jobs.operations import OperationsService
from common.progress import MemoryProgressBus, ProgressBus

if TYPE_CHECKING:
    from workers.context import WorkerContext as JobContext
    from workers.embedded import ThreadDispatcher

log = logging.getLogger(__name__)


class _LazyDispatcher:
    """Builds the thread dispatcher (and with it the task code) on the first job only, so
    read commands never import it."""

    def __init__(self, runtime: EmbeddedRuntime) -> None:
        self.runtime = runtime
        self.real: ThreadDispatcher | None = None

    def send(self, task: str, host: str, kwargs: dict[str, Any], *,
             secrets: dict[str, Any] | None = None) -> None:
        if self.real is None:
            from workers.celery_app import create_celery
            from workers.embedded import ThreadDispatcher

            self.real = ThreadDispatcher(create_celery(self.runtime.settings), self.runtime.ctx)
        self.real.send(task, host, kwargs, secrets=secrets)

    def shutdown(self) -> None:
        if self.real is not None:
            self.real.shutdown()


class EmbeddedRuntime:
    settings: Settings
    db: Database
    bus: ProgressBus
    ctx: JobContext
    dispatcher: _LazyDispatcher
    service: OperationsService

    def __init__(self, settings: Settings, *, background: bool) -> None:
        from workers import context

        self.settings = settings
        self.background = background
        self.bus = MemoryProgressBus()
        self.ctx = context.WorkerContext(settings, bus=self.bus)
        context.install(self.ctx)
        self.db = self.ctx.db
        self.dispatcher = _LazyDispatcher(self)
        self.service = OperationsService(self.db, self.dispatcher, settings)
        self._agent: Any = None

    def start(self, *, volume_sizes: bool = False) -> None:
        from common.db.migrate import upgrade_if_needed
        from workers import agent

        upgrade_if_needed(self.db)
        with self.db.session() as s:
            catalog.ensure_target(s, self.settings.default_target,
                                  self.settings.default_target_url)
        if self.background:
            self._agent = agent.HostAgent(self.ctx)
            self._agent.start()
            return
        try:
            agent.register(self.ctx, with_sizes=volume_sizes)  # fails jobs of killed runs
            agent.recover_interrupted(self.ctx)  # and cleans up after their restores
        except Exception as e:  # noqa: BLE001 - commands report Docker problems themselves
            log.warning("could not register host %s: %s", self.settings.host_name, e)

    def close(self) -> None:
        self.dispatcher.shutdown()
        if self._agent is not None:
            self._agent.stop()

    def __enter__(self) -> EmbeddedRuntime:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

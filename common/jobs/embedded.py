"""The embedded mode in one process: SQLite, an in-memory progress bus and the in-process
dispatcher, wired to the same services the API uses. ``volkeeper serve`` (embedded) runs
one in the background; each one-shot CLI command runs one for its own duration."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from common.config import Settings
from common.db import Database, catalog
from common.db.migrate import upgrade
from common.jobs import context, host, keycache, sweep
from common.jobs.context import JobContext
from common.jobs.dispatch import Dispatcher
from common.jobs.inprocess import InProcessDispatcher
from common.jobs.operations import OperationsService
from common.progress import MemoryProgressBus, ProgressBus

if TYPE_CHECKING:
    from common.jobs.loops import HostLoops

log = logging.getLogger(__name__)


class EmbeddedRuntime:
    """Embedded mode in one process: SQLite DB, memory progress bus, in-process dispatcher."""

    settings: Settings
    db: Database
    bus: ProgressBus
    ctx: JobContext
    dispatcher: Dispatcher  # the InProcessDispatcher
    service: OperationsService

    def __init__(self, settings: Settings, *, background: bool) -> None:
        self.settings = settings
        self.background = background
        self.bus = MemoryProgressBus()
        self.ctx = JobContext(settings, bus=self.bus)
        self.db = self.ctx.db
        self._dispatcher = InProcessDispatcher(self.ctx)
        self.dispatcher = self._dispatcher
        self.service = OperationsService(self.db, self.dispatcher, settings)
        self._loops: HostLoops | None = None
        if background:
            from common.jobs.loops import HostLoops

            self._loops = HostLoops(self.ctx, sweep=True)
        self._started = False

    def start(self, *, volume_sizes: bool = False, docker: bool = True) -> None:
        """Upgrade the DB schema (quietly), ensure the default target, install ctx as
        current(); background=True: start HostLoops (serve). background=False (one-shot CLI
        command): register the host, take an inventory (sizes only if volume_sizes), recover
        jobs of killed processes; Docker problems are logged as warnings, not raised.
        ``docker=False`` (a command that only reads the catalog) does not register the host
        or take an inventory: it fails the jobs of killed local processes and asks Docker
        only to clean up after a restore one of them left half written.
        A second call does nothing."""
        if self._started:
            return
        self._started = True
        upgrade(self.db, quiet=True)
        if self.settings.creates_default_target:
            with self.db.session() as s:
                catalog.ensure_target(s, self.settings.default_target,
                                      self.settings.default_target_url)
        context.install(self.ctx)
        keycache.install(self.settings)
        if self._loops is not None:
            self._loops.start()
            return
        try:
            sweep.sweep_stale(self.db, self.settings)  # jobs nobody ran or reports on
            if docker:
                host.arrive(self.ctx, with_sizes=volume_sizes)
            else:  # Docker only if a killed restore left a volume to clean up
                host.fail_orphaned(self.ctx)
                host.recover_interrupted(self.ctx)
        except Exception as e:  # noqa: BLE001 - each command reports Docker problems itself
            log.warning("could not register host %s: %s", self.settings.host_name, e)

    def close(self) -> None:
        """Wait for running jobs, stop loops."""
        self._dispatcher.shutdown(wait=True)
        if self._loops is not None:
            self._loops.stop()
        self.db.dispose()

    def __enter__(self) -> EmbeddedRuntime:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

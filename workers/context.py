"""Per-process worker context: settings, database, progress bus, Docker, storage.

Created lazily on first use in each process (Celery prefork children included), never at
import time, and re-created after a fork so connections are never shared across processes.
"""

from __future__ import annotations

import os
import threading
from functools import cached_property
from typing import TYPE_CHECKING

from common.config import Settings, get_settings
from common.db import Database, catalog
from common.progress import MemoryProgressBus, ProgressBus, RedisProgressBus

if TYPE_CHECKING:
    from common.docker import DockerHost
    from common.storage.base import Backend

# Docker, storage and the engine load on first use: a one-shot embedded CLI command that
# only reads the catalog never needs them.


class WorkerContext:
    def __init__(self, settings: Settings, bus: ProgressBus | None = None) -> None:
        self.settings = settings
        self._bus = bus

    @cached_property
    def db(self) -> Database:
        return Database(self.settings.effective_database_url)

    @cached_property
    def bus(self) -> ProgressBus:
        if self._bus is not None:
            return self._bus
        if self.settings.redis_url:
            return RedisProgressBus(self.settings.redis_url)
        return MemoryProgressBus()

    @cached_property
    def docker(self) -> DockerHost:
        from common.docker import DockerHost

        return DockerHost(self.settings.docker_host)

    @property
    def host(self) -> str:
        return self.settings.host_name

    def backend(self, target_name: str) -> Backend:
        """Open the storage backend of a registered target (credentials from the DB)."""
        from common.secretbox import unseal
        from common.storage.registry import open_backend

        with self.db.session() as s:
            t = catalog.get_target(s, target_name)
            url, options, secrets = t.url, dict(t.options), dict(t.secrets)
        return open_backend(url, options, unseal(secrets, self.settings, target_name),
                            self.settings)

    def settings_for(self, target_name: str) -> Settings:
        """The settings for work on one target (its ``password_file`` option applied)."""
        from common.engine.repo import target_settings

        with self.db.session() as s:
            options = dict(catalog.get_target(s, target_name).options)
        return target_settings(self.settings, options)


_lock = threading.Lock()
_current: tuple[int, WorkerContext] | None = None


def current() -> WorkerContext:
    """The context of this process (built from the environment on first use)."""
    global _current
    with _lock:
        if _current is None or _current[0] != os.getpid():
            _current = (os.getpid(), WorkerContext(get_settings()))
        return _current[1]


def install(ctx: WorkerContext) -> None:
    """Use ``ctx`` as this process's context (embedded mode shares its progress bus)."""
    global _current
    with _lock:
        _current = (os.getpid(), ctx)

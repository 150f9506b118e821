"""The per-process job context: settings, database, progress bus, Docker, storage.

Built lazily on first use in each process (Celery worker children included), never at
import time, and built anew after a fork so connections are never shared across processes.
The embedded runtime builds its own (sharing its in-memory progress bus) and installs it.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from contextvars import ContextVar
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from common.config import Settings, get_settings
from common.db import Backup, Database, Job, catalog
from common.errors import InvalidInput, StorageError
from common.progress import MemoryProgressBus, ProgressBus
from common.storage.base import Backend

if TYPE_CHECKING:
    from common.docker import DockerHost


class JobContext:
    """What a job body needs around it. Every resource is opened on first use."""

    def __init__(self, settings: Settings, bus: ProgressBus | None = None,
                 db: Database | None = None) -> None:
        self.settings = settings
        self._bus = bus
        if db is not None:
            self.db = db

    @cached_property
    def db(self) -> Database:
        return Database(self.settings.effective_database_url)

    @cached_property
    def bus(self) -> ProgressBus:
        if self._bus is not None:
            return self._bus
        if self.settings.redis_url:
            from common.progress import RedisProgressBus

            return RedisProgressBus(self.settings.redis_url)
        return MemoryProgressBus()

    @cached_property
    def docker(self) -> DockerHost:
        from common.docker import DockerHost

        return DockerHost(self.settings.docker_host)

    @property
    def host(self) -> str:
        """The Docker host this process works for (``VOLKEEPER_HOST_NAME``)."""
        return self.settings.host_name

    def backend(self, target_name: str) -> Backend:
        """Open the storage backend of a registered target (credentials from the DB)."""
        from common.storage.allowlist import check_target_allowed
        from common.storage.registry import open_backend

        with self.db.session() as s:
            t = catalog.get_target(s, target_name)
            url, options, secrets = t.url, dict(t.options), dict(t.secrets)
        check_target_allowed(url, options, self.settings, resolve=True)
        if secrets:  # (cryptography loads for credentials only: a local target has none)
            from common.secretbox import unseal

            secrets = unseal(secrets, self.settings, target_name)
        return open_backend(url, options, secrets, self.settings)

    @contextlib.contextmanager
    def open_target(self, target_name: str) -> Iterator[Backend]:
        """The target's backend, closed afterwards; storage errors name the target. When
        the catalog lists repo backups on it, its repository must exist (not be created
        anew: ``common.engine.expected``)."""
        from common.engine.expected import repository_expected

        def known() -> bool:  # asked only before a repository would be created
            with self.db.session() as s:
                return catalog.holds_repository(s, target_name)

        with target_errors(target_name):
            backend = self.backend(target_name)
            try:
                with repository_expected(backend.display, known):
                    yield backend
            finally:
                backend.close()

    def job_backup(self, job: Job) -> Backup:
        """The catalog row of the backup a job works on (restore, verify, forget …)."""
        if job.backup_id is None:
            raise InvalidInput(f"job {job.id} ({job.kind}) names no backup",
                               "submit it again through the API or the CLI")
        with self.db.session() as s:
            return catalog.get_backup(s, job.backup_id)

    def settings_for(self, target_name: str) -> Settings:
        """The settings for work on one target (its ``password_file`` option applied)."""
        from common.storage.allowlist import check_target_allowed

        with self.db.session() as s:
            t = catalog.get_target(s, target_name)
            url, options = t.url, dict(t.options)
        check_target_allowed(url, options, self.settings, resolve=True)
        return target_settings(self.settings, options)


def target_settings(settings: Settings, options: dict[str, object]) -> Settings:
    """The settings a worker uses for one target: its ``password_file`` option (a path on
    the worker hosts) replaces the process-wide passphrase for that target."""
    path = options.get("password_file")
    if not path:
        return settings
    return settings.model_copy(update={"repository_password_file": Path(str(path))})


@contextlib.contextmanager
def target_errors(target_name: str) -> Iterator[None]:
    """Prefix storage errors raised inside with the target's name (once)."""
    try:
        yield
    except StorageError as e:
        if e.message.startswith(("target ", "copy from target ")):
            raise
        named = type(e)(f"target {target_name!r}: {e.message}", e.hint)
        if hasattr(e, "result"):  # what the job did before (hooks, stopped containers)
            named.result = e.result  # type: ignore[attr-defined]
        raise named from e


_lock = threading.Lock()
_process: tuple[int, JobContext] | None = None
_bound: ContextVar[JobContext | None] = ContextVar("volkeeper_job_context", default=None)


def current() -> JobContext:
    """The context of this thread's job (see ``bound``), else of this process (built from
    the environment on first use)."""
    global _process
    ctx = _bound.get()
    if ctx is not None:
        return ctx
    with _lock:
        if _process is None or _process[0] != os.getpid():
            _process = (os.getpid(), JobContext(get_settings()))
        return _process[1]


def install(ctx: JobContext) -> None:
    """Use ``ctx`` as this process's context."""
    global _process
    with _lock:
        _process = (os.getpid(), ctx)


@contextlib.contextmanager
def bound(ctx: JobContext) -> Iterator[JobContext]:
    """Run the block (in this thread) with ``ctx`` as ``current()``, whatever is installed:
    an in-process dispatcher runs its jobs with its own context."""
    token = _bound.set(ctx)
    try:
        yield ctx
    finally:
        _bound.reset(token)

"""The one interface every command talks to, and how a command gets one.

Two implementations return the same JSON-able data (the views of ``common.jobs.views``):
``cli.remote.RemoteFront`` speaks HTTP to a volkeeper API (``--server``), and
``cli.local.LocalFront`` calls the services of ``common.jobs`` in this process (embedded:
no HTTP, no web framework). Commands never know which one they hold.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

from cli import startup
from cli.errors import CliError, Json
from cli.front_migrations import MigrationFront
from cli.front_policies import PolicyFront
from cli.settings import settings

if TYPE_CHECKING:
    from common.jobs.embedded_reads import CatalogReader

__all__ = ["CliError", "Front", "Json", "Options", "Reads", "connect", "connect_reads",
           "open_front", "open_reads"]


class Reads(Protocol):
    """The catalog's lists: what the read commands ask."""

    def volumes(self, host: str | None) -> list[Json]: ...
    def backups(self, **filters: Any) -> list[Json]: ...
    def backup_info(self, backup_id: str) -> Json: ...
    def jobs(self, limit: int, kind: str | None = None) -> list[Json]: ...


class Front(Reads, PolicyFront, MigrationFront, Protocol):
    """What the CLI can ask. Jobs come back as submitted (``state`` queued or running);
    ``job(id)`` shows one with its live progress."""

    #: True when jobs run in this process: the command must wait for them to finish.
    embedded: bool

    def hosts(self) -> list[Json]: ...
    def job(self, job_id: str) -> Json: ...
    def release_job(self, job_id: str, reason: str | None) -> Json: ...
    def cancel_job(self, job_id: str) -> Json:
        """Cancel a queued or running job; the job as it is now (409-like error if done)."""
        ...
    def pause(self, job_id: str, seconds: float, *, until_end: bool = False) -> None:
        """Wait up to ``seconds`` for news of a running job (at most that long);
        ``until_end``: only its end is news (a caller that shows no progress)."""
        ...
    def create_token(self, name: str, role: str) -> Json: ...
    def tokens(self) -> list[Json]: ...
    def revoke_token(self, name: str) -> Json: ...
    def audit(self, query: Json) -> list[Json]: ...
    def targets(self) -> list[Json]: ...
    def add_target(self, body: Json) -> Json: ...
    def remove_target(self, name: str) -> None: ...
    def remove_host(self, name: str, update_policies: bool = False) -> Json:
        """Forget a host (its inventory; its backups stay): what was removed, kept and
        (``update_policies``) changed in the policies naming it."""
        ...

    def backup(self, body: Json) -> Json: ...
    def group_backup(self, body: Json) -> Json:
        """One job backing up a Compose project's volumes or a named set."""
        ...
    def group_restore(self, group_id: str, body: Json) -> list[Json]:
        """One restore job per member of the group."""
        ...
    def restore(self, body: Json) -> Json: ...
    def validate_restore(self, body: Json) -> Json: ...
    def rollback(self, job_id: str) -> Json: ...
    def verify(self, backup_id: str, host: str | None, body: Json) -> Json: ...
    def drill(self, body: Json) -> Json: ...

    def label(self, backup_id: str, body: Json) -> Json: ...
    def forget(self, backup_id: str, host: str | None) -> Json: ...
    def copy(self, backup_id: str, body: Json) -> Json: ...
    def target_job(self, action: str, target: str, body: Json) -> Json:
        """``action``: prune, repair, stats, snapshots, unlock, keys/list or keys (add)."""
        ...
    def remove_key(self, target: str, key_id: str, host: str | None) -> Json: ...


@contextlib.contextmanager
def open_front(server: str | None, token: str | None, *, volume_sizes: bool = False,
               docker: bool = True) -> Iterator[Front]:
    """A remote front when a server is named, else the embedded one (whose inventory
    measures volume sizes only with ``volume_sizes``: Docker walks every file for that;
    ``docker=False``: a command that only reads the catalog, Docker is not asked)."""
    if server:
        from cli.remote import RemoteFront
        from common.auth import client_token

        # no --token: a loopback server of this VOLKEEPER_HOME is reached with its token file
        with RemoteFront(server, client_token(settings(), server, token)) as remote:
            startup.resume()
            yield remote
        return
    startup.defer_imports()  # before the embedded front imports SQLAlchemy (cli.startup)
    from cli.local import LocalFront

    with LocalFront(volume_sizes=volume_sizes, docker=docker) as local:
        startup.resume()
        yield local


@contextlib.contextmanager
def open_reads(server: str | None, token: str | None, *, inventory: bool = False,
               volume_sizes: bool = False) -> Iterator[Reads]:
    """The catalog's lists. Embedded, a read command starts short when it can
    (``common.jobs.embedded_reads``: the SQLite catalog read with the standard library,
    the inventory brought up to date first with ``inventory``), else as ``open_front``
    (``docker=inventory``); the answers are the same."""
    if not server:
        from common.jobs.embedded_reads import open_reader

        reader = open_reader(settings(), inventory=inventory, volume_sizes=volume_sizes)
        if reader is not None:
            startup.resume()
            try:
                yield _JsonReads(reader)
            finally:
                reader.close()
            return
    with open_front(server, token, volume_sizes=volume_sizes, docker=inventory) as front:
        yield front


class _JsonReads:
    """A ``CatalogReader``'s views as JSON, as every front returns them."""

    def __init__(self, reader: CatalogReader) -> None:
        self.reader = reader

    def volumes(self, host: str | None) -> list[Json]:
        from common.jobs.reads import jsonable

        return jsonable(self.reader.volumes(host))

    def backups(self, **filters: Any) -> list[Json]:
        from common.jobs.reads import jsonable

        return jsonable(self.reader.backups(
            **{k: v for k, v in filters.items() if v is not None}))

    def backup_info(self, backup_id: str) -> Json:
        from common.jobs.reads import jsonable

        return jsonable(self.reader.backup_info(backup_id))

    def jobs(self, limit: int, kind: str | None = None) -> list[Json]:
        from common.jobs.reads import jsonable

        return jsonable(self.reader.jobs(limit, kind))


class Options:
    """The global options (``--server``, ``--token``) of this invocation."""

    server: str | None = None
    token: str | None = None


def connect_reads(*, inventory: bool = False, volume_sizes: bool = False
                  ) -> contextlib.AbstractContextManager[Reads]:
    """The catalog's lists as the global options ask (``open_reads``)."""
    return open_reads(Options.server, Options.token, inventory=inventory,
                      volume_sizes=volume_sizes)


def connect(*, volume_sizes: bool = False, docker: bool = True
            ) -> contextlib.AbstractContextManager[Front]:
    """The front the global options ask for (``docker=False``: the command only reads the
    catalog, so the embedded front does not register the host with Docker first)."""
    return open_front(Options.server, Options.token, volume_sizes=volume_sizes,
                      docker=docker)

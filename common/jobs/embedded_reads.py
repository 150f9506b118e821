"""The embedded read commands' short start: ``volkeeper volumes``, ``backups`` and ``jobs``
read the SQLite catalog with the standard library's driver (``common.db.rows``) and build
their views with ``common.jobs.reads`` — the functions the API's views use — without
loading SQLAlchemy, pydantic's models of the views, or the job machinery.

That start is taken only when it would do all the full start (``EmbeddedRuntime.start``)
does; otherwise ``open_reader`` returns None and the command starts the full runtime:

- the database exists, its schema is at the newest revision and the default target is
  there (else the full start creates or upgrades them);
- nothing of killed jobs is to clean up (``host_rows.pending_cleanup``: no job queued or
  running, none keeps a lock or may have left objects);
- ``volumes`` only: the host's inventory is current. Docker is asked as the full start
  asks it (version, volumes, their containers and sizes: the engine's unix socket); when
  the engine's version and every volume but for its size (and the time Docker reports for
  it) are as recorded, those and the times seen are written (what ``replace_inventory``
  would change), else the full start registers the host and replaces the inventory.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from datetime import datetime
from typing import TYPE_CHECKING, Any

from common.db.revision import head_revision
from common.db.rows import SqliteRows, doc, when
from common.errors import VolkeeperError
from common.jobs import reads
from common.jobs.host_rows import VERSION, pending_cleanup, volume_row

if TYPE_CHECKING:
    from common.config import Settings
    from common.jobs.reads import View

log = logging.getLogger(__name__)
_SQLITE = "sqlite:///"


class CatalogReader:
    """The read views of the embedded catalog, on one SQLite connection."""

    def __init__(self, rows: SqliteRows) -> None:
        self.rows = rows

    def volumes(self, host: str | None) -> list[View]:
        return reads.list_volumes(self.rows, host)

    def backups(self, **filters: Any) -> list[View]:
        return reads.list_backups(self.rows, **filters)

    def backup_info(self, backup_id: str) -> View:
        return reads.get_backup(self.rows, backup_id)

    def jobs(self, limit: int, kind: str | None = None) -> list[View]:
        # no job runs (``pending_cleanup``): no live progress to merge
        return reads.list_jobs(self.rows, None, limit=limit, kind=kind)

    def close(self) -> None:
        self.rows.close()


def open_reader(settings: Settings, *, inventory: bool = False,
                volume_sizes: bool = False) -> CatalogReader | None:
    """A reader of the embedded catalog, or None when the command must take the full start
    (see the module doc). ``inventory``: bring the host's inventory up to date first
    (sizes measured only with ``volume_sizes``)."""
    url = settings.effective_database_url
    if not settings.short_reads or settings.mode != "embedded" or not url.startswith(_SQLITE):
        return None
    path = url[len(_SQLITE):]
    if not path or path == ":memory:" or not os.path.isfile(path):
        return None
    rows = SqliteRows(path)
    try:
        why = _why_full(rows, settings) or (_refresh(rows, settings, volume_sizes)
                                            if inventory else None)
    except (sqlite3.Error, VolkeeperError, OSError) as e:
        why = f"{type(e).__name__}: {e}"
    if why is not None:
        log.debug("full start: %s", why)
        rows.close()
        return None
    return CatalogReader(rows)


def _why_full(rows: SqliteRows, settings: Settings) -> str | None:
    """Why the catalog needs the full start (None: it does not)."""
    head = head_revision()
    stored = rows.all("SELECT version_num FROM alembic_version")
    if head is None or [r["version_num"] for r in stored] != [head]:
        return "the schema is not at the newest revision"
    if settings.creates_default_target and not rows.all(
            "SELECT name FROM targets WHERE name = :name", name=settings.default_target):
        return "no default target yet"
    return pending_cleanup(rows, settings.host_name, _db_now(rows))


def _refresh(rows: SqliteRows, settings: Settings, with_sizes: bool) -> str | None:
    """Bring the host's inventory up to date when only sizes and times change; else say
    why the full start (register, replace the inventory) is needed."""
    from common.docker import DockerHost

    found = rows.all("SELECT docker_version, worker_version, info FROM hosts "
                     "WHERE name = :name", name=settings.host_name)
    docker = DockerHost(settings.docker_host)
    version = docker.version()
    if not found or (found[0]["docker_version"], found[0]["worker_version"],
                     doc(found[0]["info"]).get("docker_host")) != (
                         version, VERSION, settings.docker_host):
        return "the host is not registered as it is now"
    stored = {v["name"]: v for v in rows.all("SELECT * FROM volumes WHERE host = :host",
                                             host=settings.host_name)}
    now_rows = [volume_row(v, (stored.get(v.name) or {}).get("size_bytes"))
                for v in docker.list_volumes(with_sizes=with_sizes)]
    if {v["name"] for v in now_rows} != set(stored) or any(
            _changed(v, stored[v["name"]]) for v in now_rows):
        return "the volumes changed"
    now = _db_now(rows)
    # times seen and sizes: a power loss may lose this refresh (the next command makes it
    # again), so the commit does not wait for the disk
    rows.run("PRAGMA synchronous=NORMAL")
    with rows.transaction():
        for v in now_rows:
            old = stored[v["name"]]
            if (v["size_bytes"], v["created_at"]) != (old["size_bytes"], old["created_at"]):
                rows.run("UPDATE volumes SET size_bytes = :size, created_at = :created "
                         "WHERE host = :host AND name = :name", size=v["size_bytes"],
                         created=v["created_at"], host=settings.host_name, name=v["name"])
        rows.run("UPDATE volumes SET seen_at = :now WHERE host = :host", now=now,
                 host=settings.host_name)
        rows.run("UPDATE hosts SET inventory_at = :now, last_seen_at = :now "
                 "WHERE name = :host", now=now, host=settings.host_name)
    return None


def _changed(now: dict[str, Any], stored: dict[str, Any]) -> bool:
    """Whether a volume differs from its stored row in anything but what writing into it
    changes: its size, and the ``created_at`` Docker's local driver reports (the time of
    its directory, which moves when a file is added at its top)."""
    return any(now[k] != (doc(stored[k]) if k in ("labels", "containers") else stored[k])
               for k in ("driver", "mountpoint", "labels", "containers"))


def _db_now(rows: SqliteRows) -> datetime:
    """The database's time, as ``common.db.clock.now`` reads it on SQLite."""
    now = when(rows.all("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now') AS now")[0]["now"])
    assert now is not None
    return now

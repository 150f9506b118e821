"""Apply Alembic migrations programmatically (API and worker start, `volkeeper db upgrade`).

On PostgreSQL an advisory lock serialises concurrent upgrades (several workers starting at
once); on SQLite an exclusive lock on ``<database>.migrate.lock`` does (two embedded
commands started at once on a new home would otherwise both create the schema). Alembic
is imported only when there is something to do: a database already at the newest revision
is recognised by reading its ``alembic_version`` row and the revision files' headers (a
few ms, where importing Alembic costs ~80 ms of every embedded CLI command).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from sqlalchemy import Connection, text
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from common.db.revision import head_revision, migrations_dir
from common.db.session import Database
from common.errors import Unavailable

if TYPE_CHECKING:
    from alembic.config import Config

_LOCK_ID = 0x766B6565  # "vkee"


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def stored_revision(db: Database) -> str | None:
    """The revision recorded in the database; None when it has no schema yet."""
    try:
        with db.engine.connect() as conn:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    except SQLAlchemyError:
        return None
    return str(rows[0][0]) if len(rows) == 1 else None


def at_head(db: Database) -> bool:
    """Whether the database schema is at the newest revision (no Alembic import)."""
    head = head_revision()
    return head is not None and stored_revision(db) == head


def upgrade(db: Database, revision: str = "head", *, quiet: bool = False) -> None:
    """Bring the database schema to ``revision`` (default: the newest); returns at once
    when it is there already. ``quiet`` keeps Alembic's INFO lines out of the log."""
    if revision == "head" and at_head(db):
        return
    with _sqlite_lock(db):
        if revision == "head" and at_head(db):  # another process did it meanwhile
            return
        _upgrade(db, revision, quiet)


@contextlib.contextmanager
def _sqlite_lock(db: Database) -> Iterator[None]:
    """An exclusive lock beside a SQLite database file (nothing for other databases)."""
    path = db.url.split("///", 1)[-1] if db.url.startswith("sqlite") else ""
    if not path or path == ":memory:":
        yield
        return
    fd = os.open(f"{path}.migrate.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _upgrade(db: Database, revision: str, quiet: bool) -> None:
    from alembic import command

    cfg = alembic_config(db.url)
    alembic_log = logging.getLogger("alembic")
    level = alembic_log.level
    if quiet:
        alembic_log.setLevel(logging.WARNING)
    try:
        with _connect(db) as conn:
            postgres = conn.dialect.name == "postgresql"
            if postgres:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _LOCK_ID})
            try:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
                conn.commit()
            finally:
                if postgres:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _LOCK_ID})
                    conn.commit()
    finally:
        alembic_log.setLevel(level)


def _connect(db: Database) -> Connection:
    """A connection for the upgrade; a database that cannot be reached (down, wrong
    address or credentials) is Unavailable, saying which (without the password) and
    what to check — the first thing ``serve``, ``worker`` and ``db upgrade`` do."""
    try:
        return db.engine.connect()
    except OperationalError as e:
        reason = str(e.orig or e).strip().splitlines()[0] if str(e.orig or e).strip() else ""
        where = db.engine.url.render_as_string(hide_password=True)
        hint = ("check that VOLKEEPER_HOME is a directory this user can write and that "
                "its volkeeper.db is a file" if db.engine.url.get_backend_name() == "sqlite"
                else "check VOLKEEPER_DATABASE_URL and that the database server runs and "
                "accepts connections from this host")
        raise Unavailable(f"cannot reach the database {where}: {reason}", hint) from None


def current_revision(db: Database) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()

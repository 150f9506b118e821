"""Apply Alembic migrations programmatically (API and worker start, `volkeeper db upgrade`).

On PostgreSQL an advisory lock serialises concurrent upgrades (several workers starting at
once); SQLite serialises through its own file lock.
"""

from __future__ import annotations

import importlib.util
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text

from common.db.session import Database

if TYPE_CHECKING:
    from alembic.config import Config

_REVISION = re.compile(r"^(down_revision|revision)\b[^=]*=\s*['\"]?([\w]+|None)['\"]?", re.M)


def _migrations_dir() -> Path:
    spec = importlib.util.find_spec("migrations")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the volkeeper 'migrations' package is not installed")
    return Path(next(iter(spec.submodule_search_locations)))
_LOCK_ID = 0x766B6565  # "vkee"


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_migrations_dir()))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the database schema to ``revision`` (default: the newest), without Alembic's
    INFO lines (a migration that runs is reported by the caller if it wants)."""
    from alembic import command

    logging.getLogger("alembic").setLevel(logging.WARNING)
    cfg = alembic_config(db.url)
    with db.engine.connect() as conn:
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


def current_revision(db: Database) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revisions() -> set[str]:
    """The newest revision(s) of the migration scripts, read from their files (cheap: no
    Alembic import)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in (_migrations_dir() / "versions").glob("*.py"):
        for kind, value in _REVISION.findall(script.read_text(encoding="utf-8")):
            if value != "None":
                (revisions if kind == "revision" else parents).add(value)
    return revisions - parents


def upgrade_if_needed(db: Database) -> bool:
    """Upgrade the schema unless it is at the head already (checked without importing
    Alembic, so a one-shot command on a current database stays fast). True if it ran."""
    with db.engine.connect() as conn:
        current: set[str] = set()
        if inspect(conn).has_table("alembic_version"):
            current = {str(r) for r in conn.execute(
                text("SELECT version_num FROM alembic_version")).scalars()}
    if current and current == head_revisions():
        return False
    upgrade(db)
    return True

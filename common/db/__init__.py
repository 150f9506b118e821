"""Job history and catalog: SQLAlchemy tables, the session factory and query functions.

Tables: ``hosts`` (Docker hosts with a worker, heartbeat), ``volumes`` (last inventory of
each host), ``targets`` (named storage locations), ``jobs`` (every backup/restore with its
state machine queued → running → succeeded|failed|cancelled) and ``backups`` (the catalog of stored
archives), ``api_tokens`` (named tokens with a role, hashed) and ``audit_log``
(every state-changing request), ``policies`` (schedules, retention, RPO) and ``leases``
(one scheduler at a time), ``migrations`` (volume migrations and their phases).
PostgreSQL in the fleet, SQLite embedded; Alembic migrations in ``migrations/``.

The names below load SQLAlchemy when first used, not when the package is imported: the
embedded read commands use only ``common.db.rows`` (the standard library's SQLite driver).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from common.db.migration_rows import Migration
    from common.db.models import (
        ApiToken,
        AuditEntry,
        Backup,
        Base,
        Host,
        Job,
        JobState,
        Lease,
        Policy,
        Target,
        Volume,
    )
    from common.db.session import Database

__all__ = ["ApiToken", "AuditEntry", "Backup", "Base", "Database", "Host", "Job", "JobState",
           "Lease", "Migration", "Policy", "Target", "Volume"]

_HOME = {"Migration": "common.db.migration_rows", "Database": "common.db.session"}


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module(_HOME.get(name, "common.db.models")), name)
    try:  # ``from common.db import catalog``: a submodule
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as e:
        if e.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None

"""Job history and catalog: SQLAlchemy tables, the session factory and query functions.

Tables: ``hosts`` (Docker hosts with a worker, heartbeat), ``volumes`` (last inventory of
each host), ``targets`` (named storage locations), ``jobs`` (every backup/restore with its
state machine queued → running → succeeded|failed|cancelled) and ``backups`` (the catalog of stored
archives), ``api_tokens`` (named tokens with a role, hashed) and ``audit_log``
(every state-changing request), ``policies`` (schedules, retention, RPO) and ``leases``
(one scheduler at a time), ``migrations`` (volume migrations and their phases).
PostgreSQL in the fleet, SQLite embedded; Alembic migrations in ``migrations/``.
"""

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

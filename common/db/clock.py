"""The database's clock. Times that one machine writes and another judges (heartbeats,
``last_seen_at``, a job's start and end) are taken from the database server, so a worker
whose clock is off by minutes is neither failed as stale nor shown offline.

``db_now()`` is the SQL expression for "now, in UTC" (PostgreSQL ``CURRENT_TIMESTAMP``;
SQLite ``strftime('%Y-%m-%d %H:%M:%f', 'now')`` — millisecond resolution, in the text
form SQLAlchemy stores datetimes in, so stored values compare correctly as strings);
``now(session)`` reads it once as an aware ``datetime``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from common.db.models import UTCDateTime


class db_now(FunctionElement[datetime]):
    """The database server's current time (UTC) as a SQL expression."""

    type = UTCDateTime()
    name = "db_now"
    inherit_cache = True


@compiles(db_now)
def _now_default(element: db_now, compiler: Any, **kw: Any) -> str:
    return "CURRENT_TIMESTAMP"


@compiles(db_now, "sqlite")
def _now_sqlite(element: db_now, compiler: Any, **kw: Any) -> str:
    # CURRENT_TIMESTAMP has whole seconds only; %f gives SS.SSS
    return "strftime('%Y-%m-%d %H:%M:%f', 'now')"


def now(session: Session) -> datetime:
    """The database server's current time (UTC, timezone-aware)."""
    value = session.scalar(select(db_now()))
    assert value is not None
    return value

"""The catalog's list views (``common.jobs.reads``: SQL text through a SQLAlchemy session)
on a real PostgreSQL: its times, JSON and boolean columns come back as the views expect
and the API's models print the same."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from common.db import JobState
from common.db.migrate import upgrade
from common.db.rows import SessionRows
from common.db.session import Database
from common.jobs import reads, views
from tests.unit.jobs.test_reads import assert_meaning, fill

pytestmark = pytest.mark.integration


def test_the_list_views_read_postgresql_as_they_read_sqlite(postgres_server: Any) -> None:
    db = Database(postgres_server.create_database(f"reads_{uuid.uuid4().hex[:8]}"))
    try:
        upgrade(db, quiet=True)
        fill(db)
        with db.session() as s:
            assert_meaning(SessionRows(s))
            assert views.dump(views.list_backups(s, kind="all")) == reads.jsonable(
                reads.list_backups(SessionRows(s), kind=None))
            assert views.dump(views.list_volumes(s, "h1", overdue=False)) == reads.jsonable(
                reads.list_volumes(SessionRows(s), "h1", overdue=False))
            assert views.dump(views.list_jobs(s, None, state=JobState.failed)) == reads.jsonable(
                reads.list_jobs(SessionRows(s), None, state="failed"))
    finally:
        db.dispose()

"""Migration 0015 on PostgreSQL (the fleet's catalog): the backfill of each backup's dumps
from the JSON of its job's record."""

from __future__ import annotations

import pytest

from common.db import Database
from tests.fixtures.servers import PostgresServer
from tests.unit.migration.test_schema_0015 import (
    before_0015_with_rows,
    check_0015,
    check_downgrade_0014,
)

pytestmark = pytest.mark.integration


def test_0015_keeps_each_backups_dumps_on_its_row_on_postgres(postgres_server: PostgresServer
                                                              ) -> None:
    db = Database(postgres_server.create_database("migration_0015"))
    before_0015_with_rows(db)
    check_0015(db)
    check_downgrade_0014(db)
    db.dispose()

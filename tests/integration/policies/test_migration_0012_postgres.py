"""Migration 0012 (the created_at indexes) on PostgreSQL (the fleet's catalog)."""

from __future__ import annotations

import pytest

from common.db import Database
from tests.fixtures.servers import PostgresServer
from tests.unit.migration.test_schema_0012 import (
    before_0012_with_rows,
    check_0012,
    check_downgrade_0013,
)

pytestmark = pytest.mark.integration


def test_0012_adds_the_created_at_indexes_beside_existing_rows_on_postgres(
        postgres_server: PostgresServer) -> None:
    db = Database(postgres_server.create_database("migration_0012"))
    before_0012_with_rows(db)
    check_0012(db)
    check_downgrade_0013(db)
    db.dispose()

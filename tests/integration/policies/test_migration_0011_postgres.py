"""Migration 0011 on PostgreSQL (the fleet's catalog)."""

from __future__ import annotations

import pytest

from common.db import Database
from tests.fixtures.servers import PostgresServer
from tests.unit.migration.test_schema_0011 import (
    before_0011_with_rows,
    check_0011,
    check_downgrade,
)

pytestmark = pytest.mark.integration


def test_0011_adds_migrations_beside_existing_rows_on_postgres(
        postgres_server: PostgresServer) -> None:
    db = Database(postgres_server.create_database("migration_0011"))
    before_0011_with_rows(db)
    check_0011(db)
    check_downgrade(db)
    db.dispose()

"""Migration 0007 on PostgreSQL (the fleet's catalog)."""

from __future__ import annotations

import pytest

from common.db import Database
from tests.fixtures.servers import PostgresServer
from tests.unit.policies.test_migration import before_0007_with_rows, check_0007, check_downgrade

pytestmark = pytest.mark.integration


def test_0007_adds_policies_beside_existing_rows_on_postgres(
        postgres_server: PostgresServer) -> None:
    db = Database(postgres_server.create_database("migration_0007"))
    before_0007_with_rows(db)
    check_0007(db)
    check_downgrade(db)
    db.dispose()

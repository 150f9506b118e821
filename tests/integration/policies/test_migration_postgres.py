"""Migration 0009 on PostgreSQL (the fleet's catalog)."""

from __future__ import annotations

import pytest

from common.db import Database
from tests.fixtures.servers import PostgresServer
from tests.unit.policies.test_migration import before_0009_with_rows, check_0009, check_downgrade

pytestmark = pytest.mark.integration


def test_0009_adds_policies_beside_existing_rows_on_postgres(
        postgres_server: PostgresServer) -> None:
    db = Database(postgres_server.create_database("migration_0009"))
    before_0009_with_rows(db)
    check_0009(db)
    check_downgrade(db)
    db.dispose()

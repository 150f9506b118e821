"""Migration 0010 on PostgreSQL (the fleet's catalog)."""

from __future__ import annotations

import pytest

from common.db import Database
from tests.fixtures.servers import PostgresServer
from tests.unit.policies.test_migration_cadence import (
    before_0010_with_a_policy,
    check_0010,
    check_downgrade_0009,
)

pytestmark = pytest.mark.integration


def test_0010_adds_the_cadence_columns_on_postgres(postgres_server: PostgresServer) -> None:
    db = Database(postgres_server.create_database("migration_0010"))
    before_0010_with_a_policy(db)
    check_0010(db)
    check_downgrade_0009(db)
    db.dispose()

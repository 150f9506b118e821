"""Migration 0014 on PostgreSQL (the fleet's catalog)."""

from __future__ import annotations

import pytest

from common.db import Database
from tests.fixtures.servers import PostgresServer
from tests.unit.policies.test_migration_consistency import (
    before_0014_with_a_policy,
    check_0014,
    check_downgrade_0012,
)

pytestmark = pytest.mark.integration


def test_0014_adds_the_consistency_columns_on_postgres(postgres_server: PostgresServer
                                                       ) -> None:
    db = Database(postgres_server.create_database("migration_0014"))
    before_0014_with_a_policy(db)
    check_0014(db)
    check_downgrade_0012(db)
    db.dispose()

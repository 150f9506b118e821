"""Migration 0005 on PostgreSQL (the fleet's catalog), with rows of both formats."""

from __future__ import annotations

import pytest

from common.db import Database
from tests.fixtures.servers import PostgresServer
from tests.unit.common.test_catalog_migration import check_upgraded, insert_rows_at_0004

pytestmark = pytest.mark.integration


def test_upgrading_a_postgres_catalog_with_both_formats_keeps_every_row(
        postgres_server: PostgresServer) -> None:
    db = Database(postgres_server.create_database("migration_0005"))
    insert_rows_at_0004(db)
    check_upgraded(db)
    db.dispose()

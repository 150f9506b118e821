"""Two label changes of one backup at once both count on PostgreSQL too (the row is
locked by an UPDATE before it is read)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from tests.unit.api.test_api import _make
from tests.unit.api.test_concurrent_labels import assert_label_changes_add_up

pytestmark = pytest.mark.integration


def test_label_changes_add_up_on_postgres(postgres_server: Any, tmp_path: Path) -> None:
    url = postgres_server.create_database(f"labels_{uuid.uuid4().hex[:8]}")
    for env in _make(tmp_path, database_url=url, api_token=SecretStr("t0ken")):
        assert_label_changes_add_up(env, {"Authorization": "Bearer t0ken"})

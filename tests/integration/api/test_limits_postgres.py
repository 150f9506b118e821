"""The list limits against a real PostgreSQL: ``limit`` below 1 is a 422 naming it, not
a database error (500)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from tests.unit.api.test_api import _make
from tests.unit.api.test_limits import assert_limits_checked

pytestmark = pytest.mark.integration


def test_lists_refuse_a_limit_below_one_on_postgres(postgres_server: Any, tmp_path: Path
                                                     ) -> None:
    url = postgres_server.create_database(f"limits_{uuid.uuid4().hex[:8]}")
    for env in _make(tmp_path, database_url=url, api_token=SecretStr("t0ken")):
        auth = {"Authorization": "Bearer t0ken"}
        assert_limits_checked(env.client, auth)
        r = env.client.get("/api/v1/jobs", params={"limit": 5}, headers=auth)
        assert r.status_code == 200

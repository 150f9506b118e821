"""NUL characters and lone surrogates against a real PostgreSQL: a 422 naming where, not a
database error (500) — the two 500s fuzzing found (tests/integration/api/test_fuzz.py)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from tests.unit.api.test_api import _make
from tests.unit.api.test_text import assert_text_checked

pytestmark = pytest.mark.integration


def test_nul_characters_and_lone_surrogates_are_refused_on_postgres(
        postgres_server: Any, tmp_path: Path) -> None:
    url = postgres_server.create_database(f"text_{uuid.uuid4().hex[:8]}")
    for env in _make(tmp_path, database_url=url, api_token=SecretStr("t0ken")):
        assert_text_checked(env.client, {"Authorization": "Bearer t0ken"})

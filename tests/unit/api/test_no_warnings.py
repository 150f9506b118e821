"""A served API prints no warnings: its request models defer their build to their first
use (for the CLI's start), and pydantic's warning about the body ``alias`` FastAPI adds
itself is silenced as FastAPI silences it (``api.main._quiet_deferred_models``)."""

from __future__ import annotations

import warnings
from pathlib import Path

from common.config import Settings
from tests.fixtures.embedded import embedded_http


def test_the_first_request_on_each_body_model_warns_nothing(tmp_path: Path) -> None:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with embedded_http(Settings(home=tmp_path)) as http:
            refused = http.post("/api/v1/backups", json={"volume": "v", "bogus": 1})
            assert refused.status_code == 422
            assert http.post("/api/v1/targets", json={"name": ""}).status_code == 422
    assert [str(w.message) for w in seen
            if "httpx" not in str(w.message)] == []  # TestClient's own deprecation aside

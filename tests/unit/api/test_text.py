"""No text the API stores or queries may hold a NUL character or a lone surrogate: 422
naming where, on every database (found by fuzzing the fleet API: PostgreSQL refuses such
a query, which was a 500). Shared with tests/integration/api/test_text_postgres.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from common.errors import InvalidInput
from common.jobs.inputs import BackupIn, parse, text_problem
from tests.unit.api.test_api import Env, _make, error

BAD_BODIES: list[tuple[str, str, dict[str, Any], str]] = [
    ("POST", "/api/v1/targets/fz/stats", {"host": "h\x00"}, "host holds a NUL"),
    ("POST", "/api/v1/targets/fz/prune", {"host": "\ud800x"}, "host is not valid Unicode"),
    ("POST", "/api/v1/backups", {"volume": "data", "host": "a\x00b"}, "host holds a NUL"),
    ("POST", "/api/v1/targets", {"name": "t", "url": "file:///srv/x",
                                 "options": {"region": "\x00"}}, "options.region holds"),
    ("POST", "/api/v1/tokens", {"name": "n\x00", "role": "viewer"}, "name holds a NUL"),
]
BAD_URLS = ["/api/v1/volumes?host=%00", "/api/v1/jobs?volume=a%00", "/api/v1/backups/%00",
            "/api/v1/hosts/h%00/volumes/v"]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    yield from _make(tmp_path)


def assert_text_checked(client: TestClient, headers: dict[str, str] | None = None) -> None:
    """What every database must answer."""
    r = client.post("/api/v1/targets", json={"name": "fz", "url": "file:///srv/fz"},
                    headers=headers)
    assert r.status_code == 201, r.text
    for method, path, body, problem in BAD_BODIES:
        # as JSON escapes (\u0000, \ud800): what a client sends over the wire
        r = client.request(method, path, content=json.dumps(body),
                           headers={"Content-Type": "application/json"} | (headers or {}))
        assert r.status_code == 422, (path, body, r.text)
        assert problem in error(r)["hint"] + error(r)["message"], (path, r.text)
    for url in BAD_URLS:
        r = client.get(url, headers=headers)
        assert r.status_code == 422, (url, r.text)
        assert "NUL" in error(r)["message"], r.text
    assert client.get("/api/v1/volumes", params={"host": "h1"},
                      headers=headers).status_code == 200


def test_nul_characters_and_lone_surrogates_are_refused_on_sqlite(env: Env) -> None:
    assert_text_checked(env.client)


def test_the_text_check_walks_nested_keys_and_values() -> None:
    assert text_problem({"a": ["ok", {"b": "x\x00"}]}) == "a[1].b holds a NUL character"
    assert text_problem({"k\x00": 1}) == "a key of the body holds a NUL character"
    assert text_problem({"a": 1, "b": ["fine", "ünïcödé"]}) is None
    with pytest.raises(InvalidInput, match="host holds a NUL"):  # the CLI's parse too
        parse(BackupIn, {"volume": "v", "host": "\x00"})

"""Every list refuses a ``limit`` below 1 with a 422 naming it, the same on SQLite and
PostgreSQL (where ``LIMIT -1`` used to mean "everything" and a 500 respectively)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from common.db import catalog
from common.db.models import utcnow
from common.db.paging import MAX_ROWS, page_limit
from common.errors import InvalidInput
from tests.unit.api.test_api import Env, _make, error

LISTS = ("/api/v1/jobs", "/api/v1/backups", "/api/v1/drills", "/api/v1/audit")


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    yield from _make(tmp_path)


def assert_limits_checked(client: TestClient, headers: dict[str, str] | None = None) -> None:
    """What every database must answer (shared with the PostgreSQL integration test)."""
    for path in LISTS:
        for bad in (0, -1):
            r = client.get(path, params={"limit": bad}, headers=headers)
            assert r.status_code == 422, (path, bad, r.text)
            assert error(r)["message"].startswith("limit must be"), path
            assert "limit=" in error(r)["hint"]
        assert client.get(path, params={"limit": 1}, headers=headers).status_code == 200


def test_lists_refuse_a_limit_below_one_on_sqlite(env: Env) -> None:
    env.client.post("/api/v1/backups", json={"volume": "data"})
    env.client.post("/api/v1/backups", json={"volume": "data"})  # a second queued job
    assert_limits_checked(env.client)
    assert len(env.client.get("/api/v1/jobs", params={"limit": 1}).json()) == 1


def test_the_catalog_refuses_it_whatever_front_asks(env: Env) -> None:
    with env.db.session() as s, pytest.raises(InvalidInput, match="limit must be"):
        catalog.list_backups(s, limit=-1)
    assert page_limit(5) == 5 and page_limit(10**9) == MAX_ROWS
    for bad in (0, -5, True):
        with pytest.raises(InvalidInput):
            page_limit(bad)


def test_pages_after_the_first_come_with_offset_and_a_negative_one_is_422(env: Env) -> None:
    with env.db.session() as s:
        for i in range(5):
            catalog.add_backup(s, host="laptop", volume="data", target="local", format="tar",
                               key=f"k{i}", manifest_key="m", checksum="0" * 64,
                               created_at=utcnow() - timedelta(hours=i))
    ids = [b["id"] for b in env.client.get("/api/v1/backups").json()]
    pages = [env.client.get("/api/v1/backups", params={"limit": 2, "offset": o}).json()
             for o in (0, 2, 4)]
    assert [b["id"] for p in pages for b in p] == ids and len(ids) == 5
    for path in ("/api/v1/backups", "/api/v1/jobs"):
        r = env.client.get(path, params={"offset": -1})
        assert r.status_code == 422 and error(r)["message"].startswith("offset must be")


def test_the_audit_log_pages_like_the_other_lists(env: Env) -> None:
    # its limit was clamped silently (-1 gave one row) and it had no offset: entries
    # older than the newest 1000 could not be read
    for _ in range(3):
        env.client.post("/api/v1/backups", json={"volume": "data"})
    ids = [e["id"] for e in env.client.get("/api/v1/audit").json()]
    assert len(ids) >= 3
    page = env.client.get("/api/v1/audit", params={"limit": 1, "offset": 1})
    assert [e["id"] for e in page.json()] == ids[1:2]
    r = env.client.get("/api/v1/audit", params={"offset": -1})
    assert r.status_code == 422 and error(r)["message"].startswith("offset must be")


def test_an_offset_past_a_database_integer_is_422(env: Env) -> None:
    # 10**20 reached the database driver: OverflowError, a 500
    for path in ("/api/v1/jobs", "/api/v1/backups", "/api/v1/audit"):
        r = env.client.get(path, params={"offset": 10**20})
        assert r.status_code == 422, (path, r.text)
        assert error(r)["message"].startswith("offset must be at most")
        assert env.client.get(path, params={"offset": 10**12}).json() == []

"""``POST /api/v1/targets/{name}/migrate`` checks the request in the API process (two
registered, different targets; volumes that have backups there) and queues one
``migrate-target`` job, audited; the move itself is the worker's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from common.db import catalog
from tests.unit.api.test_api import Env, _make, error
from tests.unit.jobs.test_operations import _backup


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    for e in _make(tmp_path):
        with e.db.session() as s:
            catalog.add_target(s, "far", "file:///srv/far", {}, {})
        yield e


def test_a_migration_is_one_queued_job_and_bad_requests_name_what_to_fix(env: Env) -> None:
    _backup(env)
    r = env.client.post("/api/v1/targets/local/migrate",
                        json={"destination": "far", "volumes": ["data"],
                              "delete_source": True})
    assert r.status_code == 202, r.text
    job = r.json()
    assert (job["kind"], job["target"], job["host"]) == ("migrate-target", "local", "h1")
    assert job["params"] == {"destination": "far", "volumes": ["data"], "delete_source": True}
    assert env.dispatcher.sent[-1][0] == "volkeeper.migrate_target"
    busy = env.client.post("/api/v1/targets/local/migrate", json={"destination": "far"})
    assert busy.status_code == 409  # one migration per pair of targets at a time
    same = env.client.post("/api/v1/targets/local/migrate", json={"destination": "local"})
    assert same.status_code == 422 and "two different targets" in error(same)["hint"]
    ghost = env.client.post("/api/v1/targets/local/migrate", json={"destination": "nas"})
    assert ghost.status_code == 404 and "nas" in error(ghost)["message"]
    novol = env.client.post("/api/v1/targets/far/migrate",
                            json={"destination": "local", "volumes": ["data"]})
    assert novol.status_code == 422 and "'data'" in error(novol)["message"]
    audit = env.client.get("/api/v1/audit", params={"action": "target.migrate"}).json()
    assert audit[-1]["outcome"] == "queued"  # newest first: the last is the first call

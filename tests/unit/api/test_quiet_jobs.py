"""Quick helper jobs — browse (a backup's directory listed for the console's tree) and a
migration's probes (``migration-check``, ``migration-exists``) — stay out of the job
history unless asked for by kind: the API's GET /jobs and the CLI's ``volkeeper jobs``
leave them out by default and list them with ``kind=browse`` / ``--kind browse``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.db import jobs
from tests.unit.api.test_api import Env, _make
from tests.unit.cli.test_release import _cli


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    yield from _make(tmp_path)


def _seed(env: Env, kind: str = "browse") -> tuple[str, str]:
    with env.db.session() as s:
        backup = jobs.create_job(s, kind="backup", host="h1", volume="data").id
        browse = jobs.create_job(s, kind=kind, host="h1", volume="data",
                                 lock=f"{kind}/x").id
    return backup, browse


@pytest.mark.parametrize("kind", ["browse", "migration-check", "migration-exists"])
def test_the_job_list_leaves_quiet_jobs_out_unless_asked_by_kind(env: Env, kind: str) -> None:
    backup, browse = _seed(env, kind)
    listed = [j["id"] for j in env.client.get("/api/v1/jobs").json()]
    assert backup in listed and browse not in listed
    queued = [j["id"] for j in env.client.get("/api/v1/jobs",
                                              params={"job_state": "queued"}).json()]
    assert backup in queued and browse not in queued
    asked = [j["id"] for j in env.client.get("/api/v1/jobs", params={"kind": kind}).json()]
    assert asked == [browse]
    assert env.client.get(f"/api/v1/jobs/{browse}").json()["kind"] == kind  # reachable


def test_the_cli_lists_browse_jobs_only_with_kind(env: Env, tmp_path: Path) -> None:
    backup, browse = _seed(env)
    p = _cli(tmp_path, "jobs", "--json")
    assert p.returncode == 0, p.stderr
    assert [j["id"] for j in json.loads(p.stdout)] == [backup]
    p = _cli(tmp_path, "jobs", "--kind", "browse", "--json")
    assert p.returncode == 0, p.stderr
    assert [j["id"] for j in json.loads(p.stdout)] == [browse]

"""List filters a user sends are honoured or refused, never silently ignored: GET /jobs
takes ``state`` (and its older name ``job_state``, which the console sends); an unknown
job or backup kind, or migration state, is 422 naming the known ones, in the API and in
``volkeeper jobs``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from common.db import JobState, jobs
from tests.unit.api.test_api import Env, _make
from tests.unit.cli.test_release import _cli


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    yield from _make(tmp_path)


def _seed(env: Env) -> tuple[str, str]:
    with env.db.session() as s:
        queued = jobs.create_job(s, kind="backup", host="h1", volume="a").id
        failed = jobs.create_job(s, kind="backup", host="h1", volume="b").id
        jobs.start_job(s, failed, "w")
        jobs.finish_job(s, failed, JobState.failed, error="boom")
    return queued, failed


def test_jobs_filter_by_state_under_both_names(env: Env) -> None:
    queued, failed = _seed(env)
    for name in ("state", "job_state"):
        got = env.client.get("/api/v1/jobs", params={name: "failed"})
        assert [j["id"] for j in got.json()] == [failed], name
        got = env.client.get("/api/v1/jobs", params={name: "queued"})
        assert [j["id"] for j in got.json()] == [queued], name
    both = env.client.get("/api/v1/jobs", params={"state": "failed", "job_state": "queued"})
    assert both.status_code == 422
    assert env.client.get("/api/v1/jobs", params={"state": "bogus"}).status_code == 422


def test_unknown_kinds_are_refused_naming_the_known_ones(env: Env) -> None:
    r = env.client.get("/api/v1/jobs", params={"kind": "bogus"})
    assert r.status_code == 422 and "bogus" in r.text and "restore" in r.text, r.text
    r = env.client.get("/api/v1/backups", params={"kind": "bogus"})
    assert r.status_code == 422 and "safety" in r.text, r.text
    assert env.client.get("/api/v1/backups", params={"kind": "all"}).status_code == 200
    r = env.client.get("/api/v1/migrations", params={"state": "bogus"})
    assert r.status_code == 422 and "rolled_back" in r.text, r.text
    assert env.client.get("/api/v1/migrations", params={"state": "failed"}).json() == []


def test_the_cli_refuses_an_unknown_job_kind(env: Env, tmp_path: Path) -> None:
    _seed(env)
    p = _cli(tmp_path, "jobs", "--kind", "bogus")
    assert p.returncode != 0
    assert "bogus" in p.stderr + p.stdout and "restore" in p.stderr + p.stdout, p

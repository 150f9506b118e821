"""``GET /metrics`` (Prometheus text, computed from the database at scrape time, behind a
token unless made public) and ``GET /api/v1/health`` (database, Redis, scheduler and each
host's worker; overall status)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from common.db import Host, JobState, catalog, jobs
from common.db.models import utcnow
from common.jobs.release import cancel_job
from tests.unit.api.test_api import Env, _make
from tests.unit.api.test_auth import bare, bearer


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    yield from _make(tmp_path, metrics_token="scrape-only-token-0123456789")


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _backup_job(env: Env, state: JobState, seconds: float, **backup: Any) -> str:
    with env.db.session() as s:
        job = jobs.create_job(s, kind="backup", host="h1", volume="data", target="local")
        jobs.start_job(s, job.id, "w")
        job.started_at = utcnow() - timedelta(seconds=seconds)
        job_id = job.id
    with env.db.session() as s:
        jobs.finish_job(s, job_id, state, error=None if state == JobState.succeeded else "x")
        if backup:
            catalog.add_backup(s, job_id=job_id, host="h1", volume="data", target="local",
                               format="tar", key=f"k/{job_id}", manifest_key="m",
                               checksum="0" * 64, **backup)
    return job_id


def test_metrics_are_computed_from_the_catalog_and_history(env: Env) -> None:
    _backup_job(env, JobState.succeeded, 40, stored_bytes=100, logical_bytes=1000,
                file_count=3)
    _backup_job(env, JobState.succeeded, 12, stored_bytes=7, logical_bytes=1001, file_count=3)
    _backup_job(env, JobState.failed, 5)
    with env.db.session() as s:  # a newer safety snapshot is not a good backup
        catalog.add_backup(s, job_id=None, host="h1", volume="data", target="local",
                           format="tar", key="safety", manifest_key="m", checksum="1" * 64,
                           stored_bytes=5, logical_bytes=5, kind="safety")
        jobs.create_job(s, kind="verify", host="h1", volume="data", lock="verify/x")
    cancel_job(env.db, _queued(env), by="alice")  # a cancelled backup
    r = env.client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    m = samples(r.text)
    vol = (("host", "h1"), ("volume", "data"))
    assert m[("volkeeper_volume_last_good_backup_logical_bytes", vol)] == 1001
    assert m[("volkeeper_volume_last_good_backup_stored_bytes", vol)] == 7
    assert 11 < m[("volkeeper_volume_last_good_backup_duration_seconds", vol)] < 14
    assert m[("volkeeper_volume_last_good_backup_timestamp_seconds", vol)] > 1.7e9
    ok = (("kind", "backup"), ("outcome", "succeeded"))
    assert m[("volkeeper_jobs_total", ok)] == 2
    assert m[("volkeeper_jobs_total", (("kind", "backup"), ("outcome", "failed")))] == 1
    assert m[("volkeeper_jobs_total", (("kind", "backup"), ("outcome", "cancelled")))] == 1
    assert m[("volkeeper_job_duration_seconds_count", ok)] == 2
    assert 50 < m[("volkeeper_job_duration_seconds_sum", ok)] < 55
    assert m[("volkeeper_queue_depth", (("host", "h1"),))] == 1  # the verify
    assert m[("volkeeper_target_backups", (("target", "local"),))] == 3
    assert m[("volkeeper_host_up", (("host", "h1"),))] == 1
    assert m[("volkeeper_scheduler_up", ())] == 0


def _queued(env: Env) -> str:
    with env.db.session() as s:
        return jobs.create_job(s, kind="backup", host="h1", volume="other").id


def test_a_deleted_volumes_backup_series_go_a_volume_not_inventoried_yet_keeps_them(
        env: Env) -> None:
    """A volume gone from its host's inventory has no last-good-backup series (its backups
    stay listed); one backed up after the last inventory (new, not seen yet) has them."""
    def backup(volume: str, age: timedelta) -> None:
        with env.db.session() as s:
            catalog.add_backup(s, host="h1", volume=volume, target="local", format="tar",
                               key=f"k/{volume}", manifest_key="m", checksum="0" * 64,
                               created_at=utcnow() - age)

    backup("data", timedelta(hours=2))
    backup("dropped", timedelta(hours=1))  # deleted since: the inventory is newer
    backup("fresh", timedelta(hours=-1))  # taken after the inventory
    family = "volkeeper_volume_last_good_backup_timestamp_seconds"
    m = samples(env.client.get("/metrics").text)
    got = {dict(k[1])["volume"] for k in m if k[0] == family}
    assert got == {"data", "fresh"}
    listed = {b["volume"] for b in env.client.get("/api/v1/backups").json()}
    assert listed == {"data", "dropped", "fresh"}


def test_metrics_need_a_token_unless_public(env: Env, tmp_path: Path) -> None:
    with bare(env) as c:
        r = c.get("/metrics")
        assert r.status_code == 401 and "VOLKEEPER_METRICS_TOKEN" in r.text
        assert c.get("/metrics", headers=bearer("wrong")).status_code == 401
        assert c.get("/metrics", headers=bearer("scrape-only-token-0123456789")
                     ).status_code == 200
    for public in _make(tmp_path / "pub", metrics_public=True):
        with bare(public) as c:
            assert c.get("/metrics").status_code == 200


def test_health_names_each_worker_and_degrades_when_one_is_down(env: Env) -> None:
    full = env.client.get("/api/v1/health").json()
    assert full["status"] == "ok" and full["workers"] == {"h1": "up"}
    with env.db.session() as s:
        s.execute(update(Host).values(last_seen_at=utcnow() - timedelta(hours=1)))
    r = env.client.get("/api/v1/health")
    assert r.status_code == 200
    assert r.json()["status"] == "degraded" and r.json()["workers"] == {"h1": "down"}
    with bare(env) as c:
        assert c.get("/api/v1/health").json() == {"status": "degraded"}


def test_health_is_down_with_503_when_redis_is_unreachable(tmp_path: Path) -> None:
    from tests.fixtures.util import free_port

    for e in _make(tmp_path, redis_url=f"redis://127.0.0.1:{free_port()}/0"):
        r = e.client.get("/api/v1/health")
        assert r.status_code == 503
        body = r.json()
        assert body["status"] == "down" and body["checks"]["redis"].startswith("error: ")
        assert body["checks"]["database"] == "ok"


def test_a_registered_scheduler_probe_is_reported_and_degrades_when_not_ok(
        env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    from common import health

    monkeypatch.setattr(health, "_scheduler_probe", [])
    health.set_scheduler_probe(lambda db: "ok")
    body = env.client.get("/api/v1/health").json()
    assert body["checks"]["scheduler"] == "ok" and body["status"] == "ok"
    health.set_scheduler_probe(lambda db: "lease lost")
    body = env.client.get("/api/v1/health").json()
    assert body["checks"]["scheduler"] == "lease lost" and body["status"] == "degraded"

"""``/metrics`` and ``/api/v1/health`` of the fleet's API (PostgreSQL, Redis, two workers):
a backup made by a worker shows up in the scrape of the API process; health names Redis
and both hosts' workers."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.fleet import TOKEN, Fleet
from tests.integration.fleet.test_fleet import mountpoint, submit

pytestmark = pytest.mark.integration


def test_a_workers_backup_is_in_the_api_processs_metrics(fleet: Fleet) -> None:
    fleet.docker["host-a"].client().volumes.create("mx-data")
    (mountpoint(fleet, "host-a", "mx-data") / "f.bin").write_bytes(b"x" * 100_000)
    fleet.wait_volume("host-a", "mx-data")
    job = fleet.wait_job(submit(fleet, "/backups", {"volume": "mx-data", "host": "host-a",
                                                    "target": "s3", "format": "tar"})["id"])
    assert job["state"] == "succeeded", job["error"]
    assert httpx.get(fleet.api_url + "/metrics").status_code == 401
    r = httpx.get(fleet.api_url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200
    m = {(s.name, tuple(sorted(s.labels.items()))): s.value
         for fam in text_string_to_metric_families(r.text) for s in fam.samples}
    vol = (("host", "host-a"), ("volume", "mx-data"))
    assert m[("volkeeper_volume_last_good_backup_logical_bytes", vol)] >= 100_000
    assert m[("volkeeper_volume_last_good_backup_duration_seconds", vol)] > 0
    ok = (("kind", "backup"), ("outcome", "succeeded"))
    assert m[("volkeeper_jobs_total", ok)] >= 1
    assert m[("volkeeper_job_duration_seconds_sum", ok)] > 0
    assert m[("volkeeper_host_up", (("host", "host-a"),))] == 1
    assert ("volkeeper_queue_depth", (("host", "host-b"),)) in m


def test_health_names_redis_the_scheduler_and_each_worker(fleet: Fleet) -> None:
    with fleet.http as c:
        body = c.get("/health").json()
    # every API replica runs a policy scheduler; one holds the lease
    assert body["checks"] == {"database": "ok", "redis": "ok", "scheduler": "ok"}
    assert body["workers"]["host-a"] == "up" and body["workers"]["host-b"] == "up"
    all_up = all(v == "up" for v in body["workers"].values())  # other tests stop workers
    assert body["status"] == ("ok" if all_up else "degraded")

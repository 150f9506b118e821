"""``volkeeper serve`` (embedded) runs the scheduler: a policy's due run backs its volume
up by itself, through the job services, as ``policy:NAME``, once per slot."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import pytest

from tests.fixtures.embedded import api_client

pytestmark = pytest.mark.integration


def test_serve_backs_up_a_policys_volume_when_it_is_due(
        embedded_env: dict[str, str], embedded_server: str, docker_host_a: Any,
        fresh_volume_name: str) -> None:
    docker_host_a.client().volumes.create(fresh_volume_name)
    with api_client(embedded_server, embedded_env) as http:
        http.post("/hosts/laptop/refresh")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and fresh_volume_name not in {
                v["name"] for v in http.get("/volumes").json()}:
            time.sleep(0.3)
        r = http.post("/policies", json={"name": "often", "volumes": [fresh_volume_name],
                                         "schedule": "@every 4s", "targets": ["local"],
                                         "format": "tar"})
        assert r.status_code == 201, r.text
        jobs: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            jobs = [j for j in http.get("/jobs", params={"limit": 50}).json()
                    if j["requested_by"] == "policy:often"]
            if len(jobs) >= 2 and all(j["state"] == "succeeded" for j in jobs):
                break
            time.sleep(0.5)
        assert len(jobs) >= 2, jobs
        assert {j["volume"] for j in jobs} == {fresh_volume_name}
        assert all(j["state"] == "succeeded" for j in jobs), jobs
        # one run per 4-second slot: runs are at least a slot apart, never doubled
        starts = sorted(datetime.fromisoformat(j["created_at"]) for j in jobs)
        assert all((b - a).total_seconds() > 2 for a, b in zip(starts, starts[1:]))
        # each slot's run is on time: created within ~1 s after a multiple of 4 s
        assert all(t.timestamp() % 4 < 1.5 for t in starts), starts
        audit = http.get("/audit", params={"action": "policy.run"}).json()
        assert audit and {a["actor"] for a in audit} == {"scheduler"}
        assert http.patch("/policies/often", json={"enabled": False}).status_code == 200
        time.sleep(0.5)
        count = len([j for j in http.get("/jobs", params={"limit": 100}).json()
                     if j["requested_by"] == "policy:often"])
        time.sleep(5)
        after = len([j for j in http.get("/jobs", params={"limit": 100}).json()
                     if j["requested_by"] == "policy:often"])
        assert after == count  # disabled: no more runs
        vol = next(v for v in http.get("/volumes").json() if v["name"] == fresh_volume_name)
        assert vol["last_good_backup_at"] is not None

"""``volkeeper serve`` (embedded) runs the scheduler: a policy's due run backs its volume
up by itself, through the job services, as ``policy:NAME``, once per slot; each backup is
copied to the policy's other target and its retention applied on both."""

from __future__ import annotations

import itertools
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.embedded import api_client

pytestmark = pytest.mark.integration


def test_serve_backs_up_a_policys_volume_when_it_is_due(
        embedded_env: dict[str, str], embedded_server: str, docker_host_a: Any,
        fresh_volume_name: str, tmp_path: Path) -> None:
    docker_host_a.client().volumes.create(fresh_volume_name)
    mount = Path(docker_host_a.client().volumes.get(fresh_volume_name).attrs["Mountpoint"])
    stop = threading.Event()

    def change() -> None:  # each backup differs (identical archives are copied only once)
        while not stop.wait(0.3):
            (mount / "clock.txt").write_text(f"{time.time()}\n")

    writer = threading.Thread(target=change, daemon=True)
    writer.start()
    try:
        scenario(embedded_env, embedded_server, fresh_volume_name, tmp_path)
    finally:
        stop.set()
        writer.join()


def scenario(embedded_env: dict[str, str], embedded_server: str, fresh_volume_name: str,
             tmp_path: Path) -> None:
    with api_client(embedded_server, embedded_env) as http:
        r = http.post("/targets", json={"name": "copies", "url": f"file://{tmp_path / 'c'}"})
        assert r.status_code == 201, r.text
        http.post("/hosts/laptop/refresh")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and fresh_volume_name not in {
                v["name"] for v in http.get("/volumes").json()}:
            time.sleep(0.3)
        r = http.post("/policies", json={"name": "often", "volumes": [fresh_volume_name],
                                         "schedule": "@every 4s",
                                         "targets": ["local", "copies"], "format": "tar",
                                         "retention": {"keep_last": 1}})
        assert r.status_code == 201, r.text
        jobs: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            mine = [j for j in http.get("/jobs", params={"limit": 100}).json()
                    if j["requested_by"] == "policy:often"]
            jobs = [j for j in mine if j["kind"] == "backup"]
            forgets = [j for j in mine if j["kind"] == "forget" and j["state"] == "succeeded"]
            targets = {j["target"] for j in forgets}
            if len(jobs) >= 3 and all(j["state"] == "succeeded" for j in jobs) \
                    and targets == {"local", "copies"}:
                break
            time.sleep(0.5)
        assert len(jobs) >= 3, jobs
        copies = [j for j in mine if j["kind"] == "copy"]
        assert copies and all(j["params"]["destination"] == "copies" for j in copies)
        assert targets == {"local", "copies"}, mine  # retention ran on both targets
        assert {j["volume"] for j in jobs} == {fresh_volume_name}
        assert all(j["state"] == "succeeded" for j in jobs), jobs
        # one run per 4-second slot: runs are at least a slot apart, never doubled
        starts = sorted(datetime.fromisoformat(j["created_at"]) for j in jobs)
        assert all((b - a).total_seconds() > 2 for a, b in itertools.pairwise(starts))
        # each slot's run is on time: created within ~1 s after a multiple of 4 s
        assert all(t.timestamp() % 4 < 1.5 for t in starts), starts
        audit = http.get("/audit", params={"action": "policy.run"}).json()
        assert audit and {a["actor"] for a in audit} == {"scheduler"}
        assert http.patch("/policies/often", json={"enabled": False}).status_code == 200
        time.sleep(0.5)
        def backups_run() -> int:
            return len([j for j in http.get("/jobs", params={"limit": 200}).json()
                        if j["requested_by"] == "policy:often" and j["kind"] == "backup"])

        count = backups_run()
        time.sleep(5)
        assert backups_run() == count  # disabled: no more runs (follow-ups may finish)
        vol = next(v for v in http.get("/volumes").json() if v["name"] == fresh_volume_name)
        assert vol["last_good_backup_at"] is not None
        time.sleep(3)  # the last follow-ups finish
        left = http.get("/backups", params={"volume": fresh_volume_name}).json()
        by_target = {t: [b for b in left if b["target"] == t] for t in ("local", "copies")}
        # keep_last 1, and the newest good backup is never forgotten: 1 or 2 per target
        # (a follow-up may still be under way), never 0 and not the whole history
        assert 1 <= len(by_target["local"]) <= 2 and 1 <= len(by_target["copies"]) <= 2, left

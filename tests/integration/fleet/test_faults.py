"""Fleet failure paths: unreachable storage, a volume deleted mid-backup, a worker killed
mid-job. Each must end in a failed job with a clear reason and leave no half backup."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.fleet import Fleet
from tests.fixtures.util import free_port
from tests.integration.fleet.test_fleet import mountpoint, submit
from tests.treecmp import compare_trees

pytestmark = pytest.mark.integration

SLOW = str(4 * 1024 * 1024)  # bytes/s: a 40 MiB volume takes ~10 s to back up


def objects(fleet: Fleet, s3_server: Any) -> list[str]:
    with fleet.http as c:
        url = next(t["url"] for t in c.get("/targets").json() if t["name"] == "s3")
    bucket = url.split("/")[2]
    resp = s3_server.client().list_objects_v2(Bucket=bucket)
    return [o["Key"] for o in resp.get("Contents", [])]


def incomplete_uploads(fleet: Fleet, s3_server: Any) -> list[str]:
    with fleet.http as c:
        url = next(t["url"] for t in c.get("/targets").json() if t["name"] == "s3")
    resp = s3_server.client().list_multipart_uploads(Bucket=url.split("/")[2])
    return [u["Key"] for u in resp.get("Uploads", [])]


@pytest.fixture
def slow_host_b(fleet: Fleet) -> Iterator[None]:
    """host-b's worker throttled so a job is still running when the test strikes."""
    fleet.stop_worker("host-b")
    fleet.start_worker("host-b", VOLKEEPER_BANDWIDTH_LIMIT=SLOW)
    yield
    fleet.stop_worker("host-b", signal.SIGKILL)
    fleet.start_worker("host-b")


def big_volume(fleet: Fleet, name: str) -> Path:
    fleet.docker["host-b"].client().volumes.create(name)
    path = mountpoint(fleet, "host-b", name)
    for i in range(4):
        (path / f"blob{i}.bin").write_bytes(os.urandom(10 * 1024 * 1024))
    fleet.wait_volume("host-b", name)
    return path


def progressed(job: dict[str, Any]) -> bool:
    return job["state"] == "running" and (job["progress"] or {}).get("bytes_done", 0) > 0


def wait_running(fleet: Fleet, job_id: str) -> None:
    fleet.wait_job_until(job_id, progressed, "getting going", timeout=60, active=True)


def test_an_unreachable_target_fails_the_job_naming_target_and_cause(fleet: Fleet) -> None:
    secret = "dead-target-secret-key"
    with fleet.http as c:
        r = c.post("/targets", json={
            "name": "dead", "url": "s3://nowhere/x",
            "options": {"endpoint_url": f"http://127.0.0.1:{free_port()}", "path_style": True},
            "credentials": {"access_key_id": "AK", "secret_access_key": secret}})
        assert r.status_code == 201, r.text
    fleet.docker["host-a"].client().volumes.create("small")
    (mountpoint(fleet, "host-a", "small") / "f").write_text("x")
    fleet.wait_volume("host-a", "small")
    job = fleet.wait_job(submit(fleet, "/backups", {"volume": "small", "host": "host-a",
                                                    "target": "dead"})["id"])
    assert job["state"] == "failed"
    assert "'dead'" in job["error"] and "Traceback" not in job["error"]
    assert secret not in job["error"]
    assert secret not in fleet.log("worker-host-a") and secret not in fleet.log("api")


def test_a_volume_deleted_mid_backup_fails_the_job_and_leaves_no_backup(
        fleet: Fleet, s3_server: Any, slow_host_b: None) -> None:
    big_volume(fleet, "doomed")
    job = submit(fleet, "/backups", {"volume": "doomed", "host": "host-b", "target": "s3",
        "format": "tar.zst"})
    wait_running(fleet, job["id"])
    fleet.docker["host-b"].client().volumes.get("doomed").remove(force=True)
    done = fleet.wait_job(job["id"])
    assert done["state"] == "failed"
    assert "doomed" in done["error"] or "volume" in done["error"]
    assert not [k for k in objects(fleet, s3_server) if "/doomed/" in k]
    assert not [k for k in incomplete_uploads(fleet, s3_server) if "/doomed/" in k]
    with fleet.http as c:
        assert not c.get("/backups", params={"volume": "doomed"}).json()


def test_a_killed_worker_does_not_leave_its_job_running_forever(
        fleet: Fleet, s3_server: Any, slow_host_b: None) -> None:
    big_volume(fleet, "victim")
    job = submit(fleet, "/backups", {"volume": "victim", "host": "host-b", "target": "s3",
        "format": "tar.zst"})
    wait_running(fleet, job["id"])
    fleet.stop_worker("host-b", signal.SIGKILL)
    done = fleet.wait_job(job["id"], timeout=60)
    assert done["state"] == "failed" and "stopped reporting" in done["error"]
    assert not [k for k in objects(fleet, s3_server) if "/victim/" in k]
    fleet.start_worker("host-b")
    again = fleet.wait_job(submit(fleet, "/backups", {"volume": "victim", "host": "host-b",
                                                      "target": "s3",
        "format": "tar.zst"})["id"])
    assert again["state"] == "succeeded", again["error"]


@pytest.mark.parametrize("fmt", ["tar.zst", "repo"])
def test_a_worker_killed_mid_replace_puts_the_volume_back_when_it_returns(
        fleet: Fleet, slow_host_b: None, tmp_path: Path, fmt: str) -> None:
    """The safety snapshot is a tar.zst for an archive backup, a snapshot in the same
    repository for a repo backup; the host puts either back through the Format seam."""
    name = f"replaced-{fmt.replace('.', '')}"
    path = big_volume(fleet, name)
    done = fleet.wait_job(submit(fleet, "/backups", {"volume": name, "host": "host-b",
                                                     "target": "s3", "format": fmt})["id"])
    assert done["state"] == "succeeded", done["error"]
    for i in range(4):  # new content the restore is about to overwrite
        (path / f"blob{i}.bin").write_bytes(os.urandom(10 * 1024 * 1024))
    (path / "only-now.txt").write_text("must survive")
    before = tmp_path / "before"
    subprocess.run(["cp", "-a", f"{path}/.", str(before)], check=True)

    job = submit(fleet, "/restores", {"backup_id": done["backup_id"], "mode": "replace"})
    fleet.wait_job_until(job["id"], lambda j: progressed(j) and j["progress"].get(
        "phase") in ("restoring", "restore")  # an archive's phase, a snapshot's
        and (j["result"] or {}).get("replace_state") == "replacing",
        "replacing the content", active=True)
    fleet.stop_worker("host-b", signal.SIGKILL)
    failed = fleet.wait_job(job["id"], timeout=60)
    assert failed["state"] == "failed" and "safety snapshot" in failed["error"]
    with fleet.http as c:  # the volume stays locked until it has been put back
        assert c.post("/backups", json={"volume": name, "host": "host-b", "target": "s3",
                                        "format": fmt}).status_code == 409
    fleet.start_worker("host-b")

    fleet.wait_job_until(job["id"], lambda j: j["result"].get("replace_state") == "recovered",
                         "the rollback of the interrupted replace", timeout=90)
    assert compare_trees(before, path) == []
    with fleet.http as c:
        [safety] = c.get("/backups", params={"kind": "safety", "volume": name}).json()
    assert safety["format"] == fmt  # a repo backup's safety snapshot stays in the repo


def test_a_worker_killed_mid_restore_leaves_no_half_restored_volume(
        fleet: Fleet, slow_host_b: None) -> None:
    big_volume(fleet, "source-big")
    done = fleet.wait_job(submit(fleet, "/backups", {"volume": "source-big", "host": "host-b",
                                                     "target": "s3",
        "format": "tar.zst"})["id"])
    assert done["state"] == "succeeded", done["error"]
    job = submit(fleet, "/restores", {"backup_id": done["backup_id"], "into": "halfway"})
    fleet.wait_job_until(job["id"], lambda j: progressed(j) and (j["result"] or {}).get(
        "restore_state") == "writing", "writing into the volume", active=True)
    fleet.stop_worker("host-b", signal.SIGKILL)
    failed = fleet.wait_job(job["id"], timeout=60)
    assert failed["state"] == "failed" and "half-restored" in failed["error"]
    assert "halfway" in {v.name for v in fleet.docker["host-b"].client().volumes.list()}
    with fleet.http as c:  # still locked: nobody can use the half-written volume meanwhile
        r = c.post("/restores", json={"backup_id": done["backup_id"], "into": "halfway"})
        assert r.status_code == 409
    fleet.start_worker("host-b")

    fleet.wait_job_until(job["id"], lambda j: j["result"].get("restore_state") == "recovered",
                         "the clean-up of the interrupted restore", timeout=90)
    assert "halfway" not in {v.name for v in fleet.docker["host-b"].client().volumes.list()}

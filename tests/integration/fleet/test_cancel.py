"""Cancel in the fleet (API + real Celery workers): a running backup stops and leaves no
catalog row and no incomplete upload; a running restore into a new volume stops and the
half-restored volume is removed; a replace-restore that stopped a container is rolled back
to the volume's old content and the container runs again. Each job ends ``cancelled``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from common.db import Database, catalog
from tests.fixtures.dockerd import busybox_image
from tests.fixtures.fleet import Fleet
from tests.integration.fleet.test_faults import (
    big_volume,
    incomplete_uploads,
    objects,
    slow_host_b,
    wait_running,
)
from tests.integration.fleet.test_fleet import mountpoint, submit

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]

__all__ = ["slow_host_b"]


def cancel(fleet: Fleet, job_id: str) -> dict[str, Any]:
    with fleet.http as c:
        r = c.post(f"/jobs/{job_id}/cancel")
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def stopped_cancelled(fleet: Fleet, job_id: str) -> dict[str, Any]:
    asked = time.monotonic()
    done = fleet.wait_job(job_id, timeout=60)
    assert done["state"] == "cancelled", done
    assert time.monotonic() - asked < 15
    return done


def backups_of(fleet: Fleet, volume: str) -> list[Any]:
    with Database(fleet.env["VOLKEEPER_DATABASE_URL"]).session() as s:
        return [b for b in catalog.list_backups(s) if b.volume == volume]


def test_a_running_backup_is_cancelled_and_leaves_no_backup(
        fleet: Fleet, s3_server: Any, slow_host_b: None) -> None:
    big_volume(fleet, "cx-backup")
    job = submit(fleet, "/backups", {"volume": "cx-backup", "host": "host-b",
                                     "target": "s3", "format": "tar.zst"})
    wait_running(fleet, job["id"])
    assert cancel(fleet, job["id"])["cancel_requested_by"] == "admin"
    done = stopped_cancelled(fleet, job["id"])
    assert done["error"] == "cancelled by admin"
    assert backups_of(fleet, "cx-backup") == []
    assert [k for k in incomplete_uploads(fleet, s3_server) if "cx-backup" in k] == []
    assert [k for k in objects(fleet, s3_server) if "cx-backup" in k] == []
    with fleet.http as c:
        again = c.post(f"/jobs/{job['id']}/cancel")
    assert again.status_code == 409
    assert "already finished: cancelled" in again.json()["error"]["message"]


def test_a_queued_job_is_cancelled_at_once(fleet: Fleet) -> None:
    big_volume(fleet, "cx-queued2")
    fleet.stop_worker("host-b")  # nobody picks it up (the host still counts as online)
    try:
        job = submit(fleet, "/backups", {"volume": "cx-queued2", "host": "host-b",
                                         "target": "s3"})
        assert job["state"] == "queued"
        out = cancel(fleet, job["id"])
        assert out["state"] == "cancelled" and out["finished_at"]
    finally:
        fleet.start_worker("host-b")
    time.sleep(2)  # the worker receives the queued message and drops it
    with fleet.http as c:
        assert c.get(f"/jobs/{job['id']}").json()["state"] == "cancelled"
    assert backups_of(fleet, "cx-queued2") == []


def _source_backup(fleet: Fleet, name: str) -> str:
    """A 40 MiB backup made on host-a (fast), to restore on the throttled host-b."""
    fleet.docker["host-a"].client().volumes.create(name)
    path = mountpoint(fleet, "host-a", name)
    for i in range(4):
        (path / f"blob{i}.bin").write_bytes(os.urandom(10 << 20))
    fleet.wait_volume("host-a", name)
    job = fleet.wait_job(submit(fleet, "/backups", {"volume": name, "host": "host-a",
                                                    "target": "s3",
                                                    "format": "tar.zst"})["id"])
    assert job["state"] == "succeeded", job["error"]
    return str(job["backup_id"])


def test_a_running_restore_is_cancelled_and_the_half_restored_volume_removed(
        fleet: Fleet, slow_host_b: None) -> None:
    backup_id = _source_backup(fleet, "cx-rsrc")
    job = submit(fleet, "/restores", {"backup_id": backup_id, "host": "host-b",
                                      "into": "cx-restored"})
    wait_running(fleet, job["id"])
    cancel(fleet, job["id"])
    stopped_cancelled(fleet, job["id"])
    with pytest.raises(docker.errors.NotFound):
        fleet.docker["host-b"].client().volumes.get("cx-restored")


def test_a_cancelled_replace_is_rolled_back_and_its_container_runs_again(
        fleet: Fleet, slow_host_b: None) -> None:
    backup_id = _source_backup(fleet, "cx-repl-src")
    client = fleet.docker["host-b"].client()
    client.volumes.create("cx-app")
    (mountpoint(fleet, "host-b", "cx-app") / "original.txt").write_text("the app's data")
    ctr = client.containers.run(busybox_image(fleet.docker["host-b"]),
                                ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"],
                                detach=True, network_mode="none", name="cx-app-ctr",
                                volumes={"cx-app": {"bind": "/data", "mode": "rw"}})
    try:
        fleet.wait_volume("host-b", "cx-app")
        job = submit(fleet, "/restores", {"backup_id": backup_id, "host": "host-b",
                                          "into": "cx-app", "mode": "replace",
                                          "stop_containers": True})
        fleet.wait_job_until(job["id"], lambda j: j["state"] == "running" and (
            j["progress"] or {}).get("phase") == "restoring", "restoring", active=True)
        ctr.reload()
        assert ctr.status != "running"  # stopped for the replace
        cancel(fleet, job["id"])
        done = stopped_cancelled(fleet, job["id"])
        assert "put back" in done["error"], done["error"]
        ctr.reload()
        assert ctr.status == "running"
        path = mountpoint(fleet, "host-b", "cx-app")
        assert sorted(p.name for p in path.iterdir()) == ["original.txt"]
        assert (path / "original.txt").read_text() == "the app's data"
    finally:
        ctr.remove(force=True)


def _volkeeper(fleet: Fleet, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli.main", "--server", fleet.api_url,
                           *args], env=fleet.env, cwd=REPO, capture_output=True, text=True,
                          timeout=120)


def test_volkeeper_cancel_with_server_stops_a_running_backup(
        fleet: Fleet, slow_host_b: None) -> None:
    big_volume(fleet, "cx-cli")
    job = submit(fleet, "/backups", {"volume": "cx-cli", "host": "host-b", "target": "s3"})
    wait_running(fleet, job["id"])
    p = _volkeeper(fleet, "cancel", job["id"], "--wait", "--json")
    assert p.returncode == 0, p.stderr
    done = json.loads(p.stdout)
    assert done["state"] == "cancelled" and done["error"] == "cancelled by admin"
    assert backups_of(fleet, "cx-cli") == []
    again = _volkeeper(fleet, "cancel", job["id"])
    assert again.returncode == 1
    assert f"job {job['id']} (backup) has already finished: cancelled" in again.stderr
    shown = _volkeeper(fleet, "jobs")
    assert "cancelled" in shown.stdout

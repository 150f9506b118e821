"""Consistent backups in the fleet, through the API and a real worker: a worker SIGKILLed
while the containers are stopped leaves the volume locked, and once it is back its host
starts them again; then a backup with hooks, a stop window and excludes."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fixtures.dockerd import busybox_image
from tests.fixtures.fleet import Fleet
from tests.fixtures.util import wait_for
from tests.integration.fleet.test_fleet import mountpoint, submit

pytestmark = pytest.mark.integration
SLOW = str(4 * 1024 * 1024)  # bytes/s: a 40 MiB volume takes ~10 s to back up
SERVE = "trap 'exit 0' TERM; sleep 3600 & wait"


@pytest.fixture
def slow_host_b(fleet: Fleet) -> Iterator[None]:
    fleet.stop_worker("host-b")
    fleet.start_worker("host-b", VOLKEEPER_BANDWIDTH_LIMIT=SLOW)
    yield
    fleet.stop_worker("host-b", signal.SIGKILL)
    fleet.start_worker("host-b")


def running(ctr: Any) -> bool:
    ctr.reload()
    return bool(ctr.attrs["State"]["Running"])


def test_a_killed_worker_s_stopped_containers_are_started_when_it_returns(
        fleet: Fleet, slow_host_b: None) -> None:
    name = f"cons-{uuid.uuid4().hex[:6]}"
    client = fleet.docker["host-b"].client()
    client.volumes.create(name, labels={"volkeeper.exclude": "cache/**"})
    path = mountpoint(fleet, "host-b", name)
    for i in range(4):
        (path / f"blob{i}.bin").write_bytes(os.urandom(10 << 20))
    (path / "cache").mkdir()
    (path / "cache" / "junk").write_bytes(os.urandom(1 << 20))
    ctr = client.containers.run(
        busybox_image(fleet.docker["host-b"]), ["sh", "-c", SERVE], detach=True,
        network_mode="none", name=f"{name}-db",
        labels={"volkeeper.pre-backup": "echo flushed > /data/pre-mark",
                "volkeeper.post-backup": "echo resumed"},
        volumes={name: {"bind": "/data", "mode": "rw"}})
    try:
        fleet.wait_volume("host-b", name)
        job = submit(fleet, "/backups", {"volume": name, "host": "host-b", "target": "s3",
                                         "format": "tar.zst", "stop_containers": True,
                                         "excludes": ["*.tmp"]})
        wait_for(lambda: not running(ctr), 60, "the container stopped for the backup")
        fleet.wait_job_until(job["id"], lambda j: j["state"] == "running"
                             and (j["progress"] or {}).get("bytes_done", 0) > 0,
                             "backing up", timeout=60, active=True)
        fleet.stop_worker("host-b", signal.SIGKILL)
        failed = fleet.wait_job(job["id"], timeout=60)
        assert failed["state"] == "failed"
        assert ctr.name in failed["error"] and "starts them again" in failed["error"]
        assert not running(ctr)
        with fleet.http as c:  # the volume stays locked while its containers are down
            assert c.post("/backups", json={"volume": name, "host": "host-b",
                                            "target": "s3"}).status_code == 409

        fleet.start_worker("host-b")
        wait_for(lambda: running(ctr), 60, "the container started again by its host")
        recovered = fleet.wait_job_until(
            job["id"], lambda j: "started again" in (j["error"] or ""), "the recovery")
        assert recovered["result"]["containers_to_start"] == []
        assert (path / "pre-mark").read_text() == "flushed\n"

        done = fleet.wait_job(submit(fleet, "/backups", {
            "volume": name, "host": "host-b", "target": "s3", "format": "repo",
            "stop_containers": True, "excludes": ["*.tmp"]})["id"])
        assert done["state"] == "succeeded", done["error"]
        r = done["result"]
        assert r["excludes"] == ["cache/**", "*.tmp"] and r["excluded_entries"] == 1
        assert r["file_count"] == 5  # four blobs and the pre hook's mark
        assert [(h["hook"], h["ok"]) for h in r["hooks"]] == [("pre-backup", True),
                                                               ("post-backup", True)]
        assert r["hooks"][1]["output"] == "resumed\n"
        [window] = r["stop_windows"]
        assert window["name"] == ctr.name and window["seconds_down"] > 0
        assert running(ctr)
    finally:
        ctr.remove(force=True)

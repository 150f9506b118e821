"""The quick lane: a host whose job slots are all busy with long backups still answers a
restore dry run (it runs in the worker's own quick-task consumer, not behind the backups)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from tests.fixtures.fleet import Fleet
from tests.integration.fleet.test_fleet import mountpoint, submit

pytestmark = pytest.mark.integration
SLOW = {"VOLKEEPER_BANDWIDTH_LIMIT": str(2 << 20)}  # 2 MiB/s: a 48 MiB backup takes ~24 s


@pytest.fixture
def slow_worker(fleet: Fleet) -> Iterator[None]:
    fleet.stop_worker("host-a")
    fleet.start_worker("host-a", **SLOW)
    yield
    fleet.stop_worker("host-a", signal.SIGKILL)  # its quick lane must die with it
    fleet.start_worker("host-a")


def test_a_dry_run_is_answered_while_every_job_slot_of_the_host_is_busy(
        fleet: Fleet, slow_worker: None) -> None:
    docker = fleet.docker["host-a"].client()
    docker.volumes.create("quick-small")
    (mountpoint(fleet, "host-a", "quick-small") / "note.txt").write_text("small")
    for name in ("quick-big-1", "quick-big-2"):
        docker.volumes.create(name)
        (mountpoint(fleet, "host-a", name) / "random.bin").write_bytes(os.urandom(48 << 20))
    for name in ("quick-small", "quick-big-1", "quick-big-2"):
        fleet.wait_volume("host-a", name)
    small = submit(fleet, "/backups", {"volume": "quick-small", "host": "host-a",
                                    "target": "s3"})
    backup_id = fleet.wait_job(small["id"])["backup_id"]

    big = [submit(fleet, "/backups", {"volume": v, "host": "host-a", "format": "tar",
                                     "target": "s3"})
           for v in ("quick-big-1", "quick-big-2")]
    for job in big:  # the worker's two job slots are now taken
        fleet.wait_job_until(job["id"], lambda j: j["state"] == "running", "backup running")

    with fleet.http as c:
        r = c.post("/restores/validate", json={"backup_id": backup_id, "host": "host-a",
                                               "into": "quick-restored"})
        assert r.status_code == 200, r.text
        assert r.json()["ok"] is True
        states = [c.get(f"/jobs/{j['id']}").json()["state"] for j in big]
    assert states == ["running", "running"]  # answered beside them, not after them
    for job in big:
        assert fleet.wait_job(job["id"])["state"] == "succeeded"

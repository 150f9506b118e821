"""Redis restarted and PostgreSQL restarted while jobs run in the fleet (issue 11): a real
Celery worker on host-b (throttled, so the jobs outlast the restart) runs a backup and a
restore when the server goes down and comes back, with a third job queued behind them.
No job is lost (each ends succeeded), no live job is failed by another host (each stays
running until it succeeds), no volume is touched by recovery (the restored volume holds
the backed-up tree, no recovery ran), and the backup reads back whole. Clock skew is the
other half of the issue's figure: tests/integration/fleet/test_fencing.py."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.fleet import Fleet
from tests.integration.fleet.test_faults import big_volume, progressed, slow_host_b
from tests.integration.fleet.test_fleet import mountpoint, submit
from tests.treecmp import compare_trees

pytestmark = pytest.mark.integration

__all__ = ["slow_host_b"]  # a fixture this module uses


class Watch(threading.Thread):
    """Every state each job is seen in, polled through the API until all are finished
    (calls that fail while a server is down are counted, not fatal)."""

    def __init__(self, fleet: Fleet, job_ids: list[str]) -> None:
        super().__init__(daemon=True)
        self.fleet, self.job_ids = fleet, job_ids
        self.seen: dict[str, list[str]] = {j: [] for j in job_ids}
        self.errors = 0
        self.done = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                with self.fleet.http as c:
                    for job_id in self.job_ids:
                        state = c.get(f"/jobs/{job_id}").json()["state"]
                        if not self.seen[job_id] or self.seen[job_id][-1] != state:
                            self.seen[job_id].append(state)
            except (httpx.HTTPError, KeyError, ValueError):
                self.errors += 1
            if all(s and s[-1] in ("succeeded", "failed") for s in self.seen.values()):
                break
            time.sleep(0.2)
        self.done.set()


def restore_source(fleet: Fleet, name: str) -> tuple[str, Path]:
    """A tar.zst backup made on host-a (not throttled) of a 24 MiB volume."""
    fleet.docker["host-a"].client().volumes.create(name)
    path = mountpoint(fleet, "host-a", name)
    for i in range(3):
        (path / f"blob{i}.bin").write_bytes(os.urandom(8 * 1024 * 1024))
    fleet.wait_volume("host-a", name)
    job = fleet.wait_job(submit(fleet, "/backups", {"volume": name, "host": "host-a",
                                                    "target": "s3", "format": "tar.zst"})["id"])
    assert job["state"] == "succeeded", job["error"]
    return job["backup_id"], path


@pytest.mark.parametrize("server", ["redis", "postgres"])
def test_a_server_restarted_mid_job_loses_no_job_and_fails_no_live_one(
        fleet: Fleet, slow_host_b: None, redis_server: Any, postgres_server: Any,
        server: str) -> None:
    backup_id, source = restore_source(fleet, f"rs-src-{server}")
    big_volume(fleet, f"rs-vol-{server}")
    fleet.docker["host-b"].client().volumes.create(f"rs-queued-{server}")
    (mountpoint(fleet, "host-b", f"rs-queued-{server}") / "f.txt").write_text("queued\n")
    fleet.wait_volume("host-b", f"rs-queued-{server}")
    backup = submit(fleet, "/backups", {"volume": f"rs-vol-{server}", "host": "host-b",
                                        "target": "s3", "format": "repo"})
    restore = submit(fleet, "/restores", {"backup_id": backup_id, "host": "host-b",
                                          "into": f"rs-restored-{server}"})
    for job in (backup, restore):  # both job slots of host-b are taken
        fleet.wait_job_until(job["id"], progressed, "getting going", timeout=60, active=True)
    queued = submit(fleet, "/backups", {"volume": f"rs-queued-{server}", "host": "host-b",
                                        "target": "s3", "format": "tar.zst"})
    watch = Watch(fleet, [backup["id"], restore["id"], queued["id"]])
    watch.start()

    (redis_server if server == "redis" else postgres_server).restart()

    assert watch.done.wait(300), watch.seen
    for job_id, states in watch.seen.items():
        assert states[-1] == "succeeded", (job_id, states, fleet.wait_job(job_id)["error"])
        assert "failed" not in states, (job_id, states)
    for job in (backup, restore):  # running when the server went down, until they succeeded
        assert watch.seen[job["id"]] == ["running", "succeeded"], watch.seen
    done = fleet.wait_job(restore["id"])
    assert "restore_state" not in done["result"] or \
        done["result"]["restore_state"] != "recovered", done["result"]
    assert compare_trees(source, mountpoint(fleet, "host-b", f"rs-restored-{server}")) == []
    log = fleet.log("worker-host-b")
    assert f"rs-restored-{server}' was removed" not in log
    assert f"rs-restored-{server}' was emptied" not in log
    made = fleet.wait_job(backup["id"])["backup_id"]
    verify = fleet.wait_job(submit(fleet, f"/backups/{made}/verify", {"read_data": True})["id"])
    assert verify["state"] == "succeeded", verify["error"]
    print(f"{server} restarted: states {watch.seen}, API calls failed meanwhile: "
          f"{watch.errors}")

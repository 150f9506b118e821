"""An evacuation in the fleet: a third host (its own dockerd and worker) with several
volumes and the containers writing into them is emptied onto host-b with
``recreate_containers``: every volume arrives whole, each container that used one volume
runs again on host-b with the same configuration (writing into the moved volume), a
container that mounts two volumes is left stopped on its host and the report says why."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fixtures.dockerd import DockerdFactory, busybox_image
from tests.fixtures.fleet import TOKEN, Fleet
from tests.integration.fleet.test_fleet import mountpoint
from tests.integration.migration.test_migrate_fleet import _writer

pytestmark = pytest.mark.integration


@pytest.fixture
def host_c(fleet: Fleet, dockerd_factory: DockerdFactory) -> Iterator[str]:
    """A third Docker host in the fleet for this test only (emptied by it)."""
    instance = dockerd_factory.start("host-c")
    fleet.docker["host-c"] = instance
    try:
        fleet.start_worker("host-c")
        yield "host-c"
    finally:
        fleet.stop_worker("host-c")
        del fleet.docker["host-c"]
        instance.stop()
        dockerd_factory.instances.remove(instance)


def _cli(fleet: Fleet, *args: str) -> subprocess.CompletedProcess[str]:
    """``volkeeper --server URL ARGS`` as a user runs it; it must succeed."""
    env = {k: v for k, v in fleet.env.items() if k not in (
        "VOLKEEPER_DATABASE_URL", "VOLKEEPER_REDIS_URL", "VOLKEEPER_API_TOKEN")}
    p = subprocess.run([sys.executable, "-m", "cli.main", "--server", fleet.api_url,
                        "--token", TOKEN, *args], env=env, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    return p


def _evacuation(fleet: Fleet, eid: str, timeout: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    with fleet.http as c:
        while time.monotonic() < deadline:
            e: dict[str, Any] = c.get(f"/evacuations/{eid}").json()
            if e["state"] != "running":
                return e
            time.sleep(0.3)
    raise AssertionError(f"evacuation {eid} did not end in {timeout}s: {e}")


def test_an_evacuation_moves_every_volume_and_recreates_their_containers(
        fleet: Fleet, host_c: str) -> None:
    tag = uuid.uuid4().hex[:6]
    names = [f"ev{i}-{tag}" for i in range(2)]
    client = fleet.docker[host_c].client()
    for i, n in enumerate(names):
        client.volumes.create(n)
        (mountpoint(fleet, host_c, n) / "data.bin").write_bytes(bytes([i]) * 300_000)
    apps = [_writer(fleet, host_c, n) for n in names]
    both = client.containers.run(
        busybox_image(fleet.docker[host_c]), ["sh", "-c", "trap 'exit 0' TERM; "
                                              "while true; do sleep 0.1; done"],
        detach=True, network_mode="none", name=f"both-{tag}",
        volumes={n: {"bind": f"/{n}", "mode": "rw"} for n in names})
    busybox_image(fleet.docker["host-b"])  # the image is on the destination too
    for n in names:
        fleet.wait_volume(host_c, n)
    with fleet.http as c:
        r = c.post("/evacuations", json={"host": host_c, "to_host": "host-b", "via": "s3",
                                         "recreate_containers": True, "dry_run": True})
        assert r.status_code == 200 and r.json()["ok"], r.text
        assert all(any(x["name"] == "recreate containers" and "host-b" in x["detail"]
                       for x in v["checks"]) for v in r.json()["volumes"])
        assert all(any(x["name"] == "images" and x["ok"] for x in v["checks"])
                   for v in r.json()["volumes"])  # busybox is on host-b
        r = c.post("/evacuations", json={"host": host_c, "to_host": "host-b", "via": "s3",
                                         "recreate_containers": True})
        assert r.status_code == 202, r.text
    done = _evacuation(fleet, r.json()["id"])
    assert done["state"] == "succeeded", done
    assert done["counts"] == {"succeeded": 2}
    listed = json.loads(_cli(fleet, "evacuations", "--json").stdout)
    assert [(e["id"], e["volumes"], e["state"]) for e in listed][:1] == [
        (done["id"], 2, "succeeded")]
    report = _cli(fleet, "evacuation", done["id"]).stdout
    assert f"# Evacuation {done['id']}: succeeded" in report
    assert all(f"| {n} |" in report for n in names), report
    b = fleet.docker["host-b"].client()
    try:
        for i, (n, app) in enumerate(zip(names, apps, strict=True)):
            dst = mountpoint(fleet, "host-b", n)
            assert (dst / "data.bin").read_bytes() == bytes([i]) * 300_000
            new = b.containers.get(app.name)
            assert new.status == "running"
            assert [(m["Name"], m["Destination"]) for m in new.attrs["Mounts"]] == [
                (n, "/data")]
            lines = len((dst / "log.txt").read_text().splitlines())
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and \
                    len((dst / "log.txt").read_text().splitlines()) == lines:
                time.sleep(0.1)
            assert len((dst / "log.txt").read_text().splitlines()) > lines  # it writes
            app.reload()
            assert app.status == "exited"  # the old one, kept stopped on host-c
        assert f"both-{tag}" not in [c.name for c in b.containers.list(all=True)]
        steps = [s for m in done["migrations"] for s in m["next_steps"]]
        assert any(f"container both-{tag} was not recreated" in s for s in steps), steps
        with fleet.http as c:
            md = c.get(f"/evacuations/{done['id']}", params={"format": "md"}).text
        assert all(app.name in md for app in apps), md
    finally:
        for app in apps:
            for c in b.containers.list(all=True, filters={"name": app.name}):
                c.remove(force=True)
        both.remove(force=True)
        for app in apps:
            app.remove(force=True)

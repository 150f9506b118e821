"""Migrations in the fleet (two dockerds, a worker each, the API's coordinator): a
volume moves from host-a to host-b while a container writes into it, with full fidelity;
the destination's worker SIGKILLed mid pre-copy, or the source's in the cut-over (its
container stopped), ends the migration rolled back (never half done) once the worker is
back, the source untouched and its container running."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.dockerd import busybox_image
from tests.fixtures.fleet import Fleet
from tests.integration.fleet.test_fleet import mountpoint, reference_copy
from tests.treecmp import build_fidelity_tree, compare_trees

pytestmark = pytest.mark.integration
WRITE = ("trap 'exit 0' TERM; i=0; while true; do echo $i >> /data/log.txt; i=$((i+1)); "
         "sleep 0.05; done")
FINAL = ("succeeded", "rolled_back", "failed", "cancelled")


def _start(fleet: Fleet, body: dict[str, Any]) -> dict[str, Any]:
    with fleet.http as c:
        r = c.post("/migrations", json=body)
    assert r.status_code == 202, r.text
    return dict(r.json())


def _wait(fleet: Fleet, mid: str, until: Any = None, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    with fleet.http as c:
        while time.monotonic() < deadline:
            m: dict[str, Any] = c.get(f"/migrations/{mid}").json()
            if (until or (lambda m: m["state"] in FINAL))(m):
                return m
            time.sleep(0.2)
    raise AssertionError(f"migration {mid} did not get there in {timeout}s: {m}\n"
                         + fleet.log("api")[-3000:])


def _writer(fleet: Fleet, host: str, volume: str) -> Any:
    return fleet.docker[host].client().containers.run(
        busybox_image(fleet.docker[host]), ["sh", "-c", WRITE], detach=True,
        network_mode="none", name=f"{volume}-app",
        volumes={volume: {"bind": "/data", "mode": "rw"}})


def test_a_volume_moves_host_to_host_while_its_container_writes(
        fleet: Fleet, tmp_path: Path) -> None:
    name = f"mv-{uuid.uuid4().hex[:6]}"
    fleet.docker["host-a"].client().volumes.create(name)
    src = mountpoint(fleet, "host-a", name)
    build_fidelity_tree(src)
    app = _writer(fleet, "host-a", name)
    try:
        fleet.wait_volume("host-a", name)
        with fleet.http as c:
            dry = c.post("/migrations", json={"volume": name, "host": "host-a",
                                              "to_host": "nowhere", "via": "s3",
                                              "dry_run": True}).json()
        assert dry["ok"] is False and any("nowhere" in x["detail"] for x in dry["checks"])
        m = _start(fleet, {"volume": name, "host": "host-a", "to_host": "host-b",
                           "via": "s3"})
        done = _wait(fleet, m["id"])
        assert done["state"] == "succeeded", done
        assert done["verify_outcome"] == "passed" and done["downtime_seconds"] is not None
        hosts = {j["step"]: j["host"] for p in done["phases"] for j in p["jobs"]}
        assert hosts == {"precopy.backup": "host-a", "precopy.restore": "host-b",
                         "catchup.backup.1": "host-a", "catchup.apply.1": "host-b",
                         "cutover.backup": "host-a", "cutover.apply": "host-b",
                         "verify": "host-b"}  # (the writer's log changed: one round)
        app.reload()
        assert app.status == "exited"
        before = reference_copy(src, tmp_path / "src")
        assert compare_trees(before, mountpoint(fleet, "host-b", name)) == []
        with fleet.http as c:
            md = c.get(f"/migrations/{m['id']}/report", params={"format": "md"})
        assert md.status_code == 200 and "| cut-over | succeeded |" in md.text
    finally:
        app.remove(force=True)


def test_the_destination_worker_killed_mid_pre_copy_ends_rolled_back(
        fleet: Fleet) -> None:
    name = f"mk-{uuid.uuid4().hex[:6]}"
    fleet.docker["host-a"].client().volumes.create(name)
    src = mountpoint(fleet, "host-a", name)
    for i in range(4):
        (src / f"blob{i}.bin").write_bytes(os.urandom(3 << 20))
    app = _writer(fleet, "host-a", name)
    fleet.stop_worker("host-b")
    fleet.start_worker("host-b", VOLKEEPER_BANDWIDTH_LIMIT=str(2 << 20))  # ~6 s restore
    throttled = True
    try:
        fleet.wait_volume("host-a", name)
        m = _start(fleet, {"volume": name, "host": "host-a", "to_host": "host-b",
                           "via": "s3"})

        def restoring(m: dict[str, Any]) -> bool:
            jobs = [j for p in m["phases"] for j in p["jobs"]]
            return any(j["step"] == "precopy.restore" and j["state"] == "running"
                       for j in jobs)

        _wait(fleet, m["id"], restoring, timeout=60)
        time.sleep(1.0)
        fleet.stop_worker("host-b", signal.SIGKILL)
        fleet.start_worker("host-b")
        throttled = False
        done = _wait(fleet, m["id"], timeout=120)
        assert done["state"] == "rolled_back", done
        assert "precopy.restore failed" in done["reason"]
        names = [v.name for v in fleet.docker["host-b"].client().volumes.list()]
        assert name not in names
        app.reload()
        assert app.status == "running"
        assert sorted(p.name for p in src.iterdir()) == [
            "blob0.bin", "blob1.bin", "blob2.bin", "blob3.bin", "log.txt"]
    finally:
        app.remove(force=True)
        if throttled:
            fleet.stop_worker("host-b")
            fleet.start_worker("host-b")


def _start_unseen(fleet: Fleet, app: Any, body: dict[str, Any]) -> dict[str, Any]:
    """Start a migration with ``app`` stopped during its validation and running again
    right after: no catch-up round (``migration_catchup``), so what is written after the
    pre-copy's backup is the cut-over's to carry; the cut-over stops ``app`` all the
    same (it stops what runs then)."""
    app.stop(timeout=5)
    try:
        return _start(fleet, body)
    finally:
        app.start()


def _running(step: str) -> Any:
    def check(m: dict[str, Any]) -> bool:
        return any(j["step"] == step and j["state"] == "running"
                   for p in m["phases"] for j in p["jobs"]) or m["state"] in FINAL
    return check


def test_the_source_worker_killed_in_the_cut_over_ends_rolled_back_and_running(
        fleet: Fleet) -> None:
    """SIGKILL while the containers are stopped for the final backup: the migration
    rolls back (destination removed), the container runs again, the source is intact."""
    name = f"mc-{uuid.uuid4().hex[:6]}"
    fleet.docker["host-a"].client().volumes.create(name)
    src = mountpoint(fleet, "host-a", name)
    (src / "blob.bin").write_bytes(os.urandom(1 << 20))
    app = _writer(fleet, "host-a", name)
    fleet.stop_worker("host-a")
    fleet.start_worker("host-a", VOLKEEPER_BANDWIDTH_LIMIT=str(2 << 20))  # slow backups
    throttled = True
    try:
        fleet.wait_volume("host-a", name)
        m = _start_unseen(fleet, app, {"volume": name, "host": "host-a",
                                       "to_host": "host-b", "via": "s3"})
        _wait(fleet, m["id"], _running("precopy.restore"), timeout=90)
        for i in range(8):  # new data: the final backup takes seconds at 2 MiB/s
            (src / f"new{i}.bin").write_bytes(os.urandom(2 << 20))
        contents = {p.name: p.read_bytes() for p in src.iterdir() if p.suffix == ".bin"}
        cut = _wait(fleet, m["id"], _running("cutover.backup"), timeout=90)
        assert cut["state"] == "running", cut
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            app.reload()
            if app.status == "exited":
                break
            time.sleep(0.1)
        assert app.status == "exited"  # stopped for the cut-over
        time.sleep(1.0)
        fleet.stop_worker("host-a", signal.SIGKILL)
        fleet.start_worker("host-a")
        throttled = False
        done = _wait(fleet, m["id"], timeout=120)
        assert done["state"] == "rolled_back", done
        assert "cutover.backup failed" in done["reason"]
        assert name not in [v.name for v in fleet.docker["host-b"].client().volumes.list()]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            app.reload()
            if app.status == "running":
                break
            time.sleep(0.2)
        assert app.status == "running"
        assert {p.name: p.read_bytes() for p in src.iterdir()
                if p.suffix == ".bin"} == contents
    finally:
        app.remove(force=True)
        if throttled:
            fleet.stop_worker("host-a")
            fleet.start_worker("host-a")


def test_an_evacuation_dry_run_checks_every_volume_of_the_host(fleet: Fleet) -> None:
    name = f"ev-{uuid.uuid4().hex[:6]}"
    fleet.docker["host-a"].client().volumes.create(name)
    fleet.wait_volume("host-a", name)
    with fleet.http as c:
        r = c.post("/evacuations", json={"host": "host-a", "to_host": "host-b",
                                         "via": "s3", "dry_run": True})
        assert r.status_code == 200, r.text
        mine = [v for v in r.json()["volumes"] if v["volume"] == name]
        assert len(mine) == 1 and mine[0]["ok"], mine
        assert {x["name"] for x in mine[0]["checks"]} >= {
            "source volume", "destination volume", "driver", "free space", "target s3"}
        bad = c.post("/evacuations", json={"host": "host-a", "to_host": "host-b",
                                           "concurrency": 0})
        assert bad.status_code == 422 and "concurrency" in bad.text


def test_the_cli_speaks_to_the_fleet_s_migrations(fleet: Fleet) -> None:
    import json
    import subprocess
    import sys

    from tests.fixtures.fleet import TOKEN

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cli.main", "--server", fleet.api_url,
                               "--token", TOKEN, *args], env=fleet.env, text=True,
                              capture_output=True, timeout=120,
                              cwd=Path(__file__).resolve().parents[3])

    dry = cli("migrate", "no-such-volume", "--host", "host-a", "--to-host", "host-b",
              "--via", "s3", "--dry-run")
    assert dry.returncode == 1 and "does not exist" in dry.stdout, dry
    listed = cli("migrations", "--json")
    assert listed.returncode == 0 and isinstance(json.loads(listed.stdout), list)
    missing = cli("migration", "0123456789abcdef")
    assert missing.returncode == 1 and "not found" in missing.stderr.lower(), missing

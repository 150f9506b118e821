"""Volume groups in the fleet, through the REST API and real Celery workers: a Compose
project of two volumes — one with a container writing all the while, stopped once for
the group — backed up as one job on host-a and restored together onto host-b, each member
equal to its volume as it was in the stop window; and a group whose worker is SIGKILLed
while the containers are stopped: they run again once the worker is back, the job fails
saying so, and no member is cataloged or left in the target."""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.dockerd import busybox_image
from tests.fixtures.fleet import Fleet
from tests.fixtures.util import wait_for
from tests.integration.fleet.test_consistent_fleet import running, slow_host_b  # noqa: F401
from tests.integration.fleet.test_fleet import mountpoint, reference_copy, submit
from tests.treecmp import build_fidelity_tree, compare_trees

pytestmark = pytest.mark.integration

#: appends numbered records to a file of its own per start (so what it writes after the
#: stop window is a file the backup cannot hold), each flushed before the next
WRITER = ("trap 'exit 0' TERM; f=/data/run-$(cat /proc/sys/kernel/random/uuid); i=0; "
          "while :; do i=$((i+1)); echo \"record $i\" >> $f; sleep 0.01; done")


def project(fleet: Fleet, host: str, name: str) -> dict[str, Path]:
    """Volumes ``<name>_db`` and ``<name>_files`` of Compose project ``name`` on ``host``,
    the files one a fidelity tree."""
    client = fleet.docker[host].client()
    out = {}
    for part in ("db", "files"):
        volume = f"{name}_{part}"
        client.volumes.create(volume, labels={"com.docker.compose.project": name,
                                              "com.docker.compose.volume": part})
        out[volume] = mountpoint(fleet, host, volume)
        fleet.wait_volume(host, volume)
    build_fidelity_tree(out[f"{name}_files"])
    return out


def start_writer(fleet: Fleet, host: str, volume: str) -> Any:
    ctr = fleet.docker[host].client().containers.run(
        busybox_image(fleet.docker[host]), ["sh", "-c", WRITER], detach=True,
        network_mode="none", name=f"{volume}-writer",
        labels={"volkeeper.stop-during-backup": "true"},
        volumes={volume: {"bind": "/data", "mode": "rw"}})
    wait_for(lambda: any(mountpoint(fleet, host, volume).glob("run-*")), 30,
             "the writer's first record")
    return ctr


def test_a_project_backed_up_on_one_host_is_restored_together_on_the_other(
        fleet: Fleet, tmp_path: Path) -> None:
    name = f"fg{uuid.uuid4().hex[:6]}"
    vols = project(fleet, "host-a", name)
    db, files = vols
    ref_files = reference_copy(vols[files], tmp_path / "ref-files")
    writer = start_writer(fleet, "host-a", db)
    try:
        job = fleet.wait_job(submit(fleet, "/groups", {
            "project": name, "host": "host-a", "target": "s3", "format": "repo"})["id"])
        assert job["state"] == "succeeded", job["error"]
        assert job["kind"] == "group-backup" and job["worker"].startswith("host-a@")
        r = job["result"]
        assert r["stopped_containers"] == [writer.name] == r["restarted_containers"]
        assert [(m["volume"], m["read_as"]) for m in r["members"]] == [
            (db, "files"), (files, "files")]
        assert running(writer)
        with fleet.http as c:
            members = c.get(f"/groups/{r['group_id']}").json()
            assert sorted(b["id"] for b in members) == sorted(r["backup_ids"])
            assert {(b["host"], b["group_id"]) for b in members} == {("host-a", job["id"])}
            made = c.post(f"/groups/{r['group_id']}/restore", json={"host": "host-b"})
        assert made.status_code == 202, made.text
        restores = [fleet.wait_job(j["id"]) for j in made.json()]
        assert [j["state"] for j in restores] == ["succeeded", "succeeded"], restores
        assert {j["worker"].split("@")[0] for j in restores} == {"host-b"}
        assert compare_trees(ref_files, mountpoint(fleet, "host-b", files)) == []

        # the db volume as it was in the stop window: the writer's file of that run whole,
        # and only the file of its run after the window missing
        writer.stop(timeout=10)
        ref_db = reference_copy(vols[db], tmp_path / "ref-db")
        back = mountpoint(fleet, "host-b", db)
        later = sorted({p.name for p in ref_db.iterdir()} - {p.name for p in back.iterdir()})
        assert len(later) == 1 and later[0].startswith("run-"), later
        (ref_db / later[0]).unlink()
        assert compare_trees(ref_db, back, check_dir_mtimes=False) == []
        [run] = [p for p in back.iterdir()]
        lines = run.read_text().splitlines()
        assert len(lines) > 5 and lines == [f"record {i}" for i in range(1, len(lines) + 1)]
    finally:
        writer.remove(force=True)


def test_a_killed_worker_s_group_starts_its_containers_and_keeps_no_member(
        fleet: Fleet, slow_host_b: None) -> None:  # noqa: F811
    name = f"fk{uuid.uuid4().hex[:6]}"
    vols = project(fleet, "host-b", name)
    db, files = vols
    for i in range(4):
        (vols[files] / f"blob{i}.bin").write_bytes(os.urandom(10 << 20))
    writer = start_writer(fleet, "host-b", db)
    try:
        job = submit(fleet, "/groups", {"project": name, "host": "host-b", "target": "s3",
                                        "format": "tar.zst"})
        wait_for(lambda: not running(writer), 60, "the writer stopped for the group")
        fleet.wait_job_until(job["id"], lambda j: "volume " + files in
                             str((j["progress"] or {}).get("message")) and
                             (j["progress"] or {}).get("bytes_done", 0) > 0,
                             "backing up the second member", timeout=60, active=True)
        fleet.stop_worker("host-b", signal.SIGKILL)
        failed = fleet.wait_job(job["id"], timeout=60)
        assert failed["state"] == "failed"
        assert writer.name in failed["error"] and "starts them again" in failed["error"]
        assert not running(writer)

        fleet.start_worker("host-b")
        wait_for(lambda: running(writer), 60, "the writer started again by its host")
        done = fleet.wait_job_until(job["id"], lambda j: "leftovers" in (j["result"] or {}),
                                    "the clean-up of the member it had stored")
        assert "started again" in done["error"] and done["result"]["containers_to_start"] == []
        assert [k.split("/")[-2] for k in done["result"]["leftovers"]] == [db, db]
        with fleet.http as c:
            assert c.get(f"/groups/{job['id']}").json() == []
            for v in vols:
                assert c.get("/backups", params={"volume": v}).json() == []
    finally:
        writer.remove(force=True)

"""The fleet end to end: API → Redis → the worker of the volume's own host → S3 (moto over
HTTP) → job history in PostgreSQL; then the volume is deleted and restored, and the trees
are compared byte for byte and metadata for metadata."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.fleet import TOKEN, Fleet
from tests.treecmp import build_fidelity_tree, compare_trees

pytestmark = pytest.mark.integration


def mountpoint(fleet: Fleet, host: str, volume: str) -> Path:
    return Path(fleet.docker[host].client().volumes.get(volume).attrs["Mountpoint"])


def reference_copy(src: Path, dst: Path) -> Path:
    subprocess.run(["cp", "-a", "--preserve=all", "--sparse=always", f"{src}/.", str(dst)],
                   check=True)
    return dst


def submit(fleet: Fleet, path: str, body: dict[str, Any]) -> dict[str, Any]:
    with fleet.http as c:
        r = c.post(path, json=body)
    assert r.status_code == 202, r.text
    job: dict[str, Any] = r.json()
    return job


def events_of(fleet: Fleet, job_id: str) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    with httpx.stream("GET", f"{fleet.api_url}/api/v1/jobs/{job_id}/events", timeout=120,
                      headers={"Authorization": f"Bearer {TOKEN}"}) as r:
        event = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event:
                out.append((event, json.loads(line[6:])))
                if event == "end":
                    break
    return out


def test_backups_run_on_their_own_host_and_restore_byte_for_byte(
        fleet: Fleet, tmp_path: Path) -> None:
    fleet.docker["host-a"].client().volumes.create("pgdata")
    fleet.docker["host-b"].client().volumes.create("files")
    build_fidelity_tree(mountpoint(fleet, "host-a", "pgdata"))
    build_fidelity_tree(mountpoint(fleet, "host-b", "files"))
    ref_a = reference_copy(mountpoint(fleet, "host-a", "pgdata"), tmp_path / "ref-a")
    ref_b = reference_copy(mountpoint(fleet, "host-b", "files"), tmp_path / "ref-b")
    fleet.wait_volume("host-a", "pgdata")
    fleet.wait_volume("host-b", "files")

    job_a = submit(fleet, "/backups", {"volume": "pgdata", "host": "host-a", "target": "s3"})
    events = events_of(fleet, job_a["id"])
    job_b = submit(fleet, "/backups", {"volume": "files", "host": "host-b", "target": "s3",
                                        "format": "tar.gz"})
    done_a, done_b = fleet.wait_job(job_a["id"]), fleet.wait_job(job_b["id"])
    assert done_a["state"] == "succeeded", done_a["error"]
    assert done_b["state"] == "succeeded", done_b["error"]
    assert done_a["worker"].startswith("host-a@") and done_b["worker"].startswith("host-b@")
    assert events[-1][0] == "end" and events[-1][1]["state"] == "succeeded"
    assert any(e == "progress" for e, _ in events)
    assert done_a["result"]["format"] == "repo"  # the default: the native repository
    assert "/repo/snapshots/" in done_a["result"]["key"]
    assert done_b["result"]["key"].endswith(".tar.gz")

    with fleet.http as c:
        listed = {b["id"]: b for b in c.get("/backups").json()}
    backup_a = listed[done_a["backup_id"]]
    assert backup_a["volume"] == "pgdata" and backup_a["host"] == "host-a"
    assert backup_a["file_count"] > 5 and backup_a["stored_bytes"] > 0

    fleet.docker["host-a"].client().volumes.get("pgdata").remove()
    fleet.wait_volume_gone("host-a", "pgdata")
    restored = fleet.wait_job(submit(fleet, "/restores", {"backup_id": backup_a["id"]})["id"])
    assert restored["state"] == "succeeded", restored["error"]
    assert compare_trees(ref_a, mountpoint(fleet, "host-a", "pgdata")) == []

    copy = fleet.wait_job(submit(fleet, "/restores", {
        "backup_id": done_b["backup_id"], "into": "files-copy"})["id"])
    assert copy["state"] == "succeeded", copy["error"]
    assert compare_trees(ref_b, mountpoint(fleet, "host-b", "files-copy")) == []

    # across hosts: the data moves through the target storage, never through the API
    moved = fleet.wait_job(submit(fleet, "/restores", {
        "backup_id": backup_a["id"], "host": "host-b", "into": "pgdata-moved"})["id"])
    assert moved["state"] == "succeeded", moved["error"]
    assert moved["worker"].startswith("host-b@")
    assert compare_trees(ref_a, mountpoint(fleet, "host-b", "pgdata-moved")) == []


def test_restore_into_a_non_empty_volume_is_refused_and_leaves_it_untouched(
        fleet: Fleet, tmp_path: Path) -> None:
    client = fleet.docker["host-b"].client()
    client.volumes.create("keepme")
    build_fidelity_tree(mountpoint(fleet, "host-b", "keepme"))
    ref = reference_copy(mountpoint(fleet, "host-b", "keepme"), tmp_path / "ref")
    fleet.wait_volume("host-b", "keepme")
    done = fleet.wait_job(submit(fleet, "/backups", {"volume": "keepme", "host": "host-b",
                                                     "target": "s3"})["id"])
    assert done["state"] == "succeeded", done["error"]
    (mountpoint(fleet, "host-b", "keepme") / "new-after-backup.txt").write_text("mine")
    failed = fleet.wait_job(submit(fleet, "/restores", {"backup_id": done["backup_id"]})["id"])
    assert failed["state"] == "failed"
    assert "not empty" in failed["error"] and "--into" in failed["error"]
    assert (mountpoint(fleet, "host-b", "keepme") / "new-after-backup.txt").read_text() == "mine"
    (mountpoint(fleet, "host-b", "keepme") / "new-after-backup.txt").unlink()
    # our own write and unlink above changed the root's mtime; everything below is as it was
    assert compare_trees(ref, mountpoint(fleet, "host-b", "keepme"), check_root=False) == []


def test_unknown_names_get_404s_that_name_them(fleet: Fleet) -> None:
    with fleet.http as c:
        r = c.post("/backups", json={"volume": "nope", "host": "host-a", "target": "s3"})
        assert r.status_code == 404 and "'nope'" in r.json()["error"]["message"]
        r = c.post("/backups", json={"volume": "x", "host": "host-z"})
        assert r.status_code == 404 and "'host-z'" in r.json()["error"]["message"]
        r = c.post("/restores", json={"backup_id": "0000"})
        assert r.status_code == 404 and "'0000'" in r.json()["error"]["message"]
        r = c.post("/backups", json={"volume": "x", "host": "host-a", "format": "rar"})
        assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "format"
        assert httpx.get(fleet.api_url + "/api/v1/jobs").status_code == 401


def test_the_cli_drives_the_fleet_through_the_api(fleet: Fleet, tmp_path: Path) -> None:
    fleet.docker["host-a"].client().volumes.create("cli-vol")
    (mountpoint(fleet, "host-a", "cli-vol") / "hello.txt").write_text("from the cli")
    fleet.wait_volume("host-a", "cli-vol")
    env = {k: v for k, v in fleet.env.items() if k not in (
        "VOLKEEPER_DATABASE_URL", "VOLKEEPER_REDIS_URL", "VOLKEEPER_API_TOKEN")}
    base = [sys.executable, "-m", "cli.main", "--server", fleet.api_url]

    def cli(*args: str, token: str | None = TOKEN) -> subprocess.CompletedProcess[str]:
        extra = ["--token", token] if token else []
        return subprocess.run([*base, *extra, *args], env=env, capture_output=True, text=True,
                              timeout=120)

    p = cli("backup", "cli-vol", "--host", "host-a", "--target", "s3", "--wait", "--json")
    assert p.returncode == 0, p.stderr
    job = json.loads(p.stdout)
    assert job["state"] == "succeeded" and job["worker"].startswith("host-a@")
    hosts = json.loads(cli("hosts", "--json").stdout)
    assert {h["name"]: h["online"] for h in hosts} == {"host-a": True, "host-b": True}
    assert all(h["docker_version"] for h in hosts)
    p = cli("restore", job["backup_id"], "--into", "cli-copy", "--wait", "--json")
    assert p.returncode == 0, p.stderr
    assert (mountpoint(fleet, "host-a", "cli-copy") / "hello.txt").read_text() == "from the cli"
    denied = cli("jobs", token=None)
    assert denied.returncode == 1 and "token" in denied.stderr

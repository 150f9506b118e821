"""A group backup whose process is killed while the group's containers are stopped (a
SIGKILLed `volkeeper backup --group`): the next command starts the containers again, fails
the job with an error that says so, removes the member archive already stored (it was never
cataloged) and marks no member good; the group backs up again afterwards. A cancelled
group starts its containers and forgets the member it had stored in the job itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.embedded.test_consistent import (
    STOP,
    app,  # noqa: F401 - a fixture
    backup,
    backups_of,
    new_volume,
    state,
)
from tests.integration.embedded.test_embedded import REPO, cli

pytestmark = pytest.mark.integration


def test_a_killed_group_backup_starts_its_containers_and_leaves_no_member_behind(
        embedded_env: dict[str, str], docker_host_a: Any, app: Any,  # noqa: F811
        tmp_path: Path) -> None:
    first, _ = new_volume(docker_host_a)
    second, path = new_volume(docker_host_a)
    for i in range(6):
        (path / f"blob{i}.bin").write_bytes(os.urandom(8 << 20))
    a, b = app(first, f"{first}-a", STOP), app(second, f"{second}-b")
    store = tmp_path / "store"
    store.mkdir()
    cli(embedded_env, "targets", "add", "t", f"file://{store}")
    slow = embedded_env | {"VOLKEEPER_BANDWIDTH_LIMIT": str(4 << 20)}  # ~12 s for second
    cmd = [sys.executable, "-m", "cli.main", "backup", "--group", "pair", "--volume", first,
           "--volume", second, "--target", "t", "--format", "tar"]
    p = subprocess.Popen(cmd, env=slow, cwd=REPO, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    members = store / "volkeeper" / "archives" / "laptop"

    def first_stored() -> bool:  # its manifest is written after the archive
        return any(members.glob(f"{first}/*.manifest*"))

    deadline = time.monotonic() + 60
    while p.poll() is None and not first_stored() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert p.poll() is None, "the group backup ended before it could be killed"
    assert first_stored() and not state(a)["Running"] and not state(b)["Running"]
    p.kill()
    p.wait(30)
    time.sleep(0.5)
    assert not state(a)["Running"] and not state(b)["Running"]  # nobody else starts them

    history = json.loads(cli(embedded_env, "jobs", "--json").stdout)
    job = next(j for j in history if j["kind"] == "group-backup")
    assert job["state"] == "failed"
    err = job["error"]
    assert "started again" in err and a.name in err and b.name in err, err
    assert state(a)["Running"] and state(b)["Running"]
    assert backups_of(embedded_env, first) == backups_of(embedded_env, second) == []
    assert "backup_ids" not in job["result"]

    # the members are not locked; the process that runs the next job first removes the
    # archive of the first member the dead group had stored (never cataloged)
    again = backup(embedded_env, "--group", "pair", "--volume", first, "--volume", second,
                   "--target", "t", "--format", "tar")
    assert again["state"] == "succeeded", again["error"]
    assert sorted(again["result"]["restarted_containers"]) == sorted([a.name, b.name])
    assert len(backups_of(embedded_env, first)) == len(backups_of(embedded_env, second)) == 1
    left = [f.name for f in members.rglob("*") if f.is_file()]
    assert len(left) == 4 and all(again["id"] in name for name in left), left
    gone = json.loads(cli(embedded_env, "job", job["id"], "--json", ok=False).stdout)
    stored = [k for k in gone["result"]["leftovers"] if ".partial-" not in k]
    assert len(stored) == 2, gone["result"]  # the first member's archive and manifest


def test_a_cancelled_group_backup_starts_its_containers_and_forgets_its_members(
        embedded_env: dict[str, str], docker_host_a: Any, app: Any,  # noqa: F811
        tmp_path: Path) -> None:
    first, _ = new_volume(docker_host_a)
    second, path = new_volume(docker_host_a)
    for i in range(6):
        (path / f"blob{i}.bin").write_bytes(os.urandom(8 << 20))
    ctr = app(second, f"{second}-b", STOP | {"volkeeper.post-backup": "echo post > /data/p"})
    store = tmp_path / "store"
    store.mkdir()
    cli(embedded_env, "targets", "add", "t", f"file://{store}")
    slow = embedded_env | {"VOLKEEPER_BANDWIDTH_LIMIT": str(4 << 20)}
    p = subprocess.Popen([sys.executable, "-m", "cli.main", "backup", "--group", "pair",
                          "--volume", first, "--volume", second, "--target", "t",
                          "--format", "tar.zst", "--json"], env=slow, cwd=REPO,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        deadline = time.monotonic() + 60
        while p.poll() is None and time.monotonic() < deadline and not any(
                store.glob(f"volkeeper/archives/laptop/{first}/*.manifest*")):
            time.sleep(0.02)
        assert p.poll() is None and not state(ctr)["Running"]
        job = next(j for j in json.loads(cli(embedded_env, "jobs", "--json").stdout)
                   if j["kind"] == "group-backup" and j["state"] == "running")
        cli(embedded_env, "cancel", job["id"])
        stdout, _ = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    done = json.loads(stdout)
    assert done["state"] == "cancelled", done
    r = done["result"]
    assert r["stopped_containers"] == [ctr.name] == r["restarted_containers"]
    assert r["members_forgotten"] == [first]
    assert state(ctr)["Running"] and (path / "p").read_text() == "post\n"
    assert backups_of(embedded_env, first) == backups_of(embedded_env, second) == []
    assert [f for f in store.rglob("*") if f.is_file()] == []

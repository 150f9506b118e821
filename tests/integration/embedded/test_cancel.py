"""Embedded mode, cancel from a second process: ``volkeeper backup`` of a big volume runs
in one process, ``volkeeper cancel JOB_ID`` in another stops it — the backup process ends
with the job ``cancelled``, the catalog has no backup of it and the repository no
snapshot; a finished job cannot be cancelled."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.embedded.test_embedded import REPO, cli, volume

pytestmark = pytest.mark.integration


def _running_job(env: dict[str, str], kind: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for j in json.loads(cli(env, "jobs", "--json").stdout):
            if j["kind"] == kind and j["state"] == "running":
                return dict(j)
        time.sleep(0.2)
    raise AssertionError(f"no running {kind} job within {timeout}s")


def test_a_backup_cancelled_from_another_process_ends_cancelled_and_leaves_no_backup(
        embedded_env: dict[str, str], docker_host_a: Any) -> None:
    src = volume(docker_host_a, "cx-big")
    for i in range(4):
        (src / f"blob{i}.bin").write_bytes(os.urandom(6 << 20))
    cli(embedded_env, "jobs")  # the database exists before two processes use it
    # ~24 s in all if nobody cancels it: room for two slow CLI starts on a busy machine
    slow = embedded_env | {"VOLKEEPER_BANDWIDTH_LIMIT": str(1 << 20)}
    p = subprocess.Popen([sys.executable, "-m", "cli.main", "backup", "cx-big", "--json"],
                         env=slow, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        job = _running_job(embedded_env, "backup")
        time.sleep(1.0)  # well into the volume
        asked = json.loads(cli(embedded_env, "cancel", job["id"], "--json").stdout)
        assert asked["state"] == "running" and asked["cancel_requested_by"]
        stdout, stderr = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 1, stderr  # stopped, not finished: state cancelled, no backup
    done = json.loads(stdout)
    assert done["state"] == "cancelled", done
    assert done["error"].startswith("cancelled by "), done["error"]
    assert f"job {job['id']} cancelled" in stderr

    shown = cli(embedded_env, "job", job["id"], "--json", ok=False)
    assert shown.returncode == 1 and json.loads(shown.stdout)["state"] == "cancelled"
    assert [b for b in json.loads(cli(embedded_env, "backups", "--json").stdout)
            if b["volume"] == "cx-big"] == []
    snapshots = Path(embedded_env["VOLKEEPER_HOME"]) / "backups/volkeeper/repo/snapshots"
    assert not snapshots.exists() or list(snapshots.iterdir()) == []
    listed = cli(embedded_env, "jobs").stdout
    assert "cancelled" in listed

    again = cli(embedded_env, "cancel", job["id"], ok=False)
    assert again.returncode == 1
    assert "already finished: cancelled" in again.stderr
    # the volume is free: a new backup runs to the end
    ok = json.loads(cli(embedded_env, "backup", "cx-big", "--json").stdout)
    assert ok["state"] == "succeeded", ok

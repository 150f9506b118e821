"""Embedded mode, a killed restore: the next ``volkeeper`` command notices the dead process
and removes the half-restored volume it created (no server needed to clean up)."""

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

from tests.integration.embedded.test_embedded import REPO, cli, volume

pytestmark = pytest.mark.integration


def test_the_next_command_removes_the_volume_a_killed_restore_left_half_written(
        embedded_env: dict[str, str], docker_host_a: Any) -> None:
    src = volume(docker_host_a, "rec-src")
    for i in range(6):
        (src / f"blob{i}.bin").write_bytes(os.urandom(32 << 20))
    job = json.loads(cli(embedded_env, "backup", "rec-src", "--format", "tar",
                         "--json").stdout)
    assert job["state"] == "succeeded", job

    client = docker_host_a.client()
    cmd = [sys.executable, "-m", "cli.main", "restore", job["backup_id"],
           "--into", "rec-half"]
    p = subprocess.Popen(cmd, env=embedded_env, cwd=REPO, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)

    def written() -> int:
        try:
            path = Path(client.volumes.get("rec-half").attrs["Mountpoint"])
        except docker.errors.NotFound:
            return 0
        return sum(f.stat().st_size for f in path.glob("*") if f.is_file())

    deadline = time.monotonic() + 60
    while p.poll() is None and written() < (16 << 20) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert p.poll() is None, "the restore ended before it could be killed"
    p.kill()
    p.wait(30)
    assert 0 < written() < 6 * (32 << 20)  # half written

    history = json.loads(cli(embedded_env, "jobs", "--json").stdout)
    restore = next(j for j in history if j["kind"] == "restore")
    assert restore["state"] == "failed"
    assert "removed" in restore["error"], restore["error"]
    with pytest.raises(docker.errors.NotFound):
        client.volumes.get("rec-half")
    again = json.loads(cli(embedded_env, "restore", job["backup_id"], "--into", "rec-half",
                           "--json").stdout)
    assert again["state"] == "succeeded", again

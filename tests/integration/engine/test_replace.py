"""Replace-restores: a safety snapshot first, containers stopped and always restarted,
the new content verified, automatic rollback on failure, and `volkeeper rollback`."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.dockerd import busybox_image
from tests.integration.embedded.test_embedded import cli, volume
from tests.treecmp import build_fidelity_tree, compare_trees

pytestmark = pytest.mark.integration


def snapshot(src: Path, dst: Path) -> Path:
    subprocess.run(["cp", "-a", "--preserve=all", "--sparse=always", f"{src}/.", str(dst)],
                   check=True)
    return dst


@pytest.fixture
def app_volume(docker_host_a: Any, tmp_path: Path) -> Iterator[tuple[Path, Any]]:
    """A volume with content and a running container ("<volume>-app") using it."""
    name = f"repl-{uuid.uuid4().hex[:8]}"
    path = volume(docker_host_a, name)
    build_fidelity_tree(path)
    client = docker_host_a.client()
    # like a real service it ends on SIGTERM (a bare `sleep` as PID 1 ignores it, and every
    # stop would wait out the whole stop timeout before the SIGKILL)
    serve = "trap 'exit 0' TERM; sleep 3600 & wait"
    ctr = client.containers.run(busybox_image(docker_host_a), ["sh", "-c", serve], detach=True,
                                network_mode="none", name=f"{name}-app",
                                volumes={name: {"bind": "/data", "mode": "rw"}})
    yield path, ctr
    ctr.remove(force=True)


def state(ctr: Any) -> str:
    ctr.reload()
    return str(ctr.status)


def test_replace_snapshots_stops_and_restarts_and_rollback_undoes_it(
        embedded_env: dict[str, str], app_volume: tuple[Path, Any], tmp_path: Path) -> None:
    path, ctr = app_volume
    original = snapshot(path, tmp_path / "original")
    name = path.parent.name
    job = json.loads(cli(embedded_env, "backup", name, "--json").stdout)
    (path / "plain.txt").write_text("changed after the backup")
    (path / "new-file").write_text("new")
    changed = snapshot(path, tmp_path / "changed")

    refused = cli(embedded_env, "restore", job["backup_id"], "--mode", "replace", ok=False)
    assert refused.returncode == 1 and "--stop-containers" in refused.stderr
    assert compare_trees(changed, path) == [] and state(ctr) == "running"

    dry = json.loads(cli(embedded_env, "restore", job["backup_id"], "--mode", "replace",
                         "--stop-containers", "--dry-run", "--json").stdout)
    assert dry["ok"] and dry["stopping"] == [f"{name}-app"] and "snapshot" in dry["plan"]

    done = json.loads(cli(embedded_env, "restore", job["backup_id"], "--mode", "replace",
                          "--stop-containers", "--json").stdout)
    assert done["state"] == "succeeded", done["error"]
    r = done["result"]
    assert r["stopped_containers"] == [f"{name}-app"] == r["restarted_containers"]
    assert r["entries_checked"] > 10 and r["safety_backup_id"]
    assert state(ctr) == "running"
    assert compare_trees(original, path) == []

    undone = json.loads(cli(embedded_env, "rollback", done["id"], "--json").stdout)
    assert undone["state"] == "succeeded", undone["error"]
    assert undone["backup_id"] == r["safety_backup_id"]
    assert compare_trees(changed, path) == []
    assert state(ctr) == "running"


def test_a_failed_replace_puts_the_previous_content_back(
        embedded_env: dict[str, str], app_volume: tuple[Path, Any], tmp_path: Path) -> None:
    path, ctr = app_volume
    job = json.loads(cli(embedded_env, "backup", path.parent.name, "--format", "tar.zst",
                         "--json").stdout)
    (path / "plain.txt").write_text("the content we must not lose")
    before = snapshot(path, tmp_path / "before")
    archive = Path(embedded_env["VOLKEEPER_HOME"]) / "backups" / job["result"]["key"]
    raw = bytearray(archive.read_bytes())
    raw[len(raw) // 2] ^= 0x10
    archive.write_bytes(bytes(raw))

    failed = cli(embedded_env, "restore", job["backup_id"], "--mode", "replace",
                 "--stop-containers", "--json", ok=False)
    assert failed.returncode == 1
    assert "put back" in failed.stderr and "Traceback" not in failed.stderr
    assert compare_trees(before, path) == []
    assert state(ctr) == "running"
    safety = json.loads(cli(embedded_env, "backups", "--json").stdout)
    assert all(b["kind"] == "backup" for b in safety)


def test_replace_of_a_missing_volume_is_refused(embedded_env: dict[str, str],
                                                docker_host_a: Any) -> None:
    path = volume(docker_host_a, "repl-gone")
    (path / "f").write_text("x")
    job = json.loads(cli(embedded_env, "backup", "repl-gone", "--json").stdout)
    p = cli(embedded_env, "restore", job["backup_id"], "--into", "repl-never-existed",
            "--mode", "replace", ok=False)
    assert p.returncode == 1 and "nothing to replace" in p.stderr

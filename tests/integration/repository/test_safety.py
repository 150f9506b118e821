"""The safety snapshot of a replace-restore of a repository backup: a snapshot in the same
encrypted repository (no plaintext copy of the replaced content in the target), put back
byte for byte by `volkeeper rollback` and by the automatic roll-back, never the parent of
the next regular backup, and forgotten from the repository when it expires."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import sqlite3
import stat
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import zstandard

from tests.integration.embedded.test_embedded import cli, volume
from tests.integration.repository.test_product import repo_env
from tests.treecmp import compare_trees

pytestmark = pytest.mark.integration
__all__ = ["repo_env"]  # the fixture, re-used
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def strict_env(repo_env: dict[str, str]) -> dict[str, str]:
    """An encrypted repository, device nodes refused for ordinary restores."""
    return repo_env | {"VOLKEEPER_RESTORE_DEVICE_NODES": "false"}


def _target(env: dict[str, str]) -> Path:
    return Path(env["VOLKEEPER_HOME"]) / "backups"


def _copy(src: Path, dst: Path) -> Path:
    subprocess.run(["cp", "-a", "--preserve=all", "--sparse=always", f"{src}/.", str(dst)],
                   check=True)
    return dst


def _readable(raw: bytes) -> list[bytes]:
    """The object as stored, and whatever a zstd or gzip decompression makes of it."""
    out = [raw]
    with contextlib.suppress(zstandard.ZstdError), \
            zstandard.ZstdDecompressor().stream_reader(raw) as r:
        out.append(r.read())
    with contextlib.suppress(OSError, EOFError):
        out.append(gzip.decompress(raw))
    return out


def _holding(env: dict[str, str], marker: bytes) -> list[str]:
    root = _target(env)
    return [str(p.relative_to(root)) for p in root.rglob("*")
            if p.is_file() and any(marker in data for data in _readable(p.read_bytes()))]


def _row(env: dict[str, str], backup_id: str) -> dict[str, Any] | None:
    with sqlite3.connect(Path(env["VOLKEEPER_HOME"]) / "volkeeper.db") as db:
        db.row_factory = sqlite3.Row
        row = db.execute("SELECT kind, format, key, snapshot_id FROM backups WHERE id = ?",
                         (backup_id,)).fetchone()
    return dict(row) if row else None


def _snapshots(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    done = json.loads(cli(env, "snapshots", "local", "--json").stdout)
    return {s["id"]: s for s in done["result"]["snapshots"]}


def _backup(env: dict[str, str], name: str) -> dict[str, Any]:
    job = json.loads(cli(env, "backup", name, "--format", "repo", "--json").stdout)
    assert job["state"] == "succeeded", job["error"]
    return dict(job)


def _app(docker_host: Any, name: str) -> Path:
    path = volume(docker_host, name)
    (path / "data").mkdir()
    (path / "data" / "big.bin").write_bytes(os.urandom(2 << 20))
    (path / "plain.txt").write_text("the first version")
    os.symlink("plain.txt", path / "link")
    return path


def test_a_replace_of_an_encrypted_repo_backup_keeps_its_safety_snapshot_encrypted(
        strict_env: dict[str, str], docker_host_a: Any, tmp_path: Path) -> None:
    marker = f"VOLKEEPER-PLAINTEXT-MARKER-{uuid.uuid4().hex}".encode()
    path = _app(docker_host_a, "rs-enc")
    first = _backup(strict_env, "rs-enc")
    # the content the replace overwrites: a secret, and a device node of its own
    (path / "secret.txt").write_bytes(marker * 64)
    (path / "plain.txt").write_text("the second version")
    os.mknod(path / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    replaced = _copy(path, tmp_path / "replaced")

    done = json.loads(cli(strict_env, "restore", first["backup_id"], "--mode", "replace",
                          "--json").stdout)
    assert done["state"] == "succeeded", done["error"]
    assert not (path / "secret.txt").exists()
    assert _holding(strict_env, marker) == []  # no plaintext copy anywhere in the target
    safety_id = done["result"]["safety_backup_id"]
    row = _row(strict_env, safety_id)
    assert row is not None and row["kind"] == "safety" and row["format"] == "repo"
    assert not (_target(strict_env) / "volkeeper" / "safety").exists()
    snaps = _snapshots(strict_env)
    safety = snaps[row["snapshot_id"]]
    assert safety["volume"] == "rs-enc" and safety["host"] == "laptop"
    assert safety["backup_id"] == safety_id and safety["tags"] == []  # volkeeper's own
    assert safety["parent"] == first["result"]["snapshot_id"]  # incremental

    # the next regular backup's parent is the regular one, not the safety snapshot, and
    # the catalog's latest backup of the volume is that regular backup
    second = _backup(strict_env, "rs-enc")
    assert _snapshots(strict_env)[second["result"]["snapshot_id"]]["parent"] == \
        first["result"]["snapshot_id"]
    listed = json.loads(cli(strict_env, "backups", "--volume", "rs-enc", "--json").stdout)
    assert [b["id"] for b in listed] == [second["backup_id"], first["backup_id"]]

    # rollback puts the replaced content back byte for byte (the device node included,
    # although ordinary restores refuse device nodes here)
    undone = json.loads(cli(strict_env, "rollback", done["id"], "--json").stdout)
    assert undone["state"] == "succeeded", undone["error"]
    assert compare_trees(replaced, path) == []
    assert (path / "secret.txt").read_bytes() == marker * 64
    assert stat.S_ISCHR((path / "null").lstat().st_mode)
    assert _holding(strict_env, marker) == []

    # expiry forgets the safety snapshot from the repository and the catalog
    with sqlite3.connect(Path(strict_env["VOLKEEPER_HOME"]) / "volkeeper.db") as db:
        db.execute("UPDATE backups SET expires_at = '2000-01-01 00:00:00.000000' "
                   "WHERE kind = 'safety'")
    expire = ("from common.config import Settings; from common.jobs.context import "
              "JobContext; from common.jobs.host import prune_safety_snapshots; "
              "print(len(prune_safety_snapshots(JobContext(Settings()))))")
    p = subprocess.run([sys.executable, "-c", expire], env=strict_env, cwd=REPO,
                       capture_output=True, text=True, timeout=120, check=True)
    assert p.stdout.strip() == "2", p.stderr  # the replace's and the rollback's
    assert _row(strict_env, safety_id) is None
    left = _snapshots(strict_env)
    assert row["snapshot_id"] not in left
    assert set(left) == {first["result"]["snapshot_id"], second["result"]["snapshot_id"]}


def test_a_failed_replace_of_a_repo_backup_rolls_back_from_the_repo_safety_snapshot(
        strict_env: dict[str, str], docker_host_a: Any, tmp_path: Path) -> None:
    marker = f"VOLKEEPER-PLAINTEXT-MARKER-{uuid.uuid4().hex}".encode()
    path = _app(docker_host_a, "rs-fail")
    first = _backup(strict_env, "rs-fail")
    packs = _target(strict_env) / "volkeeper" / "repo" / "packs"
    backup_packs = {p for p in packs.rglob("*") if p.is_file()}
    # the content the replace overwrites shares no data with the backup
    (path / "data" / "big.bin").write_bytes(os.urandom(2 << 20))
    (path / "secret.txt").write_bytes(marker * 64)
    os.mknod(path / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    replaced = _copy(path, tmp_path / "replaced")
    damaged = max(backup_packs, key=lambda p: p.stat().st_size)  # the backup's big.bin
    raw = bytearray(damaged.read_bytes())
    raw[len(raw) // 3] ^= 0x01
    damaged.write_bytes(bytes(raw))

    failed = json.loads(cli(strict_env, "restore", first["backup_id"], "--mode", "replace",
                            "--json", ok=False).stdout)
    assert failed["state"] == "failed"
    assert failed["result"]["replace_state"] == "rolled_back", failed["error"]
    assert "put back" in failed["error"]
    assert compare_trees(replaced, path) == []
    assert stat.S_ISCHR((path / "null").lstat().st_mode)
    assert _holding(strict_env, marker) == []
    row = _row(strict_env, failed["result"]["safety_backup_id"])
    assert row is not None and row["kind"] == "safety" and row["format"] == "repo"

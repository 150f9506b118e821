"""Damaged data through the product (embedded CLI, private dockerd): verify records what it
found damaged, the next backup stores those chunks again (its snapshot restores byte for
byte and verifies clean), and `volkeeper repair` rewrites the readable rest of the damaged
pack and removes it."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from common.repository.backup.archiver import iter_nodes
from common.repository.core import ids
from common.repository.core.snapshot import load_snapshot
from tests.integration.embedded.test_embedded import cli, volume
from tests.integration.repository.test_operations import _open
from tests.integration.repository.test_product import _mountpoint, _repo_dir, repo_env
from tests.treecmp import compare_trees

pytestmark = pytest.mark.integration
__all__ = ["repo_env"]


def _json(env: dict[str, str], *args: str, ok: bool = True) -> Any:
    return json.loads(cli(env, *args, "--json", ok=ok).stdout)


def test_verify_marks_damage_the_next_backup_stores_it_again_and_repair_removes_the_pack(
        repo_env: dict[str, str], docker_host_a: Any) -> None:
    src = volume(docker_host_a, "repair-vol")
    (src / "data.bin").write_bytes(os.urandom(3 << 20))
    (src / "gone.txt").write_bytes(os.urandom(2000))
    first = _json(repo_env, "backup", "repair-vol", "--format", "repo")
    assert first["state"] == "succeeded", first["error"]

    repo = _open(repo_env)
    snap = load_snapshot(repo, bytes.fromhex(first["result"]["snapshot_id"]))
    nodes = dict(iter_nodes(repo, snap.tree))
    index = repo.load_index().index
    flipped = {}
    for rel in ("data.bin", "gone.txt"):
        entry = index.lookup(nodes[rel].content[0])
        assert entry is not None
        pack = _repo_dir(repo_env) / ids.pack_key(entry.pack_id).removeprefix(ids.PREFIX)
        raw = bytearray(pack.read_bytes())
        raw[entry.offset + entry.length // 2] ^= 0x01
        pack.write_bytes(bytes(raw))
        flipped[rel] = entry

    bad = _json(repo_env, "verify", first["backup_id"], "--read-data", ok=False)
    assert bad["state"] == "failed"
    assert list((_repo_dir(repo_env) / "damaged").iterdir())  # recorded in the repository

    (src / "gone.txt").unlink()
    second = _json(repo_env, "backup", "repair-vol", "--format", "repo")
    assert second["state"] == "succeeded", second["error"]
    ok = _json(repo_env, "verify", second["backup_id"], "--read-data")
    assert ok["state"] == "succeeded" and ok["result"]["ok"] is True
    cli(repo_env, "restore", second["backup_id"], "--into", "repair-copy", "--json")
    assert compare_trees(src, _mountpoint(docker_host_a, "repair-copy")) == []
    # the old snapshot: data.bin reads the new healthy copy, gone.txt is still damaged
    old = _json(repo_env, "verify", first["backup_id"], "--read-data", ok=False)
    assert old["state"] == "failed"
    problems = " ".join(old["result"]["problems"])
    assert "gone.txt" in problems and "data.bin" not in problems

    dry = _json(repo_env, "repair", "local", "--dry-run")
    assert dry["state"] == "succeeded", dry["error"]
    done = _json(repo_env, "repair", "local")
    assert done["state"] == "succeeded", done["error"]
    report = done["result"]["report"]
    assert report["blobs_lost"] == [flipped["gone.txt"].blob_id.hex()]
    assert [b["paths"] for b in report["broken_snapshots"]] == [["/gone.txt"]]
    for entry in flipped.values():
        assert not (_repo_dir(repo_env) / ids.pack_key(entry.pack_id)
                    .removeprefix(ids.PREFIX)).exists()
    assert not list((_repo_dir(repo_env) / "damaged").iterdir())
    ok = _json(repo_env, "verify", second["backup_id"], "--read-data")
    assert ok["result"]["ok"] is True
    old = _json(repo_env, "verify", first["backup_id"], "--read-data", ok=False)
    assert "gone.txt" in " ".join(old["result"]["problems"])  # only what is truly lost
    assert "data.bin" not in " ".join(old["result"]["problems"])

    fixed = _json(repo_env, "repair", "local", "--forget-broken")
    assert fixed["state"] == "succeeded", fixed["error"]
    [listed] = [b for b in _json(repo_env, "backups")
                if b["id"] == first["backup_id"]]
    assert listed["snapshot_id"] != first["result"]["snapshot_id"]
    whole = _json(repo_env, "verify", first["backup_id"], "--read-data")
    assert whole["result"]["ok"] is True

    # a repair killed between rewriting the snapshot and updating the catalog leaves the
    # row naming the snapshot it replaced: adopting re-points that row, adds none
    db = sqlite3.connect(Path(repo_env["VOLKEEPER_HOME"]) / "volkeeper.db")
    with db:
        db.execute("UPDATE backups SET snapshot_id = ? WHERE id = ?",
                   (first["result"]["snapshot_id"], first["backup_id"]))
    db.close()
    rows = len(_json(repo_env, "backups"))
    healed = _json(repo_env, "snapshots", "local", "--adopt")["result"]
    assert healed["adopted"] == 1 and len(_json(repo_env, "backups")) == rows
    [again] = [b for b in _json(repo_env, "backups") if b["id"] == first["backup_id"]]
    assert again["snapshot_id"] == listed["snapshot_id"]
    assert _json(repo_env, "verify", first["backup_id"], "--read-data")["result"]["ok"]

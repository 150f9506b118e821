"""``volkeeper migrate-target FROM TO`` as a user runs it (embedded CLI, a private dockerd,
S3 through moto): a repository target's snapshots move local → S3 and an archive target's
objects move S3 → local; every copy is verified, restores byte for byte from the new
target, and (``--delete-source``) the originals are gone; a run after an interruption
skips what was copied; an unreachable destination fails naming it, nothing deleted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.util import free_port
from tests.integration.embedded.test_embedded import cli, volume
from tests.integration.repository.test_operations import _json, s3_env
from tests.integration.repository.test_product import _mountpoint, repo_env
from tests.treecmp import build_fidelity_tree, compare_trees

pytestmark = pytest.mark.integration
__all__ = ["repo_env", "s3_env"]


def _ids(env: dict[str, str], target: str, vol: str) -> list[str]:
    return sorted(b["id"] for b in _json(env, "backups", "--target", target)
                  if b["volume"] == vol)


def test_a_repository_targets_backups_move_to_s3_verified_and_restore_from_there(
        s3_env: dict[str, str], docker_host_a: Any, fresh_volume_name: str,
        s3_server: Any, s3_bucket: str) -> None:
    vol = fresh_volume_name
    src = volume(docker_host_a, vol)
    build_fidelity_tree(src)
    first = _json(s3_env, "backup", vol, "--format", "repo")
    (src / "later.txt").write_text("second version\n")
    second = _json(s3_env, "backup", vol, "--format", "repo")
    assert first["state"] == second["state"] == "succeeded"
    _json(s3_env, "pin", first["backup_id"])

    done = _json(s3_env, "migrate-target", "local", "bucket", "--volume", vol,
                 "--delete-source")
    assert done["state"] == "succeeded", done["error"]
    r = done["result"]
    assert (r["backups"], r["copied"], r["verified"]) == (2, 2, 2)
    assert (r["deleted"], r["kept_pinned"]) == (1, 1)  # the pinned one stays at the source
    assert _ids(s3_env, "local", vol) == [first["backup_id"]]
    moved = _ids(s3_env, "bucket", vol)
    assert len(moved) == 2
    keys = [o["Key"] for o in s3_server.client().list_objects_v2(
        Bucket=s3_bucket)["Contents"]]
    assert any(k.startswith("vk/volkeeper/repo/snapshots/") for k in keys)
    newest = next(i["copy_backup_id"] for i in r["items"]
                  if i["source_backup_id"] == second["backup_id"])
    restored = _json(s3_env, "restore", newest, "--into", f"{vol}-r")
    assert restored["state"] == "succeeded", restored["error"]
    assert compare_trees(src, _mountpoint(docker_host_a, f"{vol}-r")) == []
    # run again: the pinned original is there already at the destination, not copied twice
    again = _json(s3_env, "migrate-target", "local", "bucket", "--volume", vol)
    assert (again["result"]["copied"], again["result"]["already_there"]) == (0, 1)
    assert _ids(s3_env, "bucket", vol) == moved


def test_an_archive_targets_backups_move_from_s3_to_local_resuming_a_partial_run(
        s3_env: dict[str, str], docker_host_a: Any, fresh_volume_name: str,
        tmp_path: Path) -> None:
    vol = fresh_volume_name
    src = volume(docker_host_a, vol)
    (src / "a.bin").write_bytes(bytes(range(256)) * 400)
    (src / "sub").mkdir()
    (src / "sub" / "b.txt").write_text("archive data\n" * 50)
    old = _json(s3_env, "backup", vol, "--format", "tar.zst", "--target", "bucket")
    (src / "sub" / "b.txt").write_text("changed\n")
    new = _json(s3_env, "backup", vol, "--format", "tar.gz", "--target", "bucket")
    cli(s3_env, "targets", "add", "near", (tmp_path / "near").as_uri())
    # an earlier, interrupted run copied the first one already
    assert _json(s3_env, "copy", old["backup_id"], "--to", "near")["state"] == "succeeded"

    done = _json(s3_env, "migrate-target", "bucket", "near")
    assert done["state"] == "succeeded", done["error"]
    r = done["result"]
    assert (r["backups"], r["copied"], r["already_there"], r["verified"], r["deleted"]) \
        == (2, 1, 1, 2, 0)
    assert len(_ids(s3_env, "bucket", vol)) == 2  # without --delete-source: kept
    newest = next(i["copy_backup_id"] for i in r["items"]
                  if i["source_backup_id"] == new["backup_id"])
    restored = _json(s3_env, "restore", newest, "--into", f"{vol}-r")
    assert restored["state"] == "succeeded", restored["error"]
    assert compare_trees(src, _mountpoint(docker_host_a, f"{vol}-r")) == []


def test_an_unreachable_destination_fails_naming_it_and_nothing_is_deleted(
        repo_env: dict[str, str], docker_host_a: Any, fresh_volume_name: str) -> None:
    vol = fresh_volume_name
    (volume(docker_host_a, vol) / "a.txt").write_text("data")
    bid = _json(repo_env, "backup", vol, "--format", "repo")["backup_id"]
    env = repo_env | {"VOLKEEPER_STORAGE_RETRIES": "1",
                      "VOLKEEPER_S3_ACCESS_KEY_ID": "x", "VOLKEEPER_S3_SECRET_ACCESS_KEY": "y"}
    cli(env, "targets", "add", "dead", "s3://nowhere/vk", "--endpoint-url",
        f"http://127.0.0.1:{free_port()}", "--path-style", "--region", "us-east-1")
    p = cli(env, "migrate-target", "local", "dead", "--delete-source", ok=False)
    assert p.returncode == 1 and "'dead'" in p.stderr and "Traceback" not in p.stderr
    assert bid in _ids(env, "local", vol) and _ids(env, "dead", vol) == []
    bad = cli(env, "migrate-target", "local", "local", ok=False)
    assert bad.returncode == 1 and "two different targets" in bad.stderr
    bad = cli(env, "migrate-target", "local", "dead", "--volume", "ghost", ok=False)
    assert bad.returncode == 1 and "'ghost'" in bad.stderr

"""Operations on stored backups and repositories through the product, as a user on one
machine: the embedded CLI against a private dockerd, the default target under
VOLKEEPER_HOME, S3 through moto. Tags and pins (reaching the repository snapshot), forget,
prune beside a backup's lock, copy local → S3 → local with restores of the copies,
stats, the repository's own snapshot listing, keys, unlock and a target's key file."""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from common.config import Settings
from common.engine.repo import open_repo
from common.repository import Repository
from common.repository.core.locks import acquire_lock, backup_lock
from common.repository.core.snapshot import load_snapshot, snapshot_ids
from common.storage.local import LocalBackend
from tests.fixtures.util import free_port
from tests.integration.embedded.test_embedded import cli, volume
from tests.integration.repository.test_product import _files, _mountpoint, _repo_dir, repo_env
from tests.treecmp import build_fidelity_tree, compare_trees

pytestmark = pytest.mark.integration
__all__ = ["repo_env"]  # the fixture, re-used from the repository product tests
PASSWORD = "correct horse battery staple"


def _open(env: dict[str, str], root: Path | None = None, password: str = PASSWORD
          ) -> Repository:
    root = root or Path(env["VOLKEEPER_HOME"]) / "backups"
    settings = Settings(home=Path(env["VOLKEEPER_HOME"]), repository_kdf_n=2**14,
                        repository_password=SecretStr(password))
    return open_repo(LocalBackend(root), settings)


def _json(env: dict[str, str], *args: str, ok: bool = True) -> Any:
    return json.loads(cli(env, *args, "--json", ok=ok).stdout)


def _flat(text: str) -> str:
    """CLI output with rich's line wrapping undone."""
    return " ".join(text.split())


def _backup(env: dict[str, str], vol: str, *extra: str) -> str:
    job = _json(env, "backup", vol, "--format", "repo", *extra)
    assert job["state"] == "succeeded", job["error"]
    return str(job["backup_id"])


def test_tags_and_pins_reach_the_snapshot_and_a_pinned_backup_cannot_be_forgotten(
        repo_env: dict[str, str], docker_host_a: Any) -> None:
    src = volume(docker_host_a, "ops-tags")
    (src / "a.txt").write_text("version 1")
    bid = _backup(repo_env, "ops-tags")
    _backup(repo_env, "ops-tags")
    out = _json(repo_env, "tag", bid, "--add", "before-upgrade", "--add", "weekly")
    assert out["job"]["state"] == "succeeded", out["job"]["error"]
    _json(repo_env, "tag", bid, "--remove", "weekly")
    _json(repo_env, "pin", bid)
    [listed] = _json(repo_env, "backups", "--tag", "before-upgrade")
    assert listed["id"] == bid and listed["pinned"] is True
    assert listed["tags"] == ["before-upgrade"]
    sid = bytes.fromhex(listed["snapshot_id"])
    snap = load_snapshot(_open(repo_env), sid)  # the repository alone knows it
    assert snap.pinned is True
    assert "before-upgrade" in snap.tags and "weekly" not in snap.tags
    assert any(t.startswith("job:") for t in snap.tags)  # volkeeper's own tag is kept

    p = cli(repo_env, "forget", bid, ok=False)
    assert p.returncode == 1 and "pinned" in p.stderr
    assert f"volkeeper unpin {bid}" in _flat(p.stderr)
    assert sid in snapshot_ids(_open(repo_env))

    # the repository's listing, without the catalog: the snapshot, its tags, its backup id
    listing = _json(repo_env, "snapshots", "local")["result"]
    mine = [s for s in listing["snapshots"] if s["id"] == sid.hex()]
    assert mine and mine[0]["pinned"] and mine[0]["tags"] == ["before-upgrade"]
    assert mine[0]["backup_id"] == bid and listing["unknown_to_catalog"] == 0

    _json(repo_env, "unpin", bid)
    assert load_snapshot(_open(repo_env), sid).pinned is False
    done = _json(repo_env, "forget", bid)
    assert done["state"] == "succeeded"
    assert sid not in snapshot_ids(_open(repo_env))
    assert bid not in {b["id"] for b in _json(repo_env, "backups")}
    assert len(_json(repo_env, "backups")) == 1


def test_forgetting_an_archive_deletes_both_objects_and_then_the_catalog_row(
        embedded_env: dict[str, str], docker_host_a: Any) -> None:
    src = volume(docker_host_a, "ops-archive")
    (src / "a.txt").write_text("data")
    job = _json(embedded_env, "backup", "ops-archive", "--format", "tar.gz")
    keep = _json(embedded_env, "backup", "ops-archive", "--format", "tar.gz")
    root = Path(embedded_env["VOLKEEPER_HOME"]) / "backups"
    archive = root / job["result"]["key"]
    assert archive.is_file() and (root / job["result"]["manifest_key"]).is_file()
    _json(embedded_env, "tag", job["backup_id"], "--add", "old")
    assert _json(embedded_env, "backups", "--tag", "old")[0]["id"] == job["backup_id"]
    done = _json(embedded_env, "forget", job["backup_id"])
    assert done["state"] == "succeeded"
    assert not archive.exists() and not (root / job["result"]["manifest_key"]).exists()
    assert [b["id"] for b in _json(embedded_env, "backups")] == [keep["backup_id"]]
    assert (root / keep["result"]["key"]).is_file()


def test_prune_is_refused_beside_a_backups_lock_then_reclaims_only_unreferenced_data(
        repo_env: dict[str, str], docker_host_a: Any) -> None:
    src = volume(docker_host_a, "ops-prune")
    (src / "old.bin").write_bytes(os.urandom(3 << 20))
    (src / "kept.bin").write_bytes(os.urandom(1 << 20))
    old = _backup(repo_env, "ops-prune")
    (src / "old.bin").unlink()
    new = _backup(repo_env, "ops-prune")
    assert _json(repo_env, "forget", old)["state"] == "succeeded"

    repo = _open(repo_env)
    with backup_lock(repo, "backup job 42 of laptop/other", refresh_every=0):
        before = _files(_repo_dir(repo_env))
        p = cli(repo_env, "prune", "local", ok=False)
        assert p.returncode == 1 and "Traceback" not in p.stderr
        assert "backup job 42" in _flat(p.stderr)  # names who holds the lock
        assert {k: v for k, v in _files(_repo_dir(repo_env)).items()
                if not k.startswith("locks/")} == \
            {k: v for k, v in before.items() if not k.startswith("locks/")}

    dry = _json(repo_env, "prune", "local", "--dry-run")
    assert dry["state"] == "succeeded" and dry["result"]["dry_run"] is True
    packs_before = _size(_repo_dir(repo_env) / "packs")
    done = _json(repo_env, "prune", "local")
    assert done["state"] == "succeeded", done["error"]
    assert _size(_repo_dir(repo_env) / "packs") < packs_before - (2 << 20)
    cli(repo_env, "restore", new, "--into", "ops-prune-copy", "--json")
    assert compare_trees(src, _mountpoint(docker_host_a, "ops-prune-copy")) == []
    stats = _json(repo_env, "stats", "local")["result"]["stats"]
    assert stats  # a report; its fields are the library's RepoStats


def _size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


@pytest.fixture
def s3_env(repo_env: dict[str, str], s3_server: Any, s3_bucket: str) -> Iterator[
        dict[str, str]]:
    env = repo_env | {"VOLKEEPER_S3_ACCESS_KEY_ID": s3_server.access_key_id,
                      "VOLKEEPER_S3_SECRET_ACCESS_KEY": s3_server.secret_access_key}
    cli(env, "targets", "add", "bucket", f"s3://{s3_bucket}/vk", "--endpoint-url",
        s3_server.endpoint_url, "--path-style", "--region", s3_server.region)
    yield env


def test_a_repo_backup_copies_local_to_s3_and_back_and_each_copy_restores(
        s3_env: dict[str, str], docker_host_a: Any, tmp_path: Path, s3_server: Any,
        s3_bucket: str) -> None:
    src = volume(docker_host_a, "ops-copy")
    build_fidelity_tree(src)
    bid = _backup(s3_env, "ops-copy")
    _json(s3_env, "tag", bid, "--add", "golden")
    to_s3 = _json(s3_env, "copy", bid, "--to", "bucket")
    assert to_s3["state"] == "succeeded", to_s3["error"]
    in_s3 = to_s3["result"]["copy_backup_id"]
    keys = [o["Key"] for o in s3_server.client().list_objects_v2(
        Bucket=s3_bucket)["Contents"]]
    assert any(k.startswith("vk/volkeeper/repo/snapshots/") for k in keys)
    [row] = _json(s3_env, "backups", "--target", "bucket")
    assert row["id"] == in_s3 and row["tags"] == ["golden"] and row["volume"] == "ops-copy"

    cli(s3_env, "targets", "add", "far", (tmp_path / "far").as_uri())
    back = _json(s3_env, "copy", in_s3, "--to", "far")
    assert back["state"] == "succeeded", back["error"]
    for i, copy_id in enumerate((in_s3, back["result"]["copy_backup_id"])):
        into = f"ops-copy-r{i}"
        done = _json(s3_env, "restore", copy_id, "--into", into)
        assert done["state"] == "succeeded", done["error"]
        assert compare_trees(src, _mountpoint(docker_host_a, into)) == []


def test_an_archive_copies_to_s3_and_restores_from_there(
        s3_env: dict[str, str], docker_host_a: Any) -> None:
    src = volume(docker_host_a, "ops-copy-tar")
    build_fidelity_tree(src)
    job = _json(s3_env, "backup", "ops-copy-tar", "--format", "tar.zst")
    done = _json(s3_env, "copy", job["backup_id"], "--to", "bucket")
    assert done["state"] == "succeeded", done["error"]
    restored = _json(s3_env, "restore", done["result"]["copy_backup_id"], "--into",
                     "ops-copy-tar-r")
    assert restored["state"] == "succeeded", restored["error"]
    assert compare_trees(src, _mountpoint(docker_host_a, "ops-copy-tar-r")) == []
    again = _json(s3_env, "copy", job["backup_id"], "--to", "bucket")  # idempotent
    assert again["state"] == "succeeded", again["error"]
    assert again["result"]["already_there"] is True
    assert again["result"]["copy_backup_id"] == done["result"]["copy_backup_id"]


def test_a_copy_to_an_unreachable_target_fails_naming_it_and_adds_nothing(
        repo_env: dict[str, str], docker_host_a: Any) -> None:
    src = volume(docker_host_a, "ops-copy-dead")
    (src / "a.txt").write_text("data")
    bid = _backup(repo_env, "ops-copy-dead")
    secret = "dead-target-secret-key"
    env = repo_env | {"VOLKEEPER_STORAGE_RETRIES": "1",
                      "VOLKEEPER_S3_ACCESS_KEY_ID": "x", "VOLKEEPER_S3_SECRET_ACCESS_KEY": secret}
    cli(env, "targets", "add", "dead", "s3://nowhere/vk", "--endpoint-url",
        f"http://127.0.0.1:{free_port()}", "--path-style", "--region", "us-east-1")
    p = cli(env, "copy", bid, "--to", "dead", ok=False)
    assert p.returncode == 1 and "'dead'" in p.stderr and "Traceback" not in p.stderr
    assert secret not in p.stderr + p.stdout
    assert [b["id"] for b in _json(env, "backups", "--target", "dead")] == []


def test_a_targets_key_file_opens_its_repository_and_a_wrong_one_fails_clearly(
        embedded_env: dict[str, str], docker_host_a: Any, tmp_path: Path) -> None:
    env = embedded_env | {"VOLKEEPER_REPOSITORY_KDF_N": "16384"}  # no password variable
    keyfile = tmp_path / "vault.key"
    keyfile.write_text("from the key file\n")
    vault = tmp_path / "vault"
    cli(env, "targets", "add", "vault", vault.as_uri(), "--password-file", str(keyfile))
    src = volume(docker_host_a, "ops-keyfile")
    (src / "a.txt").write_text("secret")
    bid = _backup(env, "ops-keyfile", "--target", "vault")
    repo = _open(env, vault, password="from the key file")
    assert repo.config.encrypted
    before = _files(vault / "volkeeper" / "repo")

    keyfile.write_text("not the passphrase\n")
    p = cli(env, "backup", "ops-keyfile", "--format", "repo", "--target", "vault", ok=False)
    assert p.returncode == 1 and "wrong passphrase" in p.stderr
    assert str(keyfile) in p.stderr.replace("\n", "")
    assert "not the passphrase" not in p.stderr + p.stdout and "Traceback" not in p.stderr
    keyfile.unlink()
    p = cli(env, "restore", bid, "--into", "ops-keyfile-r", ok=False)
    assert p.returncode == 1 and "cannot read the repository key file" in _flat(p.stderr)
    assert _files(vault / "volkeeper" / "repo") == before
    assert "ops-keyfile-r" not in {v.name for v in docker_host_a.client().volumes.list()}


def test_keys_are_added_listed_and_removed_but_never_the_one_in_use(
        repo_env: dict[str, str], docker_host_a: Any, tmp_path: Path) -> None:
    src = volume(docker_host_a, "ops-keys")
    (src / "a.txt").write_text("data")
    bid = _backup(repo_env, "ops-keys")
    newpw = tmp_path / "new.key"
    newpw.write_text("second passphrase\n")
    added = _json(repo_env, "key", "add", "local", "--new-password-file", str(newpw))
    assert added["state"] == "succeeded", added["error"]
    assert "second passphrase" not in json.dumps(added)
    keys = _json(repo_env, "key", "list", "local")["result"]["keys"]
    assert len(keys) == 2 and sum(k["in_use"] for k in keys) == 1
    current = next(k["id"] for k in keys if k["in_use"])
    p = cli(repo_env, "key", "remove", "local", current[:8], ok=False)
    assert p.returncode == 1 and "configure another passphrase" in _flat(p.stderr)

    # the workers switch to the new passphrase; then the old key can go
    env2 = repo_env | {"VOLKEEPER_REPOSITORY_PASSWORD": "second passphrase"}
    removed = _json(env2, "key", "remove", "local", current[:8])
    assert removed["state"] == "succeeded" and removed["result"]["removed"] == current
    p = cli(repo_env, "restore", bid, "--into", "ops-keys-r", ok=False)
    assert p.returncode == 1 and "wrong passphrase" in p.stderr
    done = _json(env2, "restore", bid, "--into", "ops-keys-r")
    assert done["state"] == "succeeded"
    assert (_mountpoint(docker_host_a, "ops-keys-r") / "a.txt").read_text() == "data"


def test_unlock_removes_a_dead_workers_stale_lock_but_not_a_live_one(
        repo_env: dict[str, str], docker_host_a: Any) -> None:
    src = volume(docker_host_a, "ops-unlock")
    (src / "a.txt").write_text("data")
    _backup(repo_env, "ops-unlock")
    repo = _open(repo_env)
    acquire_lock(repo, exclusive=True, owner="prune job of a dead worker",
                 refresh_every=0, clock=lambda: time.time() - 7200)  # never released
    with backup_lock(repo, "a live backup", refresh_every=0):
        done = _json(repo_env, "unlock", "local")
        assert done["state"] == "succeeded", done["error"]
        assert done["result"]["removed"] == 1
        assert [lk["owner"] for lk in done["result"]["remaining"]] == ["a live backup"]
    assert list((_repo_dir(repo_env) / "locks").iterdir()) == []


def test_after_losing_the_database_the_repository_lists_and_adopts_its_snapshots(
        repo_env: dict[str, str], docker_host_a: Any) -> None:
    src = volume(docker_host_a, "ops-dr")
    build_fidelity_tree(src)
    bid = _backup(repo_env, "ops-dr")
    _json(repo_env, "tag", bid, "--add", "monthly")
    _json(repo_env, "pin", bid)
    # a replace keeps the volume's previous content as a safety snapshot in the repository
    replaced = _json(repo_env, "restore", bid, "--mode", "replace")
    assert replaced["state"] == "succeeded", replaced["error"]
    for f in Path(repo_env["VOLKEEPER_HOME"]).glob("volkeeper.db*"):
        f.unlink()  # the catalog is gone; the repository is all that is left
    assert _json(repo_env, "backups") == []
    listed = _json(repo_env, "snapshots", "local")["result"]
    assert listed["unknown_to_catalog"] == 2
    [snap] = [x for x in listed["snapshots"] if x["kind"] == "backup"]
    assert snap["volume"] == "ops-dr" and snap["host"] == "laptop" and snap["backup_id"] is None
    assert snap["tags"] == ["monthly"] and snap["pinned"] is True
    assert [x["kind"] for x in listed["snapshots"]].count("safety") == 1

    adopted = _json(repo_env, "snapshots", "local", "--adopt")["result"]
    assert adopted["adopted"] == 2
    [row] = _json(repo_env, "backups")  # the safety snapshot is not a regular backup
    assert row["snapshot_id"] == snap["id"] and row["tags"] == ["monthly"] and row["pinned"]
    assert row["file_count"] == snap["files"] > 0
    assert _json(repo_env, "snapshots", "local", "--adopt")["result"]["adopted"] == 0
    done = _json(repo_env, "restore", row["id"], "--into", "ops-dr-back")
    assert done["state"] == "succeeded", done["error"]
    assert compare_trees(src, _mountpoint(docker_host_a, "ops-dr-back")) == []


def test_one_shot_commands_share_a_private_key_cache_that_needs_the_passphrase(
        repo_env: dict[str, str], docker_host_a: Any) -> None:
    """The embedded CLI keeps the derived key of the repository's key file between
    commands (``<home>/keys.cache``, 0600): it holds neither passphrase nor key in the clear,
    a wrong passphrase still fails, and ``VOLKEEPER_KEY_CACHE_TTL=0`` writes none."""
    src = volume(docker_host_a, "ops-cache")
    (src / "a.txt").write_text("cached")
    bid = _backup(repo_env, "ops-cache")
    cache = Path(repo_env["VOLKEEPER_HOME"]) / "keys.cache"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    raw = cache.read_text()
    assert repo_env["VOLKEEPER_REPOSITORY_PASSWORD"] not in raw
    assert len(json.loads(raw)) == 1

    wrong = repo_env | {"VOLKEEPER_REPOSITORY_PASSWORD": "not the passphrase at all"}
    p = cli(wrong, "restore", bid, "--into", "ops-cache-r", ok=False)
    assert p.returncode == 1 and "wrong passphrase" in p.stderr
    done = _json(repo_env, "restore", bid, "--into", "ops-cache-r")
    assert done["state"] == "succeeded"
    assert (_mountpoint(docker_host_a, "ops-cache-r") / "a.txt").read_text() == "cached"

    cache.unlink()
    _backup(repo_env | {"VOLKEEPER_KEY_CACHE_TTL": "0"}, "ops-cache")
    assert not cache.exists()

"""The native repository through the product (`--format repo`), as a user on one machine:
embedded CLI against a private dockerd, the repository created in the default target under
VOLKEEPER_HOME on the first repo backup, then restore, incremental re-backup, verify, and
the passphrase errors."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from tests.integration.embedded.test_embedded import cli, volume
from tests.treecmp import build_fidelity_tree, compare_trees

pytestmark = pytest.mark.integration


@pytest.fixture
def repo_env(embedded_env: dict[str, str]) -> dict[str, str]:
    # a cheap scrypt cost keeps every open fast; production uses N=2**17
    return embedded_env | {"VOLKEEPER_REPOSITORY_PASSWORD": "correct horse battery staple",
                           "VOLKEEPER_REPOSITORY_KDF_N": "16384"}


def _repo_dir(env: dict[str, str]) -> Path:
    return Path(env["VOLKEEPER_HOME"]) / "backups" / "volkeeper" / "repo"


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _mountpoint(docker_host: Any, name: str) -> Path:
    return Path(docker_host.client().volumes.get(name).attrs["Mountpoint"])


def test_a_repo_backup_restores_and_an_unchanged_volume_stores_almost_nothing_new(
        repo_env: dict[str, str], docker_host_a: Any) -> None:
    src = volume(docker_host_a, "repo-app")
    build_fidelity_tree(src)
    first = json.loads(cli(repo_env, "backup", "repo-app", "--format", "repo",
                           "--json").stdout)
    assert first["state"] == "succeeded"
    assert first["result"]["format"] == "repo"
    assert first["result"]["stored_bytes"] > 3 << 20  # big.bin is random: stored once
    assert (_repo_dir(repo_env) / "config").is_file()
    [listed] = json.loads(cli(repo_env, "backups", "--json").stdout)
    assert listed["id"] == first["backup_id"] and listed["format"] == "repo"
    assert listed["key"].startswith("volkeeper/repo/snapshots/")

    cli(repo_env, "restore", first["backup_id"], "--into", "repo-copy", "--json")
    assert compare_trees(src, _mountpoint(docker_host_a, "repo-copy")) == []

    second = json.loads(cli(repo_env, "backup", "repo-app", "--format", "repo",
                            "--json").stdout)
    assert second["state"] == "succeeded"
    assert second["result"]["key"] != first["result"]["key"]
    assert second["result"]["stored_bytes"] < 64 * 1024  # at most new tree blobs
    assert second["result"]["file_count"] == first["result"]["file_count"]
    cli(repo_env, "restore", second["backup_id"], "--into", "repo-copy2", "--json")
    assert compare_trees(src, _mountpoint(docker_host_a, "repo-copy2")) == []


def test_a_repo_restore_refuses_a_non_empty_volume(
        repo_env: dict[str, str], docker_host_a: Any) -> None:
    src = volume(docker_host_a, "repo-busy")
    (src / "data.txt").write_text("precious")
    job = json.loads(cli(repo_env, "backup", "repo-busy", "--format", "repo",
                         "--json").stdout)
    p = cli(repo_env, "restore", job["backup_id"], ok=False)
    assert p.returncode == 1 and "not empty" in p.stderr and "Traceback" not in p.stderr
    assert (src / "data.txt").read_text() == "precious"


def test_selected_paths_of_a_repo_backup_restore_only_those_paths(
        repo_env: dict[str, str], docker_host_a: Any) -> None:
    src = volume(docker_host_a, "repo-paths")
    build_fidelity_tree(src)
    job = json.loads(cli(repo_env, "backup", "repo-paths", "--format", "repo",
                         "--json").stdout)
    done = json.loads(cli(repo_env, "restore", job["backup_id"], "--into", "repo-paths-sel",
                          "--path", "sticky", "--path", "/plain.txt", "--json").stdout)
    assert done["state"] == "succeeded", done["error"]
    dst = _mountpoint(docker_host_a, "repo-paths-sel")
    assert sorted(p.name for p in dst.iterdir()) == ["plain.txt", "sticky"]
    assert (dst / "plain.txt").read_bytes() == (src / "plain.txt").read_bytes()
    missing = cli(repo_env, "restore", job["backup_id"], "--into", "repo-paths-x",
                  "--path", "no/such/dir", ok=False)
    assert missing.returncode == 1 and "no/such/dir" in missing.stderr
    assert "repo-paths-x" not in {v.name for v in docker_host_a.client().volumes.list()}


def test_verify_passes_then_names_the_pack_holding_a_flipped_byte(
        repo_env: dict[str, str], docker_host_a: Any) -> None:
    src = volume(docker_host_a, "repo-verify")
    (src / "data.bin").write_bytes(os.urandom(2 << 20))
    job = json.loads(cli(repo_env, "backup", "repo-verify", "--format", "repo",
                         "--json").stdout)
    ok = json.loads(cli(repo_env, "verify", job["backup_id"], "--read-data",
                        "--json").stdout)
    assert ok["state"] == "succeeded" and ok["result"]["ok"] is True
    assert ok["result"]["scope"] == "read-data" and ok["result"]["entries_checked"] > 0
    assert ok["result"]["packs_read"] == ok["result"]["packs_referenced"] == 2

    packs = sorted((_repo_dir(repo_env) / "packs").rglob("*"), key=lambda p: p.stat().st_size)
    victim = [p for p in packs if p.is_file()][-1]  # the data pack
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    victim.write_bytes(bytes(raw))
    # the pack's header and size are intact: the structure check cannot see inside blobs
    structure = json.loads(cli(repo_env, "verify", job["backup_id"], "--json").stdout)
    assert structure["result"]["ok"] is True and structure["result"]["scope"] == "structure"
    assert structure["result"]["packs_read"] == 0
    p = cli(repo_env, "verify", job["backup_id"], "--read-data", ok=False)
    assert p.returncode == 1 and "damaged" in p.stderr and "Traceback" not in p.stderr
    bad = json.loads(cli(repo_env, "verify", job["backup_id"], "--read-data", "--json",
                         ok=False).stdout)
    assert bad["state"] == "failed"
    pack_key = f"volkeeper/repo/packs/{victim.parent.name}/{victim.name}"
    assert pack_key in bad["result"]["damaged_objects"]
    assert "data.bin" in " ".join(bad["result"]["problems"])
    [listed] = json.loads(cli(repo_env, "backups", "--json").stdout)
    assert listed["verify_status"] == "damaged"

    # restore names the file it cannot restore and leaves no half-written volume behind
    p = cli(repo_env, "restore", job["backup_id"], "--into", "repo-verify-copy", ok=False)
    assert p.returncode == 1 and "data.bin" in p.stderr and "Traceback" not in p.stderr
    assert "repo-verify-copy" not in {v.name for v in docker_host_a.client().volumes.list()}


def test_a_wrong_passphrase_fails_the_backup_clearly_and_writes_nothing(
        repo_env: dict[str, str], docker_host_a: Any) -> None:
    src = volume(docker_host_a, "repo-pass")
    (src / "a.txt").write_text("secret data")
    cli(repo_env, "backup", "repo-pass", "--format", "repo", "--json")
    before = _files(_repo_dir(repo_env))
    (src / "b.txt").write_text("more data")
    wrong = repo_env | {"VOLKEEPER_REPOSITORY_PASSWORD": "not the passphrase"}
    p = cli(wrong, "backup", "repo-pass", "--format", "repo", ok=False)
    assert p.returncode == 1 and "wrong passphrase" in p.stderr
    assert "not the passphrase" not in p.stderr + p.stdout
    assert "Traceback" not in p.stderr
    assert _files(_repo_dir(repo_env)) == before
    assert len(json.loads(cli(repo_env, "backups", "--json").stdout)) == 1


def test_embedded_without_a_passphrase_generates_one_and_says_where_it_is(
        embedded_env: dict[str, str], docker_host_a: Any) -> None:
    src = volume(docker_host_a, "repo-nopass")
    (src / "a.txt").write_text("data")
    p = cli(embedded_env, "backup", "repo-nopass", "--format", "repo", "--json")
    key_file = Path(embedded_env["VOLKEEPER_HOME"]) / "repository.password"
    assert str(key_file) in p.stderr and "keep a copy" in p.stderr
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    config = json.loads((_repo_dir(embedded_env) / "config").read_text())
    assert config["encryption"] != "none"
    job = json.loads(p.stdout)
    cli(embedded_env, "restore", job["backup_id"], "--into", "repo-nopass-copy", "--json")
    assert (_mountpoint(docker_host_a, "repo-nopass-copy") / "a.txt").read_text() == "data"
    key_file.rename(key_file.with_suffix(".lost"))  # without it, nothing opens (and says why)
    p = cli(embedded_env, "restore", job["backup_id"], "--into", "repo-nopass-2", ok=False)
    assert p.returncode == 1 and "VOLKEEPER_REPOSITORY_PASSWORD" in p.stderr


def test_an_unencrypted_repository_is_created_only_when_asked_for(
        embedded_env: dict[str, str], docker_host_a: Any) -> None:
    src = volume(docker_host_a, "repo-clear")
    build_fidelity_tree(src)
    env = embedded_env | {"VOLKEEPER_REPOSITORY_UNENCRYPTED": "true"}
    job = json.loads(cli(env, "backup", "repo-clear", "--format", "repo", "--json").stdout)
    config = json.loads((_repo_dir(env) / "config").read_text())
    assert config["encryption"] == "none"
    cli(env, "restore", job["backup_id"], "--into", "repo-clear-copy", "--json")
    assert compare_trees(src, _mountpoint(docker_host_a, "repo-clear-copy")) == []


def test_concurrent_first_opens_of_a_target_share_one_repository(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from pydantic import SecretStr

    from common.config import Settings
    from common.engine.repo import open_repo
    from common.storage.local import LocalBackend

    settings = Settings(home=tmp_path, repository_password=SecretStr("pw long enough"),
                        repository_kdf_n=2**14)
    with ThreadPoolExecutor(4) as pool:
        repos = list(pool.map(lambda _: open_repo(LocalBackend(tmp_path / "t"), settings,
                                                  create=True), range(4)))
    assert len({r.config.repository_id for r in repos}) == 1
    assert len({r.key.enc_key for r in repos}) == 1
    assert len(list((tmp_path / "t" / "volkeeper" / "repo" / "keys").iterdir())) == 1


def test_opening_without_create_does_not_make_a_repository(tmp_path: Path) -> None:
    from pydantic import SecretStr

    from common.config import Settings
    from common.engine.repo import open_repo
    from common.errors import NotFound
    from common.storage.local import LocalBackend

    settings = Settings(home=tmp_path, repository_password=SecretStr("pw long enough"),
                        repository_kdf_n=2**14)
    with pytest.raises(NotFound, match="repository"):
        open_repo(LocalBackend(tmp_path / "t"), settings)
    assert not (tmp_path / "t").exists() or not any((tmp_path / "t").rglob("*"))


# --- volumes reachable only through the Docker API (VOLKEEPER_VOLUME_ACCESS=docker-api) ---

def _api(env: dict[str, str]) -> dict[str, str]:
    return env | {"VOLKEEPER_VOLUME_ACCESS": "docker-api"}


def _snapshot_nodes(env: dict[str, str], job: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The snapshot a backup job wrote, and its nodes by path."""
    from common.repository import open_repository
    from common.repository.backup.archiver import iter_nodes
    from common.repository.core.snapshot import load_snapshot
    from common.storage.local import LocalBackend

    repo = open_repository(LocalBackend(Path(env["VOLKEEPER_HOME"]) / "backups"),
                           env["VOLKEEPER_REPOSITORY_PASSWORD"])
    snap = load_snapshot(repo, bytes.fromhex(job["result"]["snapshot_id"]))
    return snap, dict(iter_nodes(repo, snap.tree))


def test_a_repo_backup_through_the_docker_api_restores_what_that_path_promises(
        repo_env: dict[str, str], docker_host_a: Any) -> None:
    src = volume(docker_host_a, "repo-api")
    build_fidelity_tree(src)
    env = _api(repo_env)
    job = json.loads(cli(env, "backup", "repo-api", "--format", "repo", "--json").stdout)
    assert job["state"] == "succeeded", job["error"]
    assert job["result"]["format"] == "repo"
    _, nodes = _snapshot_nodes(env, job)  # written from the stream: no inode, whole seconds
    assert nodes["plain.txt"].inode == 0 and nodes["plain.txt"].mtime_ns % 10**9 == 0
    assert (nodes["sticky/hardlink"].type, nodes["sticky/hardlink"].link) == \
        ("hardlink", "plain.txt")
    done = json.loads(cli(env, "restore", job["backup_id"], "--into", "repo-api-copy",
                          "--json").stdout)
    assert done["state"] == "succeeded", done["error"]
    # the archive API's limits: whole-second mtimes, no user.* xattrs, holes come back
    # allocated — everything else (bytes, modes, owners, links, devices, names) is kept
    diffs = compare_trees(src, _mountpoint(docker_host_a, "repo-api-copy"),
                          mtime_tolerance_ns=999_999_999, xattr_prefixes=())
    assert [d for d in diffs if "sparse.img': sparse file was restored dense" not in d] == []

    # selected paths work through the API too (the stream holds only them)
    sel = json.loads(cli(env, "restore", job["backup_id"], "--into", "repo-api-sel",
                         "--path", "sticky", "--path", "/plain.txt", "--json").stdout)
    assert sel["state"] == "succeeded", sel["error"]
    dst = _mountpoint(docker_host_a, "repo-api-sel")
    assert sorted(p.name for p in dst.iterdir()) == ["plain.txt", "sticky"]
    assert (dst / "sticky" / "hardlink").stat().st_ino == (dst / "plain.txt").stat().st_ino
    assert compare_trees(src / "sticky", dst / "sticky", mtime_tolerance_ns=999_999_999,
                         xattr_prefixes=()) == []


def test_direct_and_docker_api_backups_of_the_same_content_share_their_data(
        repo_env: dict[str, str], docker_host_a: Any) -> None:
    src = volume(docker_host_a, "repo-dedup")
    (src / "big.bin").write_bytes(os.urandom(6 << 20))
    (src / "docs").mkdir()
    for i in range(30):
        (src / "docs" / f"note{i}.txt").write_bytes(os.urandom(1000 + 97 * i))
    direct = json.loads(cli(repo_env, "backup", "repo-dedup", "--format", "repo",
                            "--json").stdout)
    api = json.loads(cli(_api(repo_env), "backup", "repo-dedup", "--format", "repo",
                         "--json").stdout)
    assert direct["state"] == api["state"] == "succeeded"
    assert direct["result"]["stored_bytes"] > 6 << 20
    assert api["result"]["stored_bytes"] < 16 * 1024  # only its two tree blobs are new
    assert api["result"]["logical_bytes"] == direct["result"]["logical_bytes"]
    assert api["result"]["file_count"] == direct["result"]["file_count"] == 31
    snap, nodes = _snapshot_nodes(repo_env, api)
    assert snap.stats.files_read == 31 and nodes["big.bin"].inode == 0  # read from the stream
    _, direct_nodes = _snapshot_nodes(repo_env, direct)
    assert {p: n.content for p, n in nodes.items()} == \
        {p: n.content for p, n in direct_nodes.items()}
    # and the other way round: a direct re-backup after the API one stores no data either
    again = json.loads(cli(repo_env, "backup", "repo-dedup", "--format", "repo",
                           "--json").stdout)
    assert again["result"]["stored_bytes"] < 16 * 1024


def test_a_damaged_blob_fails_a_docker_api_restore_naming_the_file(
        repo_env: dict[str, str], docker_host_a: Any) -> None:
    src = volume(docker_host_a, "repo-api-bad")
    (src / "data.bin").write_bytes(os.urandom(2 << 20))
    (src / "fine.txt").write_text("fine")
    env = _api(repo_env)
    job = json.loads(cli(env, "backup", "repo-api-bad", "--format", "repo", "--json").stdout)
    packs = sorted((_repo_dir(env) / "packs").rglob("*"), key=lambda p: p.stat().st_size)
    victim = [p for p in packs if p.is_file()][-1]  # the data pack
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    victim.write_bytes(bytes(raw))
    p = cli(env, "restore", job["backup_id"], "--into", "repo-api-bad-copy", ok=False)
    assert p.returncode == 1 and "data.bin" in p.stderr and "Traceback" not in p.stderr
    assert "repo-api-bad-copy" not in {v.name for v in docker_host_a.client().volumes.list()}
    # an existing empty volume cannot be emptied again through the API: the error says so
    docker_host_a.client().volumes.create("repo-api-bad-empty")
    p = cli(env, "restore", job["backup_id"], "--into", "repo-api-bad-empty", ok=False)
    assert p.returncode == 1 and "data.bin" in p.stderr
    assert "may hold part of the restored data" in p.stderr

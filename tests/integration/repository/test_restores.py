"""Trustworthy restores of repository snapshots through the product (embedded CLI, private
dockerd): verify's structure check, --read-data and --subset scoped to one snapshot,
restore drills compared with the snapshot's tree, and replace-restores with rollback."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration.embedded.test_embedded import cli, volume
from tests.integration.repository.test_product import repo_env
from tests.treecmp import build_fidelity_tree, compare_trees

pytestmark = pytest.mark.integration
__all__ = ["repo_env"]  # the fixture, re-used


def _packs(env: dict[str, str]) -> set[Path]:
    root = Path(env["VOLKEEPER_HOME"]) / "backups" / "volkeeper" / "repo" / "packs"
    return {p for p in root.rglob("*") if p.is_file()}


def _key(pack: Path) -> str:
    return f"volkeeper/repo/packs/{pack.parent.name}/{pack.name}"


def _biggest(packs: set[Path]) -> Path:
    return max(packs, key=lambda p: p.stat().st_size)


def _flip(pack: Path) -> None:
    raw = bytearray(pack.read_bytes())
    raw[len(raw) // 3] ^= 0x01
    pack.write_bytes(bytes(raw))


def _backup(env: dict[str, str], name: str) -> str:
    job = json.loads(cli(env, "backup", name, "--format", "repo", "--json").stdout)
    assert job["state"] == "succeeded", job["error"]
    return str(job["backup_id"])


def test_verify_checks_only_the_snapshot_and_names_a_missing_pack_and_its_files(
        repo_env: dict[str, str], docker_host_a: Any) -> None:
    a = volume(docker_host_a, "rv-a")
    (a / "a.bin").write_bytes(os.urandom(3 << 20))
    first = _backup(repo_env, "rv-a")
    packs_a = _packs(repo_env)
    b = volume(docker_host_a, "rv-b")
    (b / "b.bin").write_bytes(os.urandom(3 << 20))
    second = _backup(repo_env, "rv-b")
    only_b = _biggest(_packs(repo_env) - packs_a)
    _flip(only_b)

    # the damaged pack belongs only to the other snapshot: this one is intact
    ok = json.loads(cli(repo_env, "verify", first, "--read-data", "--json").stdout)
    assert ok["result"]["ok"] is True and ok["result"]["packs_read"] == 2
    bad = json.loads(cli(repo_env, "verify", second, "--read-data", "--json",
                         ok=False).stdout)
    assert bad["state"] == "failed" and _key(only_b) in bad["result"]["damaged_objects"]
    assert "b.bin" in " ".join(bad["result"]["problems"])

    # a subset reads a reported share of the snapshot's packs
    sub = json.loads(cli(repo_env, "verify", first, "--subset", "50%", "--seed", "3",
                         "--json").stdout)
    r = sub["result"]
    assert r["ok"] is True and r["scope"] == "subset" and r["subset_percent"] == 50
    assert r["seed"] == 3 and r["packs_referenced"] == 2 and r["packs_read"] == 1
    text = " ".join(cli(repo_env, "verify", first, "--subset", "50").stdout.split())  # result
    assert "1 of 2 packs read back (50.0% asked, seed" in text
    [listed] = [x for x in json.loads(cli(repo_env, "backups", "--json").stdout)
                if x["id"] == first]
    assert listed["verify_status"] == "ok (subset)"  # not shown as a full verification

    # a missing pack is found by the structure check alone, naming the pack and file
    data_a = _biggest(packs_a)
    data_a.unlink()
    p = cli(repo_env, "verify", first, ok=False)
    assert p.returncode == 1 and "a.bin" in p.stderr and "Traceback" not in p.stderr
    gone = json.loads(cli(repo_env, "verify", first, "--json", ok=False).stdout)
    assert gone["result"]["scope"] == "structure" and gone["result"]["packs_read"] == 0
    assert _key(data_a) in gone["result"]["damaged_objects"]
    [listed] = [x for x in json.loads(cli(repo_env, "backups", "--json").stdout)
                if x["id"] == first]
    assert listed["verify_status"] == "damaged"


def test_subset_is_refused_for_an_archive_with_a_clear_message(
        embedded_env: dict[str, str], docker_host_a: Any) -> None:
    src = volume(docker_host_a, "rv-tar")
    (src / "x.txt").write_text("x")
    job = json.loads(cli(embedded_env, "backup", "rv-tar", "--format", "tar.zst",
                         "--json").stdout)
    p = cli(embedded_env, "verify", job["backup_id"], "--subset", "5%", ok=False)
    assert p.returncode == 1 and "repository backups only" in p.stderr
    assert "Traceback" not in p.stderr
    p = cli(embedded_env, "verify", job["backup_id"], "--subset", "0", ok=False)
    assert p.returncode == 1 and "invalid subset" in p.stderr
    full = json.loads(cli(embedded_env, "verify", job["backup_id"], "--read-data",
                          "--json").stdout)
    assert full["result"]["ok"] is True and full["result"]["scope"] == "full"


def test_a_drill_of_a_repo_snapshot_passes_and_fails_on_damage(
        repo_env: dict[str, str], docker_host_a: Any) -> None:
    src = volume(docker_host_a, "rd-app")
    build_fidelity_tree(src)
    backup = _backup(repo_env, "rd-app")
    done = json.loads(cli(repo_env, "drill", backup, "--json").stdout)
    assert done["state"] == "succeeded", done["error"]
    r = done["result"]
    assert r["passed"] is True and r["problem_count"] == 0
    assert r["entries_checked"] >= r["files_restored"] > 0
    scratch = r["scratch_volume"]
    assert scratch not in {v.name for v in docker_host_a.client().volumes.list()}

    _flip(_biggest(_packs(repo_env)))
    p = cli(repo_env, "drill", backup, ok=False)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    failed = json.loads(cli(repo_env, "drill", backup, "--json", ok=False).stdout)
    assert failed["state"] == "failed" and "big.bin" in failed["error"]
    assert not {v.name for v in docker_host_a.client().volumes.list()
                if v.name.startswith("volkeeper-drill-")}
    drills = [j for j in json.loads(cli(repo_env, "jobs", "--json").stdout)
              if j["kind"] == "drill"]
    assert [d["state"] for d in drills[:3]] == ["failed", "failed", "succeeded"]


def _copy(src: Path, dst: Path) -> Path:
    subprocess.run(["cp", "-a", "--preserve=all", "--sparse=always", f"{src}/.", str(dst)],
                   check=True)
    return dst


def test_replace_with_a_repo_snapshot_restores_and_damaged_shared_data_leaves_the_volume(
        repo_env: dict[str, str], docker_host_a: Any, tmp_path: Path) -> None:
    src = volume(docker_host_a, "rr-app")
    build_fidelity_tree(src)
    original = _copy(src, tmp_path / "original")
    backup = _backup(repo_env, "rr-app")
    (src / "plain.txt").write_text("changed after the backup")
    (src / "new-file").write_text("new")

    done = json.loads(cli(repo_env, "restore", backup, "--mode", "replace",
                          "--json").stdout)
    assert done["state"] == "succeeded", done["error"]
    assert done["result"]["entries_checked"] > 0
    assert compare_trees(original, src) == []

    (src / "plain.txt").write_text("changed again")
    changed = _copy(src, tmp_path / "changed")
    _flip(_biggest(_packs(repo_env)))
    # the volume's content shares big.bin with the backup: the safety snapshot (in the
    # repository) would fail the roll-back as the restore fails, so its read-back refuses
    # the replace before the volume is touched (a roll-back: test_safety)
    failed = json.loads(cli(repo_env, "restore", backup, "--mode", "replace", "--json",
                            ok=False).stdout)
    assert failed["state"] == "failed"
    assert "volume is unchanged" in failed["error"] and "big.bin" in failed["error"]
    assert "replace_state" not in (failed["result"] or {})
    assert compare_trees(changed, src) == []
    assert (src / "plain.txt").read_text() == "changed again"


def test_a_dry_run_of_a_repo_backup_loads_its_snapshot(
        repo_env: dict[str, str], docker_host_a: Any) -> None:
    src = volume(docker_host_a, "rdry-app")
    (src / "a.txt").write_text("a")
    backup = _backup(repo_env, "rdry-app")
    ok = json.loads(cli(repo_env, "restore", backup, "--into", "rdry-copy", "--dry-run",
                        "--json").stdout)
    assert ok["ok"] is True
    [check] = [c for c in ok["checks"] if c["name"] == "snapshot present"]
    assert check["ok"] and "rdry-app" in check["detail"]

    snapshots = Path(repo_env["VOLKEEPER_HOME"]) / "backups" / "volkeeper" / "repo" / "snapshots"
    [snap] = [p for p in snapshots.rglob("*") if p.is_file()]
    raw = bytearray(snap.read_bytes())
    raw[-5] ^= 0x01
    snap.write_bytes(bytes(raw))
    p = cli(repo_env, "restore", backup, "--into", "rdry-copy", "--dry-run", "--json",
            ok=False)
    bad = json.loads(p.stdout)
    assert p.returncode == 1 and bad["ok"] is False
    [check] = [c for c in bad["checks"] if c["name"] == "snapshot present"]
    assert not check["ok"] and "cannot be loaded" in check["detail"]
    assert "rdry-copy" not in {v.name for v in docker_host_a.client().volumes.list()}

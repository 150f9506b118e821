"""Embedded mode end to end, as a user on one machine with only Docker: the CLI and the
REST API of `volkeeper serve`, SQLite under VOLKEEPER_HOME, backups in its default target,
and the stored archive restored with plain `tar` when volkeeper is gone."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.embedded import api_client
from tests.fixtures.util import wait_for
from tests.treecmp import build_fidelity_tree, compare_trees

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]


def cli(env: dict[str, str], *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    p = subprocess.run([sys.executable, "-m", "cli.main", *args], env=env, cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    if ok:
        assert p.returncode == 0, f"volkeeper {' '.join(args)}:\n{p.stdout}\n{p.stderr}"
    return p


def volume(docker_host: Any, name: str) -> Path:
    docker_host.client().volumes.create(name)
    return Path(docker_host.client().volumes.get(name).attrs["Mountpoint"])


def test_only_the_volumes_command_measures_volume_sizes(
        embedded_env: dict[str, str], docker_host_a: Any) -> None:
    """Docker walks every file of every volume to size them: other one-shot commands must
    not pay for that, and keep the size measured last."""
    src = volume(docker_host_a, "emb-sized")
    (src / "blob").write_bytes(os.urandom(300_000))

    def listed() -> dict[str, Any]:
        rows = json.loads(cli(embedded_env, "volumes", "--json").stdout)
        return {v["name"]: v for v in rows}

    def inventory_size() -> Any:
        from sqlalchemy import create_engine, text

        db = Path(embedded_env["VOLKEEPER_HOME"]) / "volkeeper.db"
        with create_engine(f"sqlite:///{db}").connect() as conn:
            return conn.execute(text("SELECT size_bytes FROM volumes WHERE name = :n"),
                                {"n": "emb-sized"}).scalar_one()

    cli(embedded_env, "hosts", "--json")  # registers the host: an inventory without sizes
    assert inventory_size() is None  # listed by the inventory, not measured
    assert listed()["emb-sized"]["size_bytes"] >= 300_000
    (src / "more").write_bytes(os.urandom(200_000))
    cli(embedded_env, "hosts", "--json")
    assert 300_000 <= inventory_size() < 500_000  # the last measurement is kept
    assert listed()["emb-sized"]["size_bytes"] >= 500_000


def test_cli_backs_up_lists_and_restores_into_a_new_volume(
        embedded_env: dict[str, str], docker_host_a: Any, tmp_path: Path) -> None:
    src = volume(docker_host_a, "emb-app")
    build_fidelity_tree(src)
    listed = json.loads(cli(embedded_env, "volumes", "--json").stdout)
    assert "emb-app" in {v["name"] for v in listed}

    job = json.loads(cli(embedded_env, "backup", "emb-app", "--json").stdout)
    assert job["state"] == "succeeded" and job["host"] == "laptop"
    backup_id = job["backup_id"]
    backups = json.loads(cli(embedded_env, "backups", "--json").stdout)
    assert [b["id"] for b in backups] == [backup_id]
    assert backups[0]["format"] == "repo"  # the default: the native repository
    home = Path(embedded_env["VOLKEEPER_HOME"])
    assert (home / "backups" / backups[0]["key"]).is_file()  # the snapshot object
    assert (home / "backups" / "volkeeper" / "repo" / "config").is_file()
    assert (home / "repository.password").is_file()  # embedded: a generated passphrase

    restored = json.loads(cli(embedded_env, "restore", backup_id, "--into", "emb-copy",
                              "--json").stdout)
    assert restored["state"] == "succeeded"
    dst = Path(docker_host_a.client().volumes.get("emb-copy").attrs["Mountpoint"])
    assert compare_trees(src, dst) == []

    # human output and history
    assert backup_id in cli(embedded_env, "backups").stdout
    history = json.loads(cli(embedded_env, "jobs", "--json").stdout)
    assert [j["kind"] for j in history] == ["restore", "backup"]


def test_cli_refuses_a_non_empty_volume_with_a_clear_error(
        embedded_env: dict[str, str], docker_host_a: Any) -> None:
    src = volume(docker_host_a, "emb-busy")
    (src / "data.txt").write_text("precious")
    job = json.loads(cli(embedded_env, "backup", "emb-busy", "--format", "tar", "--json").stdout)
    p = cli(embedded_env, "restore", job["backup_id"], ok=False)
    assert p.returncode == 1
    assert "not empty" in p.stderr and "--into" in p.stderr and "--mode replace" in p.stderr
    assert "Traceback" not in p.stderr
    assert (src / "data.txt").read_text() == "precious"
    p = cli(embedded_env, "backup", "no-such-volume", ok=False)
    assert p.returncode == 1 and "no-such-volume" in p.stderr


@pytest.mark.parametrize("fmt,decompress", [("tar.zst", "zstd -dc"), ("tar.gz", "gzip -dc"),
                                            ("tar", "cat")])
def test_an_archive_restores_with_plain_tar(
        embedded_env: dict[str, str], docker_host_a: Any, tmp_path: Path, fmt: str,
        decompress: str) -> None:
    src = volume(docker_host_a, f"emb-plain-{fmt.replace('.', '-')}")
    build_fidelity_tree(src)
    job = json.loads(cli(embedded_env, "backup", src.parent.name, "--format", fmt,
                         "--json").stdout)
    archive = Path(embedded_env["VOLKEEPER_HOME"]) / "backups" / job["result"]["key"]
    out = tmp_path / "plain"
    out.mkdir()
    # the one-liner documented in README.md
    subprocess.run(f"{decompress} '{archive}' | tar -xpf - --xattrs --xattrs-include='*' "
                   f"--numeric-owner -C '{out}'", shell=True, check=True)
    assert compare_trees(src, out) == []


def test_rest_api_of_the_embedded_server_backs_up_and_restores(
        embedded_server: str, embedded_env: dict[str, str], docker_host_a: Any) -> None:
    src = volume(docker_host_a, "emb-rest")
    build_fidelity_tree(src)
    with api_client(embedded_server, embedded_env) as c:
        wait_for(lambda: any(v["name"] == "emb-rest" for v in c.get("/volumes").json()), 30,
                 "inventory")
        job = c.post("/backups", json={"volume": "emb-rest"}).json()
        job = _wait(c, job["id"])
        assert job["state"] == "succeeded", job["error"]
        restore = c.post("/restores", json={"backup_id": job["backup_id"],
                                            "into": "emb-rest-copy"}).json()
        restore = _wait(c, restore["id"])
        assert restore["state"] == "succeeded", restore["error"]
        console = httpx.get(embedded_server + "/", follow_redirects=True)
        assert console.status_code == 200 and "Log in" in console.text  # its login page
    dst = Path(docker_host_a.client().volumes.get("emb-rest-copy").attrs["Mountpoint"])
    assert compare_trees(src, dst) == []


def _wait(c: httpx.Client, job_id: str) -> dict[str, Any]:
    for _ in range(600):
        job: dict[str, Any] = c.get(f"/jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed"):
            return job
        time.sleep(0.2)
    raise AssertionError("job did not finish")


def test_cli_registers_an_s3_target_and_backs_up_to_it(
        embedded_env: dict[str, str], docker_host_a: Any, s3_server: Any, s3_bucket: str,
        tmp_path: Path) -> None:
    env = embedded_env | {"VOLKEEPER_S3_ACCESS_KEY_ID": s3_server.access_key_id,
                          "VOLKEEPER_S3_SECRET_ACCESS_KEY": s3_server.secret_access_key}
    cli(env, "targets", "add", "bucket", f"s3://{s3_bucket}/vk", "--endpoint-url",
        s3_server.endpoint_url, "--path-style", "--region", s3_server.region)
    shown = cli(env, "targets", "list", "--json").stdout
    assert s3_server.secret_access_key not in shown
    src = volume(docker_host_a, "emb-s3")
    build_fidelity_tree(src)
    job = json.loads(cli(env, "backup", "emb-s3", "--target", "bucket", "--format", "tar.zst",
                         "--json").stdout)
    keys = [o["Key"] for o in s3_server.client().list_objects_v2(
        Bucket=s3_bucket)["Contents"]]
    assert keys == sorted([f"vk/{job['result']['key']}",
                           f"vk/{job['result']['key']}.manifest.jsonl"])
    restored = json.loads(cli(env, "restore", job["backup_id"], "--into", "emb-s3-copy",
                              "--json").stdout)
    assert restored["state"] == "succeeded"
    dst = Path(docker_host_a.client().volumes.get("emb-s3-copy").attrs["Mountpoint"])
    assert compare_trees(src, dst) == []


def test_verify_passes_an_intact_backup_and_names_the_damage_in_a_corrupted_one(
        embedded_env: dict[str, str], docker_host_a: Any) -> None:
    src = volume(docker_host_a, "emb-verify")
    build_fidelity_tree(src)
    job = json.loads(cli(embedded_env, "backup", "emb-verify", "--format", "tar.zst",
                         "--json").stdout)
    backup_id = job["backup_id"]
    ok = json.loads(cli(embedded_env, "verify", backup_id, "--json").stdout)
    assert ok["state"] == "succeeded" and ok["result"]["ok"] is True
    assert ok["result"]["entries_checked"] > 5
    [listed] = json.loads(cli(embedded_env, "backups", "--volume", "emb-verify",
                              "--json").stdout)
    assert listed["verify_status"] == "ok" and listed["verified_at"]

    archive = Path(embedded_env["VOLKEEPER_HOME"]) / "backups" / job["result"]["key"]
    raw = bytearray(archive.read_bytes())
    raw[len(raw) // 3] ^= 0x40
    archive.write_bytes(bytes(raw))
    p = cli(embedded_env, "verify", backup_id, ok=False)
    assert p.returncode == 1
    assert "damaged" in p.stderr and job["result"]["key"] in p.stderr
    assert "Traceback" not in p.stderr
    # said once: the error line, not also the in-process worker's log line of the job
    assert p.stderr.count(f"backup {backup_id} is damaged") == 1, p.stderr
    [listed] = json.loads(cli(embedded_env, "backups", "--volume", "emb-verify",
                              "--json").stdout)
    assert listed["verify_status"] == "damaged"

    manifest = Path(str(archive) + ".manifest.jsonl")
    manifest.unlink()
    bad = json.loads(cli(embedded_env, "verify", backup_id, "--json", ok=False).stdout)
    assert bad["state"] == "failed"
    assert any(o.endswith(".manifest.jsonl") for o in bad["result"]["damaged_objects"])


def test_verify_names_the_file_whose_bytes_were_damaged(
        embedded_env: dict[str, str], docker_host_a: Any) -> None:
    src = volume(docker_host_a, "emb-verify-file")
    (src / "fine.txt").write_bytes(b"all good\n" * 1000)
    (src / "victim.db").write_bytes(b"PAGE-MARKER-" + os.urandom(64 * 1024))
    job = json.loads(cli(embedded_env, "backup", "emb-verify-file", "--format", "tar",
                         "--json").stdout)
    archive = Path(embedded_env["VOLKEEPER_HOME"]) / "backups" / job["result"]["key"]
    raw = bytearray(archive.read_bytes())
    at = raw.index(b"PAGE-MARKER-") + 5
    raw[at] ^= 0x01
    archive.write_bytes(bytes(raw))
    bad = json.loads(cli(embedded_env, "verify", job["backup_id"], "--json", ok=False).stdout)
    assert bad["state"] == "failed"
    problems = " ".join(bad["result"]["problems"])
    assert "victim.db" in problems and "fine.txt" not in problems


def test_dry_run_reports_every_check_and_changes_nothing(
        embedded_env: dict[str, str], docker_host_a: Any) -> None:
    src = volume(docker_host_a, "emb-dry")
    (src / "a.txt").write_text("content")
    job = json.loads(cli(embedded_env, "backup", "emb-dry", "--format", "tar.zst",
                         "--json").stdout)
    backup_id = job["backup_id"]

    new = json.loads(cli(embedded_env, "restore", backup_id, "--into", "emb-dry-new",
                         "--dry-run", "--json").stdout)
    assert new["ok"] and new["volume_state"] == "missing" and "create volume" in new["plan"]
    assert {c["name"] for c in new["checks"]} == {
        "archive present", "manifest present", "manifest intact", "target volume",
        "free space"}
    assert new["free_bytes"] and new["free_bytes"] > new["restore_bytes"] > 0
    names = {v.name for v in docker_host_a.client().volumes.list()}
    assert "emb-dry-new" not in names  # a dry run creates nothing

    busy = cli(embedded_env, "restore", backup_id, "--dry-run", "--json", ok=False)
    assert busy.returncode == 1
    report = json.loads(busy.stdout)
    assert report["volume_state"] == "not-empty" and report["plan"].startswith("refused")
    human = cli(embedded_env, "restore", backup_id, "--dry-run", ok=False)
    assert "not empty" in human.stdout + human.stderr

    docker_host_a.client().volumes.create("emb-dry-empty")
    empty = json.loads(cli(embedded_env, "restore", backup_id, "--into", "emb-dry-empty",
                           "--dry-run", "--json").stdout)
    assert empty["ok"] and empty["volume_state"] == "empty"

    archive = Path(embedded_env["VOLKEEPER_HOME"]) / "backups" / job["result"]["key"]
    # a damaged (not missing) manifest: the archive's checksum still passes, but the
    # backup's record of what it holds is gone; the restore is refused, saying what to do
    manifest = Path(str(archive) + ".manifest.jsonl")
    intact = manifest.read_bytes()
    manifest.write_bytes(intact.replace(b'"./a.txt"', b'"./b.txt"'))
    damaged = json.loads(cli(embedded_env, "restore", backup_id, "--into", "emb-dry-new",
                             "--dry-run", "--json", ok=False).stdout)
    assert [c["name"] for c in damaged["checks"] if not c["ok"]] == ["manifest intact"]
    real = cli(embedded_env, "restore", backup_id, "--into", "emb-dry-new", ok=False)
    assert real.returncode == 1 and "cannot be trusted" in real.stderr
    assert f"volkeeper verify {backup_id}" in real.stderr and "Traceback" not in real.stderr
    assert "emb-dry-new" not in {v.name for v in docker_host_a.client().volumes.list()}
    manifest.write_bytes(intact)
    assert json.loads(cli(embedded_env, "restore", backup_id, "--into", "emb-dry-new",
                          "--dry-run", "--json").stdout)["ok"]

    Path(str(archive) + ".manifest.jsonl").unlink()
    gone = json.loads(cli(embedded_env, "restore", backup_id, "--into", "emb-dry-new",
                          "--dry-run", "--json", ok=False).stdout)
    assert not gone["ok"]
    assert [c["name"] for c in gone["checks"] if not c["ok"]] == ["manifest present"]
    real = cli(embedded_env, "restore", backup_id, "--into", "emb-dry-new", ok=False)
    assert real.returncode == 1 and "manifest" in real.stderr
    assert "emb-dry-new" not in {v.name for v in docker_host_a.client().volumes.list()}


def test_a_drill_restores_compares_measures_and_cleans_up(
        embedded_env: dict[str, str], docker_host_a: Any) -> None:
    src = volume(docker_host_a, "emb-drill")
    build_fidelity_tree(src)
    job = json.loads(cli(embedded_env, "backup", "emb-drill", "--format", "tar.zst",
                         "--json").stdout)
    before = {v.name for v in docker_host_a.client().volumes.list()}

    done = json.loads(cli(embedded_env, "drill", job["backup_id"], "--json").stdout)
    r = done["result"]
    assert done["state"] == "succeeded" and r["passed"] is True
    assert r["restore_seconds"] > 0 and r["throughput_bytes_per_s"] > 0
    assert r["entries_checked"] > 10 and r["problems"] == []
    assert {v.name for v in docker_host_a.client().volumes.list()} == before

    # a manifest that disagrees with the data: the drill's comparison must catch it
    manifest = (Path(embedded_env["VOLKEEPER_HOME"]) / "backups"
                / (job["result"]["key"] + ".manifest.jsonl"))
    lines = manifest.read_text().splitlines()
    i = next(n for n, line in enumerate(lines) if '"./plain.txt"' in line)
    entry = json.loads(lines[i])
    entry["blake3"] = "0" * 64  # the content digest of a version 2 manifest
    lines[i] = json.dumps(entry)
    # re-sealed (its lines' sha256 in the summary), so the restore goes on and only the
    # comparison can tell (an unsealed change is refused before: test_dry_run_reports…)
    summary = json.loads(lines[-1])
    summary["lines_sha256"] = hashlib.sha256("".join(
        line + "\n" for line in lines[:-1]).encode()).hexdigest()
    lines[-1] = json.dumps(summary)
    manifest.write_text("\n".join(lines) + "\n")
    failed = json.loads(cli(embedded_env, "drill", job["backup_id"], "--json",
                            ok=False).stdout)
    assert failed["state"] == "failed" and failed["result"]["passed"] is False
    assert any("plain.txt" in p for p in failed["result"]["problems"])
    assert {v.name for v in docker_host_a.client().volumes.list()} == before

    history = json.loads(cli(embedded_env, "jobs", "--json").stdout)
    assert [j["state"] for j in history if j["kind"] == "drill"] == ["failed", "succeeded"]


def test_a_drill_of_a_corrupted_archive_fails_and_leaves_no_scratch_volume(
        embedded_env: dict[str, str], docker_host_a: Any) -> None:
    src = volume(docker_host_a, "emb-drill-bad")
    (src / "data.bin").write_bytes(os.urandom(1 << 20))
    job = json.loads(cli(embedded_env, "backup", "emb-drill-bad", "--format", "tar.zst",
                         "--json").stdout)
    archive = Path(embedded_env["VOLKEEPER_HOME"]) / "backups" / job["result"]["key"]
    raw = bytearray(archive.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    archive.write_bytes(bytes(raw))
    before = {v.name for v in docker_host_a.client().volumes.list()}
    p = cli(embedded_env, "drill", job["backup_id"], ok=False)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert {v.name for v in docker_host_a.client().volumes.list()} == before
    # the damage is kept on the backup, as verify keeps it: no longer a good backup
    shown = json.loads(cli(embedded_env, "backups", job["backup_id"], "--json").stdout)
    assert shown["verify_status"] == "damaged" and shown["verified_at"]


def test_selected_paths_restore_only_those_paths(
        embedded_env: dict[str, str], docker_host_a: Any, tmp_path: Path) -> None:
    src = volume(docker_host_a, "emb-paths")
    build_fidelity_tree(src)
    job = json.loads(cli(embedded_env, "backup", "emb-paths", "--format", "tar.zst",
                         "--json").stdout)
    done = json.loads(cli(embedded_env, "restore", job["backup_id"], "--into", "emb-paths-sel",
                          "--path", "sticky", "--path", "/plain.txt", "--json").stdout)
    assert done["state"] == "succeeded", done["error"]
    dst = Path(docker_host_a.client().volumes.get("emb-paths-sel").attrs["Mountpoint"])
    assert sorted(p.name for p in dst.iterdir()) == ["plain.txt", "sticky"]
    assert (dst / "plain.txt").read_bytes() == (src / "plain.txt").read_bytes()
    assert sorted(p.name for p in (dst / "sticky").iterdir()) == \
        sorted(p.name for p in (src / "sticky").iterdir())

    missing = cli(embedded_env, "restore", job["backup_id"], "--into", "emb-paths-x",
                  "--path", "no/such/dir", ok=False)
    assert missing.returncode == 1 and "no/such/dir" in missing.stderr
    bad = cli(embedded_env, "restore", job["backup_id"], "--into", "emb-paths-x",
              "--path", "../etc", ok=False)
    assert bad.returncode == 1 and "invalid path" in bad.stderr

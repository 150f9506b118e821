"""Consistent backups of live applications, as a user runs them (embedded `volkeeper
backup`): containers stopped for the backup and always running again — after a success,
a failure, and a killed CLI —, exec hooks (a failing one, a hanging one, post hooks after
a failure) and excludes restored exactly on both formats."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.dockerd import busybox_image
from tests.integration.embedded.test_embedded import REPO, cli
from tests.treecmp import compare_trees

pytestmark = pytest.mark.integration

#: like a real service it ends on SIGTERM (a bare `sleep` as PID 1 ignores it)
SERVE = "trap 'exit 0' TERM; sleep 3600 & wait"
STOP = {"volkeeper.stop-during-backup": "true"}


@pytest.fixture
def app(docker_host_a: Any) -> Iterator[Callable[..., Any]]:
    """``app(volume, name, **labels)``: a running busybox container using the volume at
    /data (removed after the test)."""
    client = docker_host_a.client()
    made: list[Any] = []

    def start(volume: str, name: str, labels: dict[str, str] | None = None) -> Any:
        ctr = client.containers.run(busybox_image(docker_host_a), ["sh", "-c", SERVE],
                                    detach=True, network_mode="none", name=name,
                                    labels=labels or {},
                                    volumes={volume: {"bind": "/data", "mode": "rw"}})
        made.append(ctr)
        return ctr

    yield start
    for ctr in made:
        ctr.remove(force=True)


def new_volume(docker_host: Any, labels: dict[str, str] | None = None) -> tuple[str, Path]:
    name = f"cb-{uuid.uuid4().hex[:8]}"
    v = docker_host.client().volumes.create(name, labels=labels or {})
    path = Path(v.attrs["Mountpoint"])
    (path / "data.bin").write_bytes(b"x" * 300_000)
    return name, path


def state(ctr: Any) -> dict[str, Any]:
    ctr.reload()
    return dict(ctr.attrs["State"])


def when(stamp: str) -> datetime:
    """Docker's RFC 3339 time with nanoseconds (Python takes microseconds)."""
    head, _, frac = stamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}+00:00")


def backup(env: dict[str, str], *args: str, ok: bool = True) -> dict[str, Any]:
    p = cli(env, "backup", *args, "--json", ok=ok)
    return dict(json.loads(p.stdout))


def backups_of(env: dict[str, str], volume: str) -> list[dict[str, Any]]:
    rows = json.loads(cli(env, "backups", "--volume", volume, "--json").stdout)
    return list(rows)


def test_labelled_containers_are_stopped_dependents_first_and_running_again(
        embedded_env: dict[str, str], docker_host_a: Any, app: Any) -> None:
    name, _path = new_volume(docker_host_a)
    compose = {"com.docker.compose.project": "shop"}
    db = app(name, f"{name}-db", compose | STOP | {"com.docker.compose.service": "db"})
    web = app(name, f"{name}-web", compose | {
        "com.docker.compose.service": "web",
        "com.docker.compose.depends_on": "db:service_started:false"})
    before = {c.name: state(c)["StartedAt"] for c in (db, web)}

    job = backup(embedded_env, name)
    assert job["state"] == "succeeded", job["error"]
    r = job["result"]
    assert r["stopped_containers"] == [web.name, db.name]  # dependents first
    assert sorted(r["restarted_containers"]) == sorted([web.name, db.name])
    windows = {w["name"]: w for w in r["stop_windows"]}
    assert all(w["restarted"] and w["seconds_down"] > 0 for w in windows.values())

    s_db, s_web = state(db), state(web)
    assert s_db["Running"] and s_web["Running"]
    assert s_db["StartedAt"] != before[db.name] and s_web["StartedAt"] != before[web.name]
    # web went down before db and came back after it
    assert when(s_web["FinishedAt"]) < when(s_db["FinishedAt"])
    assert when(s_db["StartedAt"]) < when(s_web["StartedAt"])
    assert len(backups_of(embedded_env, name)) == 1

    # without a label nothing stops; --stop-containers asks for it
    plain, _ = new_volume(docker_host_a)
    ctr = app(plain, f"{plain}-app")
    started = state(ctr)["StartedAt"]
    quiet = backup(embedded_env, plain)
    assert quiet["result"]["stopped_containers"] == [] and state(ctr)["StartedAt"] == started
    asked = backup(embedded_env, plain, "--stop-containers", "--format", "tar")
    assert asked["result"]["stopped_containers"] == [ctr.name]
    assert state(ctr)["Running"] and state(ctr)["StartedAt"] != started


def test_a_failed_backup_starts_its_containers_again_and_runs_the_post_hook(
        embedded_env: dict[str, str], docker_host_a: Any, app: Any, tmp_path: Path) -> None:
    name, path = new_volume(docker_host_a)
    ctr = app(name, f"{name}-app", {"volkeeper.post-backup": "echo post ran > /data/post"})
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "volkeeper").write_text("a file where the target needs a directory")
    cli(embedded_env, "targets", "add", "broken", f"file://{broken}")

    job = backup(embedded_env, name, "--target", "broken", "--format", "tar",
                 "--stop-containers", ok=False)
    assert job["state"] == "failed"
    r = job["result"]
    assert "target 'broken'" in job["error"], job["error"]
    assert r["stopped_containers"] == [ctr.name] == r["restarted_containers"], job
    assert state(ctr)["Running"]
    assert (path / "post").read_text() == "post ran\n"
    assert [h["hook"] for h in r["hooks"]] == ["post-backup"] and r["hooks"][0]["ok"]
    assert backups_of(embedded_env, name) == []


def test_a_failing_pre_hook_fails_the_backup_and_stores_nothing(
        embedded_env: dict[str, str], docker_host_a: Any, app: Any) -> None:
    name, path = new_volume(docker_host_a)
    ctr = app(name, f"{name}-db", STOP | {
        "volkeeper.pre-backup": "echo flushing; echo cannot flush >&2; exit 3",
        "volkeeper.post-backup": "echo unlocked > /data/post"})

    p = cli(embedded_env, "backup", name, "--json", ok=False)
    assert p.returncode == 1
    job = json.loads(p.stdout)
    assert job["state"] == "failed"
    for part in (ctr.name, "pre-backup", "code 3", "cannot flush", "not taken"):
        assert part in job["error"], job["error"]
    assert "pre-backup" in p.stderr and ctr.name in p.stderr
    assert p.stderr.count("code 3") == 1, p.stderr  # the job's error, not also a warning
    r = job["result"]
    pre = r["hooks"][0]
    assert (pre["hook"], pre["exit_code"], pre["ok"]) == ("pre-backup", 3, False)
    assert "flushing" in pre["output"] and "cannot flush" in pre["output"]
    assert r["stopped_containers"] == []  # it failed before the stop
    assert (path / "post").read_text() == "unlocked\n"  # post hooks still run
    assert state(ctr)["Running"]
    assert backups_of(embedded_env, name) == []

    # with on-error=warn the same hook only warns
    warn, _ = new_volume(docker_host_a)
    app(warn, f"{warn}-db", {"volkeeper.pre-backup": "exit 4",
                             "volkeeper.hook-on-error": "warn"})
    ok = backup(embedded_env, warn)
    assert ok["state"] == "succeeded"
    assert "code 4" in ok["result"]["hook_warnings"][0]
    assert len(backups_of(embedded_env, warn)) == 1
    plain = cli(embedded_env, "backup", warn, "--stop-containers", "--exclude", "*.tmp")
    assert "warning:" in plain.stderr and plain.stderr.count("code 4") == 1, plain.stderr
    assert f"containers stopped: {warn}-db" in plain.stderr
    assert "excluded 0 paths (*.tmp)" in plain.stderr


def test_a_hook_past_its_timeout_is_killed_and_fails_the_backup(
        embedded_env: dict[str, str], docker_host_a: Any, app: Any) -> None:
    name, _path = new_volume(docker_host_a)
    ctr = app(name, f"{name}-db", {"volkeeper.pre-backup": "echo waiting; sleep 600",
                                   "volkeeper.hook-timeout": "2"})
    started = time.monotonic()
    job = backup(embedded_env, name, ok=False)
    assert time.monotonic() - started < 60
    assert job["state"] == "failed"
    assert "timeout" in job["error"] and "killed" in job["error"] and ctr.name in job["error"]
    pre = job["result"]["hooks"][0]
    assert pre["timed_out"] and pre["killed"] and pre["exit_code"] is None
    assert "waiting" in pre["output"]
    assert 2 <= pre["seconds"] < 30
    # the hook's processes are gone from the container
    procs = [p[-1] for p in ctr.top()["Processes"] or []]
    assert "sleep 3600" in procs and not any("sleep 600" in p for p in procs), procs
    assert state(ctr)["Running"]
    assert backups_of(embedded_env, name) == []


def test_the_next_command_starts_the_containers_a_killed_backup_had_stopped(
        embedded_env: dict[str, str], docker_host_a: Any, app: Any) -> None:
    name, path = new_volume(docker_host_a)
    for i in range(8):
        (path / f"blob{i}.bin").write_bytes(bytes([i]) * (24 << 20))
    ctr = app(name, f"{name}-db", STOP)
    cmd = [sys.executable, "-m", "cli.main", "backup", name, "--format", "tar.gz"]
    p = subprocess.Popen(cmd, env=embedded_env, cwd=REPO, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while p.poll() is None and state(ctr)["Running"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert p.poll() is None, "the backup ended before it could be killed"
    assert not state(ctr)["Running"]
    p.kill()
    p.wait(30)
    time.sleep(0.5)
    assert not state(ctr)["Running"]  # nobody else starts it

    history = json.loads(cli(embedded_env, "jobs", "--json").stdout)
    job = next(j for j in history if j["kind"] == "backup")
    assert job["state"] == "failed"
    assert "started again" in job["error"] and ctr.name in job["error"], job["error"]
    assert state(ctr)["Running"]
    assert backups_of(embedded_env, name) == []
    again = backup(embedded_env, name, "--format", "tar")  # the volume is not locked
    assert again["state"] == "succeeded" and again["result"]["restarted_containers"]
    assert state(ctr)["Running"]


def make_tree(root: Path) -> None:
    files = ["keep/a.txt", "keep/deep/b.txt", "x.tmp", "keep/deep/y.tmp", "cache/c1",
             "cache/sub/c2", "logs/app.log", "keep/logs/inner.log", "keep/cache/not-root"]
    for rel in files:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(f"content of {rel}\n")
    (root / ".volkeeperignore").write_text("# no logs directories\nlogs/\n")


def expected(src: Path, dst: Path) -> Path:
    """A copy of the tree at ``src`` without what the test's excludes leave out."""
    subprocess.run(["cp", "-a", f"{src}/.", str(dst)], check=True)
    for rel in ("x.tmp", "keep/deep/y.tmp", "cache/c1", "cache/sub", "logs",
                "keep/logs"):
        target = dst / rel
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    for d in [dst, *(p for p in dst.rglob("*") if p.is_dir())]:  # removing touched them
        st = (src / d.relative_to(dst)).stat()
        os.utime(d, ns=(st.st_atime_ns, st.st_mtime_ns))
    return dst


@pytest.mark.parametrize("fmt", ["tar.zst", "repo"])
def test_excludes_from_label_request_and_ignore_file_leave_paths_out_of_both_formats(
        embedded_env: dict[str, str], docker_host_a: Any, tmp_path: Path, fmt: str) -> None:
    name, path = new_volume(docker_host_a, {"volkeeper.exclude": "cache/**"})
    (path / "data.bin").unlink()
    make_tree(path)
    want = expected(path, tmp_path / "want")

    job = backup(embedded_env, name, "--format", fmt, "--exclude", "*.tmp")
    assert job["state"] == "succeeded", job["error"]
    r = job["result"]
    assert r["excludes"] == ["cache/**", "*.tmp", "logs/"]
    # cache/c1, cache/sub, x.tmp, keep/deep/y.tmp, logs, keep/logs
    assert r["excluded_entries"] == 6

    restored = f"{name}-back"
    done = json.loads(cli(embedded_env, "restore", r["backup_id"], "--into", restored,
                          "--json").stdout)
    assert done["state"] == "succeeded", done["error"]
    back = Path(docker_host_a.client().volumes.get(restored).attrs["Mountpoint"])
    assert compare_trees(want, back) == []
    assert (back / "cache").is_dir() and not any((back / "cache").iterdir())
    if fmt == "repo":  # the snapshot itself records its excludes
        listed = json.loads(cli(embedded_env, "snapshots", "local", "--json").stdout)
        [snap] = [x for x in listed["result"]["snapshots"] if x["volume"] == name]
        assert snap["excludes"] == ["cache/**", "*.tmp", "logs/"]


def test_backups_through_the_docker_api_apply_the_same_excludes(
        embedded_env: dict[str, str], docker_host_a: Any, tmp_path: Path) -> None:
    env = embedded_env | {"VOLKEEPER_VOLUME_ACCESS": "docker-api"}
    name, path = new_volume(docker_host_a, {"volkeeper.exclude": "cache/**"})
    (path / "data.bin").unlink()
    make_tree(path)
    want = expected(path, tmp_path / "want")
    job = backup(env, name, "--format", "repo", "--exclude", "*.tmp")
    assert job["state"] == "succeeded", job["error"]
    # the .volkeeperignore (logs/) is read through the Docker API too
    assert job["result"]["excludes"] == ["cache/**", "*.tmp", "logs/"]
    assert job["result"]["excluded_entries"] == 6
    archive = backup(env, name, "--format", "tar", "--exclude", "*.tmp")
    assert archive["state"] == "succeeded", archive["error"]
    assert archive["result"]["excluded_entries"] == 6

    for i, made in enumerate((job, archive)):
        restored = f"{name}-back{i}"
        done = json.loads(cli(embedded_env, "restore", made["result"]["backup_id"],
                              "--into", restored, "--json").stdout)
        assert done["state"] == "succeeded", done["error"]
        back = Path(docker_host_a.client().volumes.get(restored).attrs["Mountpoint"])
        # through the API mtimes are whole seconds: compare names and content
        names = sorted(p.relative_to(back).as_posix() for p in back.rglob("*"))
        assert names == sorted(p.relative_to(want).as_posix() for p in want.rglob("*"))
        for rel in names:
            if (want / rel).is_file():
                assert (back / rel).read_bytes() == (want / rel).read_bytes()


def test_a_post_hook_that_must_not_fail_fails_the_job_and_forgets_the_stored_backup(
        embedded_env: dict[str, str], docker_host_a: Any, app: Any) -> None:
    name, _path = new_volume(docker_host_a)
    ctr = app(name, f"{name}-db", {
        "volkeeper.pre-backup": "echo uid=$(busybox id -u)",
        "volkeeper.post-backup": "echo cannot resume; exit 5",
        "volkeeper.hook-user": "1234", "volkeeper.hook-on-error": "fail"})
    job = backup(embedded_env, name, "--format", "tar.zst", ok=False)
    assert job["state"] == "failed"
    assert "post-backup" in job["error"] and "code 5" in job["error"], job["error"]
    pre, post = job["result"]["hooks"]
    assert pre["ok"] and pre["output"] == "uid=1234\n"  # volkeeper.hook-user
    assert not post["ok"] and post["exit_code"] == 5
    assert backups_of(embedded_env, name) == []
    stored = Path(embedded_env["VOLKEEPER_HOME"]) / "backups" / "volkeeper" / "archives"

    def objects(volume: str) -> list[Path]:
        return [p for p in stored.rglob("*") if p.is_file() and f"/{volume}/" in str(p)]

    assert objects(name) == []
    assert state(ctr)["Running"]
    kept, _ = new_volume(docker_host_a)  # where a kept archive is: its archive and manifest
    assert backup(embedded_env, kept, "--format", "tar.zst")["state"] == "succeeded"
    assert len(objects(kept)) == 2


def test_a_replace_restore_runs_the_restore_hooks_around_its_stop_window(
        embedded_env: dict[str, str], docker_host_a: Any, app: Any) -> None:
    name, path = new_volume(docker_host_a)
    job = backup(embedded_env, name)
    (path / "data.bin").write_text("changed")
    ctr = app(name, f"{name}-db", {
        "volkeeper.pre-restore": "echo pre > /data/pre-restore",
        "volkeeper.post-restore": "echo post > /data/post-restore"})
    done = json.loads(cli(embedded_env, "restore", job["result"]["backup_id"], "--mode",
                          "replace", "--stop-containers", "--json").stdout)
    assert done["state"] == "succeeded", done["error"]
    r = done["result"]
    assert [h["hook"] for h in r["hooks"]] == ["pre-restore", "post-restore"]
    assert r["stopped_containers"] == [ctr.name] == r["restarted_containers"]
    # the pre hook's file was replaced with the backup's content; the post hook ran after
    assert not (path / "pre-restore").exists()
    assert (path / "post-restore").read_text() == "post\n"
    assert (path / "data.bin").read_bytes() == b"x" * 300_000
    assert state(ctr)["Running"]

    refused, _ = new_volume(docker_host_a)
    first = backup(embedded_env, refused)
    app(refused, f"{refused}-db", {"volkeeper.pre-restore": "exit 9"})
    p = cli(embedded_env, "restore", first["result"]["backup_id"], "--mode", "replace",
            "--stop-containers", "--json", ok=False)
    failed = json.loads(p.stdout)
    assert failed["state"] == "failed" and "pre-restore" in failed["error"]
    assert "code 9" in failed["error"] and "restore did not start" in failed["error"]


def test_a_container_that_ignores_sigterm_is_killed_after_its_stop_timeout_and_restarted(
        embedded_env: dict[str, str], docker_host_a: Any) -> None:
    name, _path = new_volume(docker_host_a)
    client = docker_host_a.client()
    stubborn = client.containers.run(
        busybox_image(docker_host_a), ["sh", "-c", "trap '' TERM; while :; do sleep 1; done"],
        detach=True, network_mode="none", name=f"{name}-stubborn",
        labels=STOP | {"volkeeper.stop-timeout": "2"},
        volumes={name: {"bind": "/data", "mode": "rw"}})
    try:
        job = backup(embedded_env, name, "--format", "tar")
        assert job["state"] == "succeeded", job["error"]
        [window] = job["result"]["stop_windows"]
        assert 2 <= window["seconds_down"] < 25  # killed after 2 s, not the default 30
        assert state(stubborn)["Running"]
    finally:
        stubborn.remove(force=True)


def test_a_cancelled_backup_starts_its_containers_again_and_runs_its_post_hook(
        embedded_env: dict[str, str], docker_host_a: Any, app: Any) -> None:
    name, path = new_volume(docker_host_a)
    for i in range(6):
        (path / f"blob{i}.bin").write_bytes(os.urandom(8 << 20))
    ctr = app(name, f"{name}-db", STOP | {"volkeeper.post-backup": "echo post > /data/post"})
    cli(embedded_env, "jobs")  # the database exists before two processes use it
    slow = embedded_env | {"VOLKEEPER_BANDWIDTH_LIMIT": str(4 << 20)}  # ~12 s in all
    p = subprocess.Popen([sys.executable, "-m", "cli.main", "backup", name, "--json"],
                         env=slow, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        deadline = time.monotonic() + 60
        while state(ctr)["Running"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not state(ctr)["Running"], "the container was not stopped for the backup"
        job = next(j for j in json.loads(cli(embedded_env, "jobs", "--json").stdout)
                   if j["kind"] == "backup" and j["state"] == "running")
        time.sleep(1.0)
        cli(embedded_env, "cancel", job["id"])
        stdout, _ = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    done = json.loads(stdout)
    assert done["state"] == "cancelled", done
    r = done["result"]
    assert r["stopped_containers"] == [ctr.name] == r["restarted_containers"]
    assert state(ctr)["Running"]
    assert (path / "post").read_text() == "post\n"
    assert backups_of(embedded_env, name) == []

"""The CLI's two fronts give the same answers: the same scenario run embedded (services
called in-process) and with ``--server`` against a running ``volkeeper serve`` prints the
same ``--json`` objects, ids and times aside. The embedded CLI loads no web framework and
no broker client, prints no warnings, and its tables fit an 80-column terminal."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.dockerd import busybox_image
from tests.fixtures.util import free_port, running_process

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]

#: Values that differ between two runs of the same scenario (ids, times, paths, rates).
VOLATILE = {"id", "job_id", "backup_id", "verify_job_id", "copy_backup_id", "created_at",
            "started_at", "finished_at", "seen_at", "last_seen_at", "inventory_at",
            "verified_at", "updated_at", "expires_at", "worker", "mountpoint", "key",
            "manifest_key", "checksum", "archive_sha256", "snapshot_id", "docker_version",
            "elapsed_seconds", "rate_bytes_per_s", "eta_seconds", "restore_seconds",
            "throughput_bytes_per_s", "seconds", "duration_seconds", "stored_bytes",
            "logical_bytes", "bytes_done", "bytes_total", "bytes_restored",
            "free_bytes", "restore_bytes", "detail", "plan", "message", "volume_count",
            "last_backup_at", "last_good_backup_at", "next_run_at", "url",
            # who asked: the local front is cli:local-user, a server's client its token
            "requested_by"}


#: Measured when someone asks: the embedded ``volumes`` measures now, a server's inventory
#: on its own schedule (a volume created a moment ago may not be measured there yet).
MEASURED = {"size_bytes"}


def shape(value: Any) -> Any:
    """``value`` with every volatile field replaced by its type (None stays None)."""
    if isinstance(value, dict):
        return {k: "measured" if k in MEASURED
                else (type(v).__name__ if v is not None else None) if k in VOLATILE
                else shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return value


def run(env: dict[str, str], *args: str, ok: bool = True, python: tuple[str, ...] = ()
        ) -> subprocess.CompletedProcess[str]:
    p = subprocess.run([sys.executable, *python, "-m", "cli.main", *args], env=env, cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    if ok:
        assert p.returncode == 0, f"volkeeper {' '.join(args)}:\n{p.stdout}\n{p.stderr}"
    return p


def env_for(tmp: Path, docker: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOLKEEPER_")}
    return env | {"VOLKEEPER_HOME": str(tmp), "VOLKEEPER_DOCKER_HOST": docker.url,
                  "VOLKEEPER_HOST_NAME": "laptop", "VOLKEEPER_REPOSITORY_KDF_N": "16384",
                  "COLUMNS": "80", "PYTHONWARNINGS": "default"}


@pytest.fixture
def server_env(tmp_path: Path, docker_host_b: Any) -> Iterator[dict[str, str]]:
    """A running ``volkeeper serve`` (embedded, on docker_host_b); the environment of a
    CLI that talks to it with ``--server``."""
    env = env_for(tmp_path / "served", docker_host_b)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running_process([sys.executable, "-m", "cli.main", "serve", "--port", str(port)],
                         env, tmp_path / "serve.log", url + "/api/v1/health",
                         "volkeeper serve", cwd=REPO):
        yield env | {"VOLKEEPER_SERVER": url}
    log = (tmp_path / "serve.log").read_text(errors="replace")
    assert "alembic" not in log.lower(), log  # the server starts quietly
    assert "Application startup complete" not in log and "GET /api" not in log, log
    # said once it listens (its start-up's own log lines may come first)
    said = [line for line in log.splitlines()
            if line.startswith("volkeeper (embedded) listening on")]
    assert len(said) == 1 and " ERROR " not in log.split(said[0])[0], log


def scenario(env: dict[str, str], docker: Any, volume: str) -> dict[str, Any]:
    """Every read and job command a user runs on a fresh installation, as ``--json``."""
    docker.client().volumes.create(volume)
    src = Path(docker.client().volumes.get(volume).attrs["Mountpoint"])
    (src / "data.txt").write_text("hello\n" * 100)
    (src / "sub").mkdir()
    (src / "sub" / "b.bin").write_bytes(b"\x00\x01" * 5000)

    def js(*args: str) -> Any:
        return json.loads(run(env, *args, "--json").stdout)

    out: dict[str, Any] = {"targets": js("targets", "list"), "hosts": js("hosts")}
    out["volume"] = [v for v in js("volumes") if v["name"] == volume]
    backup = js("backup", volume, "--format", "tar", "--wait")
    out["backup"] = backup
    bid = backup["backup_id"]
    out["backups"] = js("backups", "--volume", volume)
    out["job"] = js("job", backup["id"])
    out["dry_run"] = js("restore", bid, "--into", f"{volume}-copy", "--dry-run")
    out["restore"] = js("restore", bid, "--into", f"{volume}-copy", "--wait")
    out["verify"] = js("verify", bid)
    out["tag"] = js("tag", bid, "--add", "before-upgrade")
    out["tagged"] = js("backups", "--tag", "before-upgrade")
    out["jobs"] = js("jobs")
    out["targets_after"] = js("targets", "list")
    out["policy"] = js("policy", "create", "cmp", "--volume", volume, "--schedule", "@daily",
                       "--keep-last", "2")
    out["policy_show"] = js("policy", "show", "cmp")
    out["retention_preview"] = js("retention", "preview", "cmp")
    out["volume_with_policy"] = [v for v in js("volumes") if v["name"] == volume]
    # errors: the same message from either front, never a traceback
    errors = {"missing volume": run(env, "backup", "no-such-volume", ok=False),
              "bad path": run(env, "restore", bid, "--into", "x", "--path", "../etc",
                              ok=False),
              "bad subset": run(env, "verify", bid, "--subset", "5%", ok=False),
              "bad schedule": run(env, "policy", "create", "x", "--volume", volume,
                                  "--schedule", "61 * * * *", ok=False)}
    for name, p in errors.items():
        assert p.returncode == 1 and "Traceback" not in p.stderr, (name, p.stderr)
        out[f"error: {name}"] = re.sub(r"[0-9a-f]{16}", "ID", " ".join(p.stderr.split()))
    return out


def test_both_fronts_print_the_same_json_for_the_same_scenario(
        tmp_path: Path, docker_host_a: Any, docker_host_b: Any,
        server_env: dict[str, str]) -> None:
    # side by side (two daemons, two homes): each is ~22 CLI processes one after another
    with ThreadPoolExecutor(2) as pool:
        embedded = pool.submit(scenario, env_for(tmp_path / "local", docker_host_a),
                               docker_host_a, "front-cmp")
        served = pool.submit(scenario, server_env, docker_host_b, "front-cmp")
        local, remote = embedded.result(), served.result()
    assert local["backup"]["state"] == "succeeded" and local["restore"]["state"] == "succeeded"
    assert local["tagged"][0]["tags"] == ["before-upgrade"]
    assert local["volume_with_policy"][0]["policy"] == "cmp"
    assert local["retention_preview"][0]["keep"] == 1
    assert "register it first" not in local["error: missing volume"]
    assert local["backup"]["requested_by"] == "cli:local-user"
    assert remote["backup"]["requested_by"] == "admin"  # the server's token file, read
    differ = {key: (shape(local[key]), shape(remote[key])) for key in local
              if shape(local[key]) != shape(remote[key])}
    assert not differ, json.dumps(differ, indent=1)
    # the full values are in --json: whole ids and ISO timestamps
    assert re.fullmatch(r"[0-9a-f]{16}", local["backups"][0]["id"])
    assert "T" in local["backups"][0]["created_at"]


def test_the_embedded_cli_loads_no_web_framework_and_prints_no_warnings(
        tmp_path: Path, docker_host_a: Any) -> None:
    env = env_for(tmp_path, docker_host_a)
    docker_host_a.client().volumes.create("front-light")
    heavy = {"fastapi", "starlette", "uvicorn", "celery", "kombu", "boto3", "botocore",
             "alembic", "httpx", "redis", "pydantic_settings"}
    run(env, "backups")  # creates the database (this one may migrate)
    run(env, "volumes")  # registers the host and its inventory
    for args in (("volumes", "--json"), ("backups", "--json"), ("jobs",), ("hosts",)):
        p = run(env, *args, python=("-X", "importtime"))
        loaded = {m.split("|")[-1].strip() for m in p.stderr.splitlines()
                  if m.startswith("import time:")}
        assert not heavy & loaded, (args, sorted(heavy & loaded))
        if args[0] in ("volumes", "backups", "jobs"):  # reads: no request models, no
            # Docker SDK (the engine's unix socket is read with the standard library), and
            # the catalog read with the standard library's SQLite driver (a short start)
            assert not {"docker", "requests", "common.jobs.inputs", "sqlalchemy",
                        "common.db.models", "common.jobs.views"} & loaded, sorted(loaded)
        rest = [ln for ln in p.stderr.splitlines() if not ln.startswith("import time:")]
        assert not [ln for ln in rest if "warning" in ln.lower()], (args, rest)
    helped = run(env, "--help", python=("-X", "importtime"))
    loaded = {m.split("|")[-1].strip() for m in helped.stderr.splitlines()}
    assert not {"sqlalchemy", "docker", "httpx", "pydantic_settings"} & loaded
    assert "backup" in helped.stdout


def test_tables_fit_80_columns_and_keep_ids_whole(tmp_path: Path, docker_host_a: Any) -> None:
    env = env_for(tmp_path, docker_host_a)
    name = "front-a-rather-long-volume-name-for-a-narrow-terminal"
    docker_host_a.client().volumes.create(name)
    job = json.loads(run(env, "backup", name, "--format", "tar.zst", "--json").stdout)
    run(env, "tag", job["backup_id"], "--add", "nightly", "--add", "before-upgrade")
    run(env, "verify", job["backup_id"])
    for args in (("backups",), ("jobs",), ("volumes",), ("targets", "list"), ("hosts",)):
        p = run(env, *args)
        lines = p.stdout.splitlines()
        assert lines and max(len(ln) for ln in lines) <= 80, (args, p.stdout)
        assert not p.stderr.strip(), (args, p.stderr)
    listed = run(env, "backups").stdout
    assert job["backup_id"] in listed and "ago" in listed and "ok" in listed
    assert job["id"] in run(env, "jobs").stdout
    human = run(env, "backup", name, "--format", "tar")
    assert human.stdout.count("\n") == 1 and "backup" in human.stdout  # one result line
    assert "?" not in human.stderr  # no progress bar ends at "0/? bytes ?"


def _loaded(p: subprocess.CompletedProcess[str]) -> set[str]:
    """The modules a ``python -X importtime`` process imported."""
    return {ln.split("|")[-1].strip() for ln in p.stderr.splitlines()
            if ln.startswith("import time:")}


def _reads(env: dict[str, str]) -> dict[str, tuple[bool, str]]:
    """Every read command's output (``--json`` and tables), times seen and ages aside."""
    out = {}
    for args in (("volumes", "--json"), ("backups", "--json"), ("jobs", "--json"),
                 ("backups", "--tag", "keep", "--json"), ("backups", "--pinned", "--json"),
                 ("jobs", "--limit", "2", "--json"), ("volumes",), ("backups",), ("jobs",)):
        p = run(env, *args, python=("-X", "importtime"))
        short = "sqlalchemy" not in _loaded(p)
        assert not [ln for ln in p.stderr.splitlines() if not ln.startswith("import time:")]
        text = re.sub(r'"seen_at": "[^"]*"', '"seen_at": "now"', p.stdout)
        if "--json" not in args:  # a table: ages ("24s ago") move on between the runs
            text = " ".join(re.sub(r"\b\d+[smhd]\b", "N", text).split())
        out[" ".join(args)] = (short, text)
    return out


def test_the_short_read_start_prints_what_the_full_start_prints(
        tmp_path: Path, docker_host_a: Any) -> None:
    env = env_for(tmp_path, docker_host_a)
    client = docker_host_a.client()
    vol = client.volumes.create("short-read", labels={"app.db-password": "s3cret", "t": "1"})
    Path(vol.attrs["Mountpoint"], "a.txt").write_text("a" * 5000)
    ctr = client.containers.run(busybox_image(docker_host_a), ["sleep", "600"], detach=True,
                                network_mode="none", name="short-read-app",
                                volumes={"short-read": {"bind": "/data", "mode": "rw"}})
    try:
        first = json.loads(run(env, "backup", "short-read", "--format", "tar",
                               "--json").stdout)
        run(env, "backup", "short-read", "--json")  # repo
        run(env, "tag", first["backup_id"], "--add", "keep")
        run(env, "pin", first["backup_id"])
        run(env, "verify", first["backup_id"])
        run(env, "policy", "create", "p1", "--selector", "t=1", "--schedule", "@daily")
        short = _reads(env)
        full = _reads(env | {"VOLKEEPER_SHORT_READS": "false"})
    finally:
        ctr.remove(force=True)
    assert all(s for s, _ in short.values()), {k: s for k, (s, _) in short.items()}
    assert not any(s for s, _ in full.values())
    assert {k: v for k, (_, v) in short.items()} == {k: v for k, (_, v) in full.items()}
    volumes = json.loads(short["volumes --json"][1])
    mine = next(v for v in volumes if v["name"] == "short-read")
    assert mine["labels"]["app.db-password"] == "<redacted>" and mine["policy"] == "p1"
    assert [c["name"] for c in mine["containers"]] == ["short-read-app"]
    assert len(json.loads(short["backups --tag keep --json"][1])) == 1


def test_a_read_command_takes_the_full_start_when_there_is_work_to_do(
        tmp_path: Path, docker_host_a: Any) -> None:
    """Volumes that changed are registered, sizes measured again, and a job left running by
    a killed process is failed, as by any other command."""
    env = env_for(tmp_path, docker_host_a)
    client = docker_host_a.client()
    client.volumes.create("full-a")

    def volumes() -> tuple[bool, dict[str, Any]]:
        p = run(env, "volumes", "--json", python=("-X", "importtime"))
        return "sqlalchemy" not in _loaded(p), {v["name"]: v for v in json.loads(p.stdout)}

    assert not volumes()[0]  # a new home: the full start makes the database
    short, listed = volumes()
    assert short and "full-a" in listed
    vol = client.volumes.create("full-b")  # a new volume: registered by a full start
    short, listed = volumes()
    assert not short and "full-b" in listed
    Path(vol.attrs["Mountpoint"], "data").write_bytes(b"x" * 200_000)  # only a size
    short, listed = volumes()
    assert short and (listed["full-b"]["size_bytes"] or 0) >= 200_000
    # a job whose process was killed: the next read fails it (and releases its lock)
    from common.db import Job, JobState
    from common.db.session import Database

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    import socket

    db = Database(f"sqlite:///{tmp_path / 'volkeeper.db'}")
    with db.session() as s:
        s.add(Job(id="killedjob0000001", kind="backup", state=JobState.running,
                  host="laptop", volume="full-a", target="local", params={},
                  worker=f"laptop@{socket.gethostname()}:{dead}", active_lock="laptop/full-a"))
    db.dispose()
    p = run(env, "jobs", "--json", python=("-X", "importtime"))
    assert "sqlalchemy" in _loaded(p)
    job = next(j for j in json.loads(p.stdout) if j["id"] == "killedjob0000001")
    assert job["state"] == "failed" and "gone" in job["error"]
    assert volumes()[0]  # nothing left to do: short again

"""Two hosts backing up into one native repository at the same time (issue 3, "Bad input
and faults"): the fleet's two workers (two private dockerds) write ``--format repo``
snapshots into one S3 repository concurrently; both restore byte for byte and metadata for
metadata, on their own host and across hosts, the repository check passes, and content
both volumes share is stored once.

The first initialisation of an empty target is raced too: by the two hosts' workers (two
processes; one config wins the storage's put-if-absent, the other host opens it) and in
embedded mode (two backups in one process, serialised by the engine's lock).
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from common.repository import open_repository
from common.repository.check.checker import check_repository
from common.repository.core.snapshot import snapshot_ids
from common.storage.local import LocalBackend
from common.storage.s3 import S3Backend
from tests.fixtures.fleet import Fleet
from tests.integration.fleet.test_fleet import mountpoint, reference_copy, submit
from tests.treecmp import build_fidelity_tree, compare_trees

pytestmark = pytest.mark.integration

PASSPHRASE = "two hosts one repository"
REPO_ENV = {"VOLKEEPER_REPOSITORY_PASSWORD": PASSPHRASE, "VOLKEEPER_REPOSITORY_KDF_N": "16384",
            # slow enough that both backups are certainly running at the same time
            "VOLKEEPER_BANDWIDTH_LIMIT": str(6 << 20)}
SHARED = 8 << 20  # bytes of content that both volumes hold


@pytest.fixture
def repo_workers(fleet: Fleet) -> Iterator[None]:
    """Both hosts' workers restarted with the repository passphrase (and throttled)."""
    for host in ("host-a", "host-b"):
        fleet.stop_worker(host)
        fleet.start_worker(host, **REPO_ENV)
    yield
    for host in ("host-a", "host-b"):
        fleet.stop_worker(host, signal.SIGKILL)
        fleet.start_worker(host)


@pytest.fixture
def repo_target(fleet: Fleet, s3_server: Any) -> Iterator[tuple[str, S3Backend]]:
    """A new S3 target with an empty prefix; yields its name and a backend on it."""
    bucket = f"repo-{uuid.uuid4().hex[:10]}"
    s3_server.client().create_bucket(Bucket=bucket)
    name = f"shared-repo-{uuid.uuid4().hex[:6]}"
    with fleet.http as c:
        r = c.post("/targets", json={
            "name": name, "url": f"s3://{bucket}/fleet-repo",
            "options": {"endpoint_url": s3_server.endpoint_url, "path_style": True,
                        "region": s3_server.region},
            "credentials": {"access_key_id": s3_server.access_key_id,
                            "secret_access_key": s3_server.secret_access_key}})
        assert r.status_code == 201, r.text
    yield name, S3Backend(**s3_server.backend_kwargs(bucket) | {"prefix": "fleet-repo"})


def make_volume(fleet: Fleet, host: str, name: str, shared: bytes) -> Path:
    """Every fidelity item, a file both volumes share and 12 MiB only this one has."""
    fleet.docker[host].client().volumes.create(name)
    path = mountpoint(fleet, host, name)
    build_fidelity_tree(path / "app")
    (path / "shared.bin").write_bytes(shared)
    (path / "own.bin").write_bytes(os.urandom(12 << 20))
    fleet.wait_volume(host, name)
    return path


def backup(fleet: Fleet, host: str, volume: str, target: str) -> dict[str, Any]:
    return submit(fleet, "/backups", {"volume": volume, "host": host, "target": target,
                                      "format": "repo"})


def restore_and_compare(fleet: Fleet, backup_id: str, host: str, into: str,
                        reference: Path) -> None:
    done = fleet.wait_job(submit(fleet, "/restores", {"backup_id": backup_id, "host": host,
                                                      "into": into})["id"])
    assert done["state"] == "succeeded", done["error"]
    assert done["worker"].startswith(f"{host}@")
    assert compare_trees(reference, mountpoint(fleet, host, into)) == []


def test_two_hosts_back_up_into_one_repository_at_once_and_both_restore_everywhere(
        fleet: Fleet, repo_workers: None, repo_target: tuple[str, S3Backend],
        tmp_path: Path) -> None:
    target, backend = repo_target
    shared = os.urandom(SHARED)
    # host-a initialises the repository with a first backup that holds the shared content
    fleet.docker["host-a"].client().volumes.create("seed")
    (mountpoint(fleet, "host-a", "seed") / "shared.bin").write_bytes(shared)
    fleet.wait_volume("host-a", "seed")
    seed = fleet.wait_job(backup(fleet, "host-a", "seed", target)["id"])
    assert seed["state"] == "succeeded", seed["error"]

    # the same volume name on both hosts, backed up at the same time
    refs = {}
    for host in ("host-a", "host-b"):
        path = make_volume(fleet, host, "app-data", shared)
        refs[host] = reference_copy(path, tmp_path / host)
    jobs = {host: backup(fleet, host, "app-data", target) for host in ("host-a", "host-b")}
    done = {host: fleet.wait_job(job["id"]) for host, job in jobs.items()}
    for host, job in done.items():
        assert job["state"] == "succeeded", job["error"]
        assert job["worker"].startswith(f"{host}@") and job["result"]["format"] == "repo"
    a, b = done["host-a"], done["host-b"]
    assert a["started_at"] < b["finished_at"] and b["started_at"] < a["finished_at"], \
        "the two backups did not run at the same time"

    for job in done.values():  # the shared content was stored once, by the seed backup
        result = job["result"]
        assert result["logical_bytes"] > (12 << 20) + SHARED
        # new random content: own.bin (12 MiB) and the fidelity tree's big.bin (3 MiB);
        # storing shared.bin again would add another 8 MiB
        own = (12 << 20) + (3 << 20)
        assert own < result["stored_bytes"] < own + SHARED // 2, result

    repo = open_repository(backend, PASSPHRASE)
    assert len(snapshot_ids(repo)) == 3
    report = check_repository(repo, read_data=True)
    assert report.ok, [p.to_dict() for p in report.problems]
    for job in done.values():
        verified = fleet.wait_job(submit(fleet, f"/backups/{job['backup_id']}/verify", {})["id"])
        assert verified["state"] == "succeeded" and verified["result"]["ok"] is True, verified

    restore_and_compare(fleet, a["backup_id"], "host-a", "app-data-a", refs["host-a"])
    restore_and_compare(fleet, b["backup_id"], "host-b", "app-data-b", refs["host-b"])
    # across hosts: each host restores what the other backed up
    restore_and_compare(fleet, a["backup_id"], "host-b", "app-data-from-a", refs["host-a"])
    restore_and_compare(fleet, b["backup_id"], "host-a", "app-data-from-b", refs["host-b"])


def test_the_first_backups_of_two_hosts_into_an_empty_target_create_one_repository(
        fleet: Fleet, repo_workers: None, repo_target: tuple[str, S3Backend],
        tmp_path: Path) -> None:
    target, backend = repo_target
    refs = {}
    for host in ("host-a", "host-b"):
        fleet.docker[host].client().volumes.create("first")
        path = mountpoint(fleet, host, "first")
        (path / "data.bin").write_bytes(os.urandom(8 << 20))  # > 1 s at the bandwidth limit
        (path / f"only-on-{host}.txt").write_text(host)
        fleet.wait_volume(host, "first")
        refs[host] = reference_copy(path, tmp_path / host)
    jobs = {host: backup(fleet, host, "first", target) for host in ("host-a", "host-b")}
    done = {host: fleet.wait_job(job["id"]) for host, job in jobs.items()}
    for job in done.values():
        assert job["state"] == "succeeded", job["error"]
    a, b = done["host-a"], done["host-b"]
    assert a["started_at"] < b["finished_at"] and b["started_at"] < a["finished_at"], \
        "the two backups did not run at the same time"
    repo = open_repository(backend, PASSPHRASE)
    assert len(snapshot_ids(repo)) == 2  # both in the one repository whose config won
    report = check_repository(repo, read_data=True)
    assert report.ok, [p.to_dict() for p in report.problems]
    restore_and_compare(fleet, done["host-a"]["backup_id"], "host-b", "first-from-a",
                        refs["host-a"])
    restore_and_compare(fleet, done["host-b"]["backup_id"], "host-a", "first-from-b",
                        refs["host-b"])


def test_two_first_backups_in_one_process_into_an_empty_target_create_one_repository(
        tmp_path: Path, docker_host_a: Any) -> None:
    """Embedded mode: two volumes backed up at once to a target without a repository. One
    backup creates the repository, the other opens it; both snapshots restore."""
    from pydantic import SecretStr

    from common.config import Settings
    from tests.fixtures.embedded import embedded_http

    client = docker_host_a.client()
    sources = {}
    for name in ("race-one", "race-two"):
        client.volumes.create(name)
        sources[name] = Path(client.volumes.get(name).attrs["Mountpoint"])
        build_fidelity_tree(sources[name])
        (sources[name] / "own.bin").write_bytes(os.urandom(4 << 20))
    settings = Settings(home=tmp_path / "home", docker_host=docker_host_a.url,
                        host_name="racer", repository_password=SecretStr(PASSPHRASE),
                        repository_kdf_n=2**14,
                        restore_device_nodes=True)  # the fidelity tree holds one
    with embedded_http(settings) as http:
        ids = [http.post("/api/v1/backups", json={"volume": name, "format": "repo"}).json()["id"]
               for name in sources]
        jobs = [wait_embedded(http, job_id) for job_id in ids]
        for job in jobs:
            assert job["state"] == "succeeded", job["error"]
        repo_dir = tmp_path / "home" / "backups" / "volkeeper" / "repo"
        assert len(list((repo_dir / "keys").iterdir())) == 1
        repo = open_repository(LocalBackend(tmp_path / "home" / "backups"), PASSPHRASE)
        assert len(snapshot_ids(repo)) == 2
        assert check_repository(repo, read_data=True).ok
        for name, job in zip(sources, jobs, strict=True):
            r = http.post("/api/v1/restores", json={"backup_id": job["backup_id"],
                                                    "into": f"{name}-copy"})
            assert r.status_code == 202, r.text
            restored = wait_embedded(http, r.json()["id"])
            assert restored["state"] == "succeeded", restored["error"]
            copy = Path(client.volumes.get(f"{name}-copy").attrs["Mountpoint"])
            assert compare_trees(sources[name], copy) == []


def wait_embedded(http: Any, job_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = http.get(f"/api/v1/jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish within {timeout}s: {json.dumps(job)}")

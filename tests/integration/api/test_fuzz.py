"""The OpenAPI schema fuzzed against a running API, in both modes (issue 11): an embedded
``volkeeper serve`` and the fleet's API (uvicorn, PostgreSQL, Redis, a real Celery
worker), each with the admin token, on a private dockerd of its own (what the fuzzer
restores, replaces or forgets is nobody else's). No response is a server error (5xx) and
none holds a secret of the set-up: the admin token, the S3 access key id and secret key,
a target's repository passphrase, the fleet's secret key and repository passphrase.

Bounded for CI (seed 1, 4 examples per operation variant, 60 s per mode). The figure in
docs/reliability.md comes from the longer run::

    VOLKEEPER_TEST_FUZZ_SECONDS=600 VOLKEEPER_TEST_FUZZ_EXAMPLES=40 \\
        python -m pytest -p no:cacheprovider -s tests/integration/api/test_fuzz.py
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.apifuzz import FuzzReport, fuzz_api
from tests.fixtures.embedded import api_token
from tests.fixtures.fleet import TOKEN, Fleet, running_fleet
from tests.fixtures.util import wait_for

pytestmark = pytest.mark.integration

SEED = int(os.environ.get("VOLKEEPER_TEST_FUZZ_SEED", "1"))
SECONDS = float(os.environ.get("VOLKEEPER_TEST_FUZZ_SECONDS", "60"))
EXAMPLES = int(os.environ.get("VOLKEEPER_TEST_FUZZ_EXAMPLES", "4"))


@pytest.fixture(scope="module")
def fuzz_docker(dockerd_factory: Any) -> Any:
    """A dockerd only the fuzzed installations use."""
    return dockerd_factory.start("fuzz")


@pytest.fixture
def embedded_env(embedded_env: dict[str, str], fuzz_docker: Any) -> dict[str, str]:
    return embedded_env | {"VOLKEEPER_DOCKER_HOST": fuzz_docker.url}


@pytest.fixture
def fuzz_fleet(postgres_server: Any, redis_server: Any, fuzz_docker: Any,
               tmp_path: Path) -> Iterator[Fleet]:
    """A fleet of its own: its database, Redis database 1 (its own queues), one worker."""
    database_url = postgres_server.create_database(f"fuzz_{uuid.uuid4().hex[:8]}")
    redis_url = redis_server.url.rsplit("/", 1)[0] + "/1"
    (tmp_path / "fleet").mkdir()
    with running_fleet(tmp_path / "fleet", database_url, redis_url, {"host-f": fuzz_docker},
                       {"VOLKEEPER_PASSWORD_FILE_DIR": str(tmp_path),
                        "VOLKEEPER_ALLOWED_TARGET_ROOTS": str(tmp_path)}) as f:
        yield f


def set_up(http: httpx.Client, docker: Any, host: str, s3_server: Any, tmp: Path
           ) -> tuple[dict[str, str], dict[str, str]]:
    """An S3 target with credentials and a password file, a volume backed up into it.
    Returns the needles (secrets the responses must never hold) and the pins (existing
    objects for path parameters)."""
    tag = uuid.uuid4().hex
    needles = {"S3 access key id": f"AKIAFUZZ{tag[:12].upper()}",
               "S3 secret key": f"fuzz-secret-access-key-{tag}",
               "repository passphrase": f"fuzz passphrase {tag}"}
    keyfile = tmp / "fuzz.key"
    keyfile.write_text(needles["repository passphrase"] + "\n")
    bucket = f"fuzz-{tag[:10]}"
    s3_server.client().create_bucket(Bucket=bucket)
    r = http.post("/targets", json={
        "name": "fuzzed", "url": f"s3://{bucket}/vk",
        "options": {"endpoint_url": s3_server.endpoint_url, "path_style": True,
                    "region": s3_server.region, "password_file": str(keyfile)},
        "credentials": {"access_key_id": needles["S3 access key id"],
                        "secret_access_key": needles["S3 secret key"]}})
    assert r.status_code == 201, r.text
    docker.client().volumes.create("fuzz-vol")
    mount = Path(docker.client().volumes.get("fuzz-vol").attrs["Mountpoint"])
    (mount / "data.txt").write_text("fuzz data\n" * 100)
    wait_for(lambda: "fuzz-vol" in {v["name"] for v in http.get("/volumes").json()}, 30,
             "the volume in the inventory", interval=0.3)
    r = http.post("/backups", json={"volume": "fuzz-vol", "host": host, "target": "fuzzed",
                                    "format": "repo"})
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    wait_for(lambda: http.get(f"/jobs/{job_id}").json()["state"] in ("succeeded", "failed"),
             120, "the set-up backup", interval=0.3)
    job = http.get(f"/jobs/{job_id}").json()
    assert job["state"] == "succeeded", job["error"]
    pins = {"host": host, "volume": "fuzz-vol", "target": "fuzzed",
            "backup": job["backup_id"], "job": job_id}
    return needles, pins


def check(report: FuzzReport, mode: str) -> None:
    print(f"fuzz ({mode}, seed {SEED}): {report.summary()}")
    for line in report.server_errors + report.leaks + report.transport_errors:
        print("  " + line)
    assert report.requests >= 100, report.summary()
    assert report.statuses[200] + report.statuses[201] + report.statuses[202] > 0
    assert report.server_errors == []
    assert report.leaks == []
    assert report.transport_errors == []


def test_fuzzing_the_embedded_api_finds_no_server_error_and_no_leaked_secret(
        embedded_server: str, embedded_env: dict[str, str], fuzz_docker: Any,
        s3_server: Any, tmp_path: Path) -> None:
    token = api_token(embedded_env)
    with httpx.Client(base_url=embedded_server + "/api/v1", timeout=30,
                      headers={"Authorization": f"Bearer {token}"}) as http:
        needles, pins = set_up(http, fuzz_docker, "laptop", s3_server, tmp_path)
    needles["admin token"] = token
    report = fuzz_api(embedded_server, token, needles, seed=SEED, examples=EXAMPLES,
                      budget=SECONDS, pins=pins)
    check(report, "embedded")


def test_fuzzing_the_fleet_api_finds_no_server_error_and_no_leaked_secret(
        fuzz_fleet: Fleet, fuzz_docker: Any, s3_server: Any, tmp_path: Path) -> None:
    with fuzz_fleet.http as http:
        needles, pins = set_up(http, fuzz_docker, "host-f", s3_server, tmp_path)
    needles |= {"admin token": TOKEN,
                "fleet secret key": fuzz_fleet.env["VOLKEEPER_SECRET_KEY"],
                "fleet repository passphrase": fuzz_fleet.env["VOLKEEPER_REPOSITORY_PASSWORD"]}
    report = fuzz_api(fuzz_fleet.api_url, TOKEN, needles, seed=SEED, examples=EXAMPLES,
                      budget=SECONDS, pins=pins)
    check(report, "fleet")

"""`volkeeper job ID --release`, run as a whole embedded command: the operator's override
for a stuck lock fails the job, frees the volume for the next job and says who did it.
Catalog commands never ask Docker, so this needs no engine."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.orm import Session

from common.config import Settings
from common.db import Database, jobs
from common.db.migrate import upgrade

REPO = Path(__file__).resolve().parents[3]


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOLKEEPER_")}
    env |= {"VOLKEEPER_HOME": str(home), "VOLKEEPER_HOST_NAME": "laptop",
            "VOLKEEPER_DOCKER_HOST": f"unix://{home}/no-docker.sock"}
    return subprocess.run([sys.executable, "-m", "cli.main", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=60)


@contextlib.contextmanager
def catalog(home: Path) -> Iterator[Session]:
    """The embedded catalog of ``home`` (created at the current schema), one session."""
    db = Database(Settings(home=home).effective_database_url)
    upgrade(db, quiet=True)
    try:
        with db.session() as s:
            yield s
    finally:
        db.dispose()


def _stuck_job(home: Path) -> str:
    with catalog(home) as s:
        job = jobs.create_job(s, kind="restore", host="laptop", volume="pgdata")
        jobs.start_job(s, job.id, "laptop@elsewhere:4242")
        return job.id


def test_release_fails_the_stuck_job_and_frees_its_volume(tmp_path: Path) -> None:
    job_id = _stuck_job(tmp_path)
    p = _cli(tmp_path, "job", job_id, "--release", "--reason", "host burned down", "--json")
    assert p.returncode == 0, p.stderr
    job = json.loads(p.stdout)
    assert job["state"] == "failed"
    assert "released by operator cli:local-user" in job["error"]
    assert "host burned down" in job["error"]
    assert "Docker" not in p.stderr  # a catalog command leaves Docker alone
    db = Database(Settings(home=tmp_path).effective_database_url)
    with db.session() as s:  # the volume takes a new job again
        jobs.create_job(s, kind="backup", host="laptop", volume="pgdata")


def test_releasing_a_job_without_a_lock_says_there_is_nothing_to_release(
        tmp_path: Path) -> None:
    job_id = _stuck_job(tmp_path)
    assert _cli(tmp_path, "job", job_id, "--release").returncode == 0
    again = _cli(tmp_path, "job", job_id, "--release")
    assert again.returncode == 1
    assert "holds no lock" in again.stderr and "nothing to release" in again.stderr
    assert "Traceback" not in again.stderr

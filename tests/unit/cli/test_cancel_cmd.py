"""`volkeeper cancel JOB_ID`, run as a whole embedded command: a queued job is cancelled
at once and its volume freed; a running job of another process is asked to stop (it keeps
running until that process sees it); a finished job is refused with a clear message; the
job list shows the new state. Catalog commands never ask Docker: no engine needed."""

from __future__ import annotations

import json
from pathlib import Path

from common.config import Settings
from common.db import Database, jobs
from common.db.migrate import upgrade
from tests.unit.cli.test_release import _cli


def _db(home: Path) -> Database:
    db = Database(Settings(home=home).effective_database_url)
    upgrade(db, quiet=True)
    return db


def test_a_queued_job_is_cancelled_and_its_volume_freed(tmp_path: Path) -> None:
    db = _db(tmp_path)
    with db.session() as s:
        job_id = jobs.create_job(s, kind="backup", host="laptop", volume="pgdata").id
    p = _cli(tmp_path, "cancel", job_id, "--json")
    assert p.returncode == 0, p.stderr
    job = json.loads(p.stdout)
    assert job["state"] == "cancelled" and job["cancel_requested_by"] == "cli:local-user"
    with db.session() as s:
        jobs.create_job(s, kind="backup", host="laptop", volume="pgdata")
    listed = _cli(tmp_path, "jobs")
    assert "cancelled" in listed.stdout
    plain = _cli(tmp_path, "cancel", job_id)
    assert plain.returncode == 1
    assert f"job {job_id} (backup) has already finished: cancelled" in plain.stderr
    assert "only a queued or running job can be cancelled" in plain.stderr
    assert "Traceback" not in plain.stderr
    audit = json.loads(_cli(tmp_path, "audit", "--json").stdout)
    outcomes = [a["outcome"] for a in audit if a["action"] == "job.cancel"]  # newest first
    assert len(outcomes) == 2 and outcomes[1] == "ok"
    assert outcomes[0].startswith("error: conflict: ")


def test_a_running_job_is_asked_to_stop(tmp_path: Path) -> None:
    db = _db(tmp_path)
    with db.session() as s:
        job = jobs.create_job(s, kind="restore", host="laptop", volume="pgdata")
        jobs.start_job(s, job.id, "laptop@elsewhere:4242")
        job_id = job.id
    p = _cli(tmp_path, "cancel", job_id)
    assert p.returncode == 0, p.stderr
    assert f"job {job_id} (restore) is asked to stop" in p.stdout
    with db.session() as s:
        row = jobs.get_job(s, job_id)
        assert str(row.state) == "running"
        assert jobs.cancel_requested(s, job_id) == "cli:local-user"


def test_an_unknown_job_is_not_found(tmp_path: Path) -> None:
    _db(tmp_path)
    p = _cli(tmp_path, "cancel", "nosuchjob")
    assert p.returncode != 0 and "nosuchjob" in p.stderr and "Traceback" not in p.stderr

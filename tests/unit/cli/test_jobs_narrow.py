"""`volkeeper jobs` at 80 columns: a long error ends in … on its row, which stays one line
(it wrapped into three fragments); `volkeeper job ID` and --json keep the whole text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.db import jobs
from common.db.models import JobState
from tests.unit.cli.test_release import _cli, catalog

ERROR = ("restore refused: volume 'small-r1' is not empty; restoring would mix or "
         "overwrite its content")


def test_a_long_error_keeps_its_job_on_one_line(tmp_path: Path) -> None:
    with catalog(tmp_path) as s:
        for volume, error in (("small-r1", ERROR), ("pgdata", None)):
            job = jobs.create_job(s, kind="restore", host="laptop", volume=volume)
            jobs.start_job(s, job.id, "laptop@here:1")
            jobs.finish_job(s, job.id, JobState.failed if error else JobState.succeeded,
                            error=error)
    with pytest.MonkeyPatch.context() as m:
        m.setenv("COLUMNS", "80")
        p = _cli(tmp_path, "jobs")
        whole = _cli(tmp_path, "jobs", "--json")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert all(len(line.rstrip()) <= 80 for line in lines), p.stdout
    rows = [line for line in lines[3:] if line.strip()]
    assert len(rows) == 2, p.stdout  # one line per job
    failed = next(r for r in rows if "failed" in r)
    assert "restore refused: volume" in failed and failed.rstrip().endswith("…"), p.stdout
    assert "small-r1" in failed and "pgdata" in p.stdout  # the volume column stays
    assert ERROR in [j["error"] for j in json.loads(whole.stdout)]

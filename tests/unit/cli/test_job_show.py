"""`volkeeper job ID` shows a job in words: its progress as a line (not the raw record,
Python's ``None``/``False`` and all) and its result's values (the backup id of a backup,
the counts of a restore), run as a whole embedded command (no Docker needed)."""

from __future__ import annotations

from pathlib import Path

from common.db import jobs
from common.db.models import JobState
from tests.unit.cli.test_release import _cli, catalog


def _finished_backup(home: Path) -> str:
    with catalog(home) as s:
        job = jobs.create_job(s, kind="backup", host="laptop", volume="pgdata")
        jobs.start_job(s, job.id, "laptop@here:1")
        jobs.heartbeat(s, job.id, {"phase": "done", "bytes_done": 3 << 20,
                                   "bytes_total": 3 << 20, "files_done": 11,
                                   "files_total": 11, "percent": 100.0,
                                   "estimated": False, "eta_seconds": 0.0,
                                   "message": None})
        jobs.finish_job(s, job.id, JobState.succeeded,
                        result={"backup_id": "b0b0b0b0b0b0b0b0", "file_count": 11,
                                "excludes": [], "checksum": "", "dry_run": False})
        return job.id


def test_a_job_is_shown_in_words(tmp_path: Path) -> None:
    job_id = _finished_backup(tmp_path)
    p = _cli(tmp_path, "job", job_id)
    assert p.returncode == 0, p.stderr
    text = " ".join(p.stdout.split())
    assert "progress: done: 3.0 MiB of 3.0 MiB (100%), 11 of 11 files" in text
    assert "ETA" not in text
    assert "result: backup_id=b0b0b0b0b0b0b0b0, file_count=11" in text
    for raw in ("{'phase'", "None", "False", "excludes", "checksum"):
        assert raw not in text


def test_brackets_in_an_error_are_shown_as_written(tmp_path: Path) -> None:
    """The job's fields are text, not rich markup: ``[bold]`` or ``[abc]`` in an error
    (a glob the user gave, a path) stays in the line."""
    with catalog(tmp_path) as s:
        job = jobs.create_job(s, kind="backup", host="laptop", volume="pgdata")
        jobs.start_job(s, job.id, "laptop@here:1")
        jobs.finish_job(s, job.id, JobState.failed,
                        error="exclude pattern 'logs/[abc' is bad: [bold]x[/bold]")
    p = _cli(tmp_path, "job", job.id)
    assert p.returncode == 1, p.stderr
    assert "exclude pattern 'logs/[abc' is bad: [bold]x[/bold]" in " ".join(p.stdout.split())


def test_the_warnings_of_a_job_are_shown_not_only_in_json(tmp_path: Path) -> None:
    """A failed post hook, a container not started again, a misspelt label: the one-shot
    `backup` printed them, `job ID` (a fleet's backup, looked at later) did not."""
    warning = ("container app was stopped and could not be started again: [gone] (it is "
               "still down: docker start app)")
    with catalog(tmp_path) as s:
        job = jobs.create_job(s, kind="backup", host="laptop", volume="pgdata")
        jobs.start_job(s, job.id, "laptop@here:1")
        jobs.finish_job(s, job.id, JobState.succeeded,
                        result={"backup_id": "b0b0b0b0b0b0b0b0", "hook_warnings": [warning]})
    p = _cli(tmp_path, "job", job.id)
    assert p.returncode == 0, p.stderr
    assert f"warning: {warning}" in " ".join(p.stdout.split())

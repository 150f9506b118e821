"""A one-shot ``volkeeper`` killed after it queued a job but before the job started: the
next command fails that job at once (its volume is free again) instead of leaving it
queued, holding the volume's lock, until the queued-job timeout (6 h)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from common import procs
from common.config import Settings
from common.db import jobs
from common.db.migrate import upgrade
from common.jobs.context import JobContext
from common.jobs.inprocess import InProcessDispatcher
from common.jobs.names import TASK_BACKUP


def _ctx(tmp_path: Path) -> JobContext:
    ctx = JobContext(Settings(home=tmp_path, host_name="h1"))
    upgrade(ctx.db)
    return ctx


def test_a_job_queued_by_a_killed_process_is_failed_and_frees_its_volume(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = _ctx(tmp_path)
    with ctx.db.session() as s:
        job_id = jobs.create_job(s, kind="backup", host="h1", volume="vol").id
    dispatcher = InProcessDispatcher(ctx)
    submitted: list[Any] = []
    # the process is killed before the pool's thread starts the task
    monkeypatch.setattr(dispatcher.pool, "submit", lambda *a: submitted.append(a))
    dispatcher.send(TASK_BACKUP, "h1", {"job_id": job_id})
    assert submitted
    machine = socket.gethostname()
    with ctx.db.session() as s:
        job = jobs.get_job(s, job_id)
        assert job.state == "queued" and job.worker == f"h1@{machine}:{os.getpid()}"
        # a live owner (another command running right now): left alone
        assert jobs.sweep_orphaned(s, "h1", machine, lambda pid: True) == []
    with ctx.db.session() as s:
        assert jobs.sweep_orphaned(s, "h1", machine, lambda pid: False) == [job_id]
    with ctx.db.session() as s:
        job = jobs.get_job(s, job_id)
        assert job.state == "failed" and job.active_lock is None
        assert "killed before the job started" in (job.error or "")
        jobs.create_job(s, kind="backup", host="h1", volume="vol")  # the volume is free


def test_an_unclaimed_queued_job_is_left_to_the_queued_job_timeout(tmp_path: Path) -> None:
    """A fleet job waits queued for a worker: no process on this machine owns it."""
    ctx = _ctx(tmp_path)
    with ctx.db.session() as s:
        job_id = jobs.create_job(s, kind="backup", host="h1", volume="vol").id
    with ctx.db.session() as s:
        assert jobs.sweep_orphaned(s, "h1", socket.gethostname(), lambda pid: False) == []
        assert jobs.get_job(s, job_id).state == "queued"


def test_a_killed_process_not_yet_reaped_counts_as_dead() -> None:
    """kill -9 of a CLI whose parent does not reap it (a container's pid 1): a zombie runs
    nothing, so its jobs and locks are not kept as if it were alive."""
    proc = subprocess.Popen(["sleep", "30"])
    try:
        assert procs.pid_alive(proc.pid)
        proc.kill()
        deadline = time.monotonic() + 5
        while not procs.is_zombie(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not procs.pid_alive(proc.pid)  # a zombie until reaped below
    finally:
        proc.wait()
    assert not procs.pid_alive(proc.pid)

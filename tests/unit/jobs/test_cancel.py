"""Cancelling jobs: a queued job ends ``cancelled`` at once, a running one stops at its
body's next progress call (the engine cleans up as after a failure) and ends ``cancelled``
with nothing recorded; a finished job cannot be cancelled (409); a rollback in progress is
not interrupted by the cancellation."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from common.db import JobState, catalog, jobs
from common.errors import Conflict, JobCancelled, RolledBack
from common.jobs import record, runner
from common.jobs.context import JobContext
from common.jobs.release import cancel_job
from common.progress import ProgressTracker
from tests.unit.jobs.test_fencing import _get, _job, _outcome, ctx

__all__ = ["ctx"]


def _run(ctx: JobContext, job_id: str, body: Any) -> threading.Thread:
    t = threading.Thread(target=runner.run_job, args=(ctx, job_id, body))
    t.start()
    return t


def test_a_queued_job_is_cancelled_at_once_and_its_message_is_dropped(
        ctx: JobContext) -> None:
    job_id = _job(ctx)
    job = cancel_job(ctx.db, job_id, by="alice")
    assert job.state == JobState.cancelled and job.active_lock is None
    assert "cancelled by alice" in (job.error or "")
    ran = []
    runner.run_job(ctx, job_id, lambda *a: ran.append(1))  # the message arrives later
    assert ran == [] and _get(ctx, job_id).state == JobState.cancelled
    _job(ctx)  # the volume is free again


def test_a_finished_job_cannot_be_cancelled(ctx: JobContext) -> None:
    job_id = _job(ctx)
    runner.run_job(ctx, job_id, lambda c, j, t: runner.Outcome({"ok": True}))
    with pytest.raises(Conflict, match="already finished: succeeded"):
        cancel_job(ctx.db, job_id, by="alice")
    assert _get(ctx, job_id).state == JobState.succeeded


def test_a_running_job_stops_at_its_next_progress_call_and_records_nothing(
        ctx: JobContext) -> None:
    job_id = _job(ctx)
    running, ended = threading.Event(), []
    cleaned = []

    def body(c: JobContext, job: Any, tracker: ProgressTracker) -> runner.Outcome:
        running.set()
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                tracker.add(1)
                time.sleep(0.01)
            backup_id = record.backup(c, job, _outcome())
            return runner.Outcome({"backup_id": backup_id}, backup_id)
        except BaseException as e:
            ended.append(e)
            raise
        finally:
            cleaned.append("containers started again")

    t = _run(ctx, job_id, body)
    assert running.wait(10)
    started = time.monotonic()
    assert cancel_job(ctx.db, job_id, by="alice").state == JobState.running
    t.join(15)
    assert not t.is_alive() and time.monotonic() - started < 5
    assert isinstance(ended[0], JobCancelled) and cleaned
    job = _get(ctx, job_id)
    assert job.state == JobState.cancelled and job.active_lock is None
    assert job.error == "cancelled by alice" and job.progress["phase"] == "cancelled"
    with ctx.db.session() as s:
        assert catalog.list_backups(s) == []
    with pytest.raises(Conflict, match="already finished: cancelled"):
        cancel_job(ctx.db, job_id, by="bob")


def test_a_rollback_under_way_is_not_interrupted_and_the_job_ends_cancelled(
        ctx: JobContext) -> None:
    job_id = _job(ctx)
    running, rolled_back = threading.Event(), []

    def body(c: JobContext, job: Any, tracker: ProgressTracker) -> runner.Outcome:
        running.set()
        try:
            while True:
                tracker.add(1)
                time.sleep(0.01)
        except JobCancelled as e:
            with tracker.shielded():  # as replace._roll_back does
                for _ in range(50):
                    tracker.add(1)
                    time.sleep(0.002)
                rolled_back.append(True)
            raise RolledBack(f"restore failed ({e}); the volume was put back",
                             {"replace_state": "rolled_back"}) from e

    t = _run(ctx, job_id, body)
    assert running.wait(10)
    cancel_job(ctx.db, job_id, by="alice")
    t.join(15)
    job = _get(ctx, job_id)
    assert rolled_back == [True]
    assert job.state == JobState.cancelled
    assert job.error.startswith("cancelled by alice: restore failed")
    assert job.result == {"replace_state": "rolled_back"}


def test_a_cancel_that_comes_after_the_work_is_done_leaves_the_job_succeeded(
        ctx: JobContext) -> None:
    job_id = _job(ctx)

    def body(c: JobContext, job: Any, tracker: ProgressTracker) -> runner.Outcome:
        tracker.add(1)
        with c.db.session() as s:
            jobs.request_cancel(s, job.id, by="alice")
        return runner.Outcome({"done": True})

    runner.run_job(ctx, job_id, body)
    assert _get(ctx, job_id).state == JobState.succeeded


def test_a_cancelled_job_whose_worker_died_before_it_stopped_ends_cancelled(
        ctx: JobContext) -> None:
    from datetime import timedelta

    job_id = _job(ctx)
    with ctx.db.session() as s:
        jobs.start_job(s, job_id, "h1@gone:1")
    cancel_job(ctx.db, job_id, by="alice")
    time.sleep(0.01)
    with ctx.db.session() as s:
        assert jobs.sweep_stale(s, running_after=timedelta(0),
                                queued_after=timedelta(hours=6)) == [job_id]
    job = _get(ctx, job_id)
    assert job.state == JobState.cancelled and job.active_lock is None
    assert job.error.startswith("cancelled by alice; worker h1@gone:1 stopped reporting")


def test_the_cancelled_outcome_is_logged_as_the_job_outcome(
        ctx: JobContext, caplog: pytest.LogCaptureFixture) -> None:
    """The embedded CLI prints a cancelled job's error itself; the runner's warning of the
    same outcome is marked so the one-shot handler leaves it out (not printed twice)."""
    job_id = _job(ctx)
    running = threading.Event()

    def body(c: JobContext, job: Any, tracker: ProgressTracker) -> runner.Outcome:
        running.set()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            tracker.add(1)
            time.sleep(0.01)
        return runner.Outcome({})

    with caplog.at_level("WARNING", logger=runner.log.name):
        t = _run(ctx, job_id, body)
        assert running.wait(10)
        cancel_job(ctx.db, job_id, by="alice")
        t.join(15)
    outcome = [r for r in caplog.records if r.getMessage() == f"job {job_id} cancelled by alice"]
    assert len(outcome) == 1 and getattr(outcome[0], runner.OUTCOME, False)

"""Running jobs are fenced: times come from the database, a job failed by the sweep or an
operator stops at its body's next progress call and records nothing, a redelivered message
does not fail a live job, and recovery never touches a volume whose restore still runs.

The ``check_*`` functions take a ``Database`` so the PostgreSQL lane
(tests/integration/fleet/test_fencing_pg.py) runs the same cases."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from common.config import Settings
from common.db import Database, JobState, catalog, hosts, jobs
from common.db.migrate import upgrade
from common.engine.records import BackupOutcome
from common.errors import Conflict
from common.jobs import host, owners, record, runner
from common.jobs.context import JobContext
from common.jobs.release import release_job
from common.progress import MemoryProgressBus, ProgressTracker

STALE = timedelta(minutes=2)
HERE = socket.gethostname()


@contextlib.contextmanager
def clock(monkeypatch: pytest.MonkeyPatch, minutes: float) -> Iterator[None]:
    """This process's wall clock off by ``minutes`` for the block (the time source the job
    and host queries would use if they trusted the local clock)."""
    import common.db.hosts
    import common.db.jobs
    import common.db.models

    def skewed() -> datetime:
        return datetime.now(UTC) + timedelta(minutes=minutes)

    with monkeypatch.context() as m:
        for mod in (common.db.models, common.db.jobs, common.db.hosts):
            m.setattr(mod, "utcnow", skewed, raising=False)
        yield


def check_a_skewed_clock_neither_fails_a_live_job_nor_shows_its_host_offline(
        db: Database, monkeypatch: pytest.MonkeyPatch, worker_off: float,
        sweeper_off: float) -> None:
    with db.session() as s:
        job_id = jobs.create_job(s, kind="backup", host="h1", volume="data").id
    with clock(monkeypatch, worker_off):  # the worker, heartbeating
        with db.session() as s:
            hosts.register_host(s, "h1", docker_version="28", worker_version="t")
        with db.session() as s:
            assert jobs.start_job(s, job_id, "h1@box:1") is not None
        with db.session() as s:
            jobs.heartbeat(s, job_id, {"phase": "backing up"})
            hosts.touch_host(s, "h1")
    with clock(monkeypatch, sweeper_off):  # the control plane, judging
        with db.session() as s:
            failed = jobs.sweep_stale(s, running_after=STALE, queued_after=timedelta(hours=6))
        with db.session() as s:
            online = hosts.is_online(hosts.get_host(s, "h1"), STALE)
            state = jobs.get_job(s, job_id).state
    assert failed == [] and state == JobState.running
    assert online


def check_times_are_the_databases_and_a_dead_heartbeat_is_still_judged_stale(
        db: Database) -> None:
    with db.session() as s:
        job_id = jobs.create_job(s, kind="backup", host="h1", volume="data").id
    with db.session() as s:
        jobs.start_job(s, job_id, "h1@box:1")
    with db.session() as s:
        job = jobs.get_job(s, job_id)
        assert job.started_at is not None and job.heartbeat_at is not None
        assert abs((job.started_at - datetime.now(UTC)).total_seconds()) < 5
        assert job.started_at.tzinfo is not None
        job.heartbeat_at = job.heartbeat_at - timedelta(minutes=5)
    with db.session() as s:
        assert jobs.sweep_stale(s, running_after=STALE,
                                queued_after=timedelta(hours=6)) == [job_id]
    with db.session() as s:
        job = jobs.get_job(s, job_id)
        assert job.finished_at is not None and job.finished_at >= job.started_at
        assert "stopped reporting (last heartbeat 300s ago)" in (job.error or "")


def check_only_the_owning_worker_heartbeats_and_finishes_a_running_job(db: Database) -> None:
    with db.session() as s:
        job_id = jobs.create_job(s, kind="backup", host="h1", volume="data").id
    with db.session() as s:
        jobs.start_job(s, job_id, "h1@box:1")
    with db.session() as s:
        assert jobs.heartbeat(s, job_id, {}, "h1@box:1") is True
        assert jobs.heartbeat(s, job_id, {}, "h1@box:2") is False
        assert jobs.finish_job(s, job_id, JobState.succeeded, worker="h1@box:2") is None
    with db.session() as s:
        jobs.sweep_stale(s, running_after=timedelta(0), queued_after=timedelta(hours=6))
    with db.session() as s:  # failed by the sweep: the worker's late finish changes nothing
        assert jobs.heartbeat(s, job_id, {}, "h1@box:1") is False
        assert jobs.finish_job(s, job_id, JobState.succeeded, worker="h1@box:1") is None
        assert jobs.get_job(s, job_id).state == JobState.failed


def sqlite_db(tmp_path: Path) -> Database:
    db = Database(f"sqlite:///{tmp_path / 'vk.db'}")
    upgrade(db)
    return db


@pytest.mark.parametrize(("worker_off", "sweeper_off"), [(-10, 0), (0, 10), (10, 0), (0, -10)],
                         ids=["worker-behind", "sweeper-ahead", "worker-ahead",
                              "sweeper-behind"])
def test_a_skewed_clock_neither_fails_a_live_job_nor_shows_its_host_offline(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, worker_off: float,
        sweeper_off: float) -> None:
    check_a_skewed_clock_neither_fails_a_live_job_nor_shows_its_host_offline(
        sqlite_db(tmp_path), monkeypatch, worker_off, sweeper_off)


def test_times_are_the_databases_and_a_dead_heartbeat_is_still_judged_stale(
        tmp_path: Path) -> None:
    check_times_are_the_databases_and_a_dead_heartbeat_is_still_judged_stale(
        sqlite_db(tmp_path))


def test_only_the_owning_worker_heartbeats_and_finishes_a_running_job(tmp_path: Path) -> None:
    check_only_the_owning_worker_heartbeats_and_finishes_a_running_job(sqlite_db(tmp_path))


# --- the runner: a job failed while its body runs ------------------------------------------


class FakeDocker:
    """Records what recovery would do to volumes."""

    def __init__(self) -> None:
        self.removed: list[str] = []

    def remove_volume(self, name: str) -> None:
        self.removed.append(name)


@pytest.fixture
def ctx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[JobContext]:
    monkeypatch.setattr(runner, "HEARTBEAT_EVERY", 0.05)
    c = JobContext(Settings(home=tmp_path, host_name="h1", progress_interval_seconds=0.02),
                   bus=MemoryProgressBus())
    upgrade(c.db)
    c.__dict__["docker"] = FakeDocker()
    with c.db.session() as s:
        catalog.ensure_target(s, "local", (tmp_path / "store").as_uri())
        hosts.register_host(s, "h1", docker_version="28", worker_version="t")
    yield c
    c.db.dispose()


def _job(ctx: JobContext, kind: str = "backup", volume: str = "data") -> str:
    with ctx.db.session() as s:
        return jobs.create_job(s, kind=kind, host="h1", volume=volume, target="local").id


def _get(ctx: JobContext, job_id: str) -> Any:
    with ctx.db.session() as s:
        return jobs.get_job(s, job_id)


def _outcome() -> BackupOutcome:
    return BackupOutcome(format="tar", key="volkeeper/archives/h1/data/x.tar",
                         manifest_key="volkeeper/archives/h1/data/x.tar.m", stored_bytes=1,
                         logical_bytes=1, file_count=1, checksum="0" * 64)


class Body:
    """A backup body that makes progress until told to stop making it, then (optionally)
    catalogs its backup; it notes how it ended."""

    def __init__(self, *, progress_after_fail: bool) -> None:
        self.progress_after_fail = progress_after_fail
        self.running = threading.Event()
        self.failed_elsewhere = threading.Event()
        self.ended: BaseException | None = None
        self.calls_after_fail = 0

    def __call__(self, ctx: JobContext, job: Any, tracker: ProgressTracker) -> runner.Outcome:
        try:
            self.running.set()
            while not self.failed_elsewhere.is_set():
                tracker.add(1)
                time.sleep(0.01)
            if self.progress_after_fail:
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    tracker.add(1)
                    self.calls_after_fail += 1
                    time.sleep(0.01)
            else:
                time.sleep(0.3)  # several heartbeats: the job is fenced, the body not told
            backup_id = record.backup(ctx, job, _outcome())
            return runner.Outcome({"backup_id": backup_id}, backup_id)
        except BaseException as e:
            self.ended = e
            raise


def _run_in_thread(ctx: JobContext, job_id: str, body: Body) -> threading.Thread:
    t = threading.Thread(target=runner.run_job, args=(ctx, job_id, body))
    t.start()
    assert body.running.wait(10)
    return t


def _sweep_now(ctx: JobContext) -> None:
    time.sleep(0.01)  # the last heartbeat is in the past, even at millisecond resolution
    with ctx.db.session() as s:
        jobs.sweep_stale(s, running_after=timedelta(0), queued_after=timedelta(hours=6))


@pytest.mark.parametrize("progress_after_fail", [True, False], ids=["progressing", "quiet"])
@pytest.mark.parametrize("who", ["sweep", "operator"])
def test_a_job_failed_while_its_body_runs_is_stopped_and_records_nothing(
        ctx: JobContext, who: str, progress_after_fail: bool) -> None:
    job_id = _job(ctx)
    body = Body(progress_after_fail=progress_after_fail)
    t = _run_in_thread(ctx, job_id, body)
    if who == "sweep":
        _sweep_now(ctx)
    else:
        release_job(ctx.db, job_id, by="alice", reason="worker hangs")
    body.failed_elsewhere.set()
    t.join(15)
    assert not t.is_alive()
    assert isinstance(body.ended, jobs.Fenced)
    if progress_after_fail:  # stopped at a progress call, within a few heartbeats
        assert body.calls_after_fail < 500
    job = _get(ctx, job_id)
    assert job.state == JobState.failed and job.active_lock is None
    assert ("stopped reporting" if who == "sweep" else "released by operator alice") in job.error
    with ctx.db.session() as s:
        assert catalog.list_backups(s) == []


def test_a_finish_after_the_job_was_failed_does_not_turn_it_into_succeeded(
        ctx: JobContext, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "HEARTBEAT_EVERY", 3600.0)  # the fence is not noticed early
    job_id = _job(ctx)
    failed = threading.Event()

    def body(ctx: JobContext, job: Any, tracker: ProgressTracker) -> runner.Outcome:
        tracker.add(1)
        _sweep_now(ctx)
        failed.set()
        return runner.Outcome({"all": "good"})

    runner.run_job(ctx, job_id, body)
    assert failed.is_set()
    job = _get(ctx, job_id)
    assert job.state == JobState.failed and job.result != {"all": "good"}


def test_heartbeats_that_cannot_be_written_for_the_stale_window_stop_the_job(
        ctx: JobContext) -> None:
    class Broken:
        @contextlib.contextmanager
        def session(self) -> Iterator[Any]:
            raise ConnectionError("database unreachable")
            yield

    broken = JobContext(ctx.settings, db=Broken())  # type: ignore[arg-type]
    tracker = runner.FencedTracker("j", None, 3600)
    beat = runner._Heartbeat(broken, "j", "h1@box:1", tracker, every=0, stale_after=0.2)
    beat({})
    tracker.add(1)  # not yet stale: the job goes on
    time.sleep(0.25)
    beat({})
    with pytest.raises(jobs.Fenced, match="no heartbeat could be recorded"):
        tracker.add(1)


# --- redelivery ----------------------------------------------------------------------------


def test_a_redelivered_message_for_a_running_job_does_not_fail_it(ctx: JobContext) -> None:
    job_id = _job(ctx)
    body = Body(progress_after_fail=False)
    t = _run_in_thread(ctx, job_id, body)
    # the same message again, to this process and to another live one on this machine
    runner.run_job(ctx, job_id, body)
    with subprocess.Popen(["sleep", "30"]) as other:
        try:
            with ctx.db.session() as s:
                assert jobs.start_job(s, job_id, f"h1@{HERE}:{other.pid}", stale_after=STALE,
                                      owner_dead=lambda j: owners.is_dead(s, j)) is None
        finally:
            other.kill()
    assert _get(ctx, job_id).state == JobState.running
    body.failed_elsewhere.set()
    t.join(15)
    job = _get(ctx, job_id)
    assert job.state == JobState.succeeded, job.error
    with ctx.db.session() as s:
        assert [b.id for b in catalog.list_backups(s)] == [job.backup_id]


# --- recovery of interrupted restores ------------------------------------------------------


def _interrupted_restore(ctx: JobContext, worker: str, volume: str = "into") -> str:
    """A restore writing into a volume it created, then failed by the sweep (lock kept)."""
    job_id = _job(ctx, kind="restore", volume=volume)
    with ctx.db.session() as s:
        jobs.start_job(s, job_id, worker)
    with ctx.db.session() as s:
        jobs.update_result(s, job_id, {"restore_state": "writing", "created_volume": True})
    _sweep_now(ctx)
    job = _get(ctx, job_id)
    assert job.state == JobState.failed and job.active_lock is not None
    return job_id


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_recovery_leaves_a_volume_alone_while_its_restore_still_runs(ctx: JobContext) -> None:
    docker: FakeDocker = ctx.__dict__["docker"]
    live = _interrupted_restore(ctx, owners.worker_name("h1"), "live")
    with owners.running_here(live), subprocess.Popen(["sleep", "30"]) as other:
        try:  # this process still runs the body of one, another live process the other's
            other_live = _interrupted_restore(ctx, f"h1@{HERE}:{other.pid}", "other")
            assert host.recover_interrupted(ctx) == []
        finally:
            other.kill()
    assert docker.removed == []
    assert _get(ctx, live).active_lock is not None
    assert _get(ctx, other_live).active_lock is not None


def test_recovery_undoes_a_restore_once_its_process_is_known_dead(ctx: JobContext) -> None:
    docker: FakeDocker = ctx.__dict__["docker"]
    dead = _interrupted_restore(ctx, f"h1@{HERE}:{_dead_pid()}", "gone")
    elsewhere = _interrupted_restore(ctx, "h1@old-container:7", "elsewhere")
    assert host.recover_interrupted(ctx) == [dead]  # the other machine: not known dead
    assert docker.removed == ["gone"]
    with ctx.db.session() as s:  # a new worker process from another machine registered
        hosts.register_host(s, "h1", docker_version="28", worker_version="t",
                            worker="h1@new-container:7")
    assert host.recover_interrupted(ctx) == [elsewhere]
    assert docker.removed == ["gone", "elsewhere"]
    assert _get(ctx, elsewhere).active_lock is None


def test_an_operator_releases_a_stuck_lock_and_the_volume_is_not_touched(
        ctx: JobContext) -> None:
    docker: FakeDocker = ctx.__dict__["docker"]
    stuck = _interrupted_restore(ctx, "h1@lost-machine:1", "stuck")
    job = release_job(ctx.db, stuck, by="alice", reason="machine scrapped")
    assert job.active_lock is None and job.result["restore_state"] == "released"
    assert "released by operator alice" in job.error and "partial restore" in job.error
    assert host.recover_interrupted(ctx) == [] and docker.removed == []
    with pytest.raises(Conflict, match="holds no lock"):
        release_job(ctx.db, stuck, by="alice")


def test_a_restore_stopped_by_the_sweep_is_undone_by_its_own_process_once_it_ended(
        ctx: JobContext) -> None:
    docker: FakeDocker = ctx.__dict__["docker"]
    job_id = _job(ctx, kind="restore", volume="into")
    swept = threading.Event()
    seen: list[list[str]] = []

    def body(ctx: JobContext, job: Any, tracker: ProgressTracker) -> runner.Outcome:
        record.restore_writing(ctx, job.id, True)
        _sweep_now(ctx)  # the heartbeat was late: failed, the volume stays locked
        swept.set()
        seen.append(list(host.recover_interrupted(ctx)))  # still writing: left alone
        while True:
            tracker.add(1)
            time.sleep(0.01)

    runner.run_job(ctx, job_id, body)
    assert swept.is_set() and seen == [[]]
    assert docker.removed == ["into"]  # undone after the body stopped, then unlocked
    job = _get(ctx, job_id)
    assert job.state == JobState.failed and job.active_lock is None
    assert job.result["restore_state"] == "recovered"

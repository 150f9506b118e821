"""A job that dies with containers stopped: its volume stays locked and its host's
recovery finds it; an operator's release says which containers to start."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.config import Settings
from common.db import jobs
from common.db.migrate import upgrade
from common.errors import Conflict
from common.jobs.context import JobContext

STOPPED = [{"id": "c1", "name": "shop-web-1"}, {"id": "c2", "name": "shop-db-1"}]


def _running_backup(tmp_path: Path, volume: str = "vol") -> tuple[JobContext, str]:
    ctx = JobContext(Settings(home=tmp_path, host_name="h1"))
    upgrade(ctx.db)
    with ctx.db.session() as s:
        job_id = jobs.create_job(s, kind="backup", host="h1", volume=volume).id
    with ctx.db.session() as s:
        jobs.start_job(s, job_id, "h1@box:1")
        jobs.update_result(s, job_id, {jobs.STOPPED_KEY: STOPPED})
    return ctx, job_id


def test_a_lost_backup_with_stopped_containers_keeps_its_lock_until_recovered(
        tmp_path: Path) -> None:
    ctx, job_id = _running_backup(tmp_path)
    with ctx.db.session() as s:
        assert jobs.sweep_orphaned(s, "h1", "box", lambda pid: False) == [job_id]
    with ctx.db.session() as s:
        job = jobs.get_job(s, job_id)
        assert job.state == "failed" and job.active_lock is not None
        assert "shop-web-1, shop-db-1 were stopped" in (job.error or "")
        assert [j.id for j in jobs.interrupted_restores(s, "h1")] == [job_id]
    with ctx.db.session() as s, pytest.raises(Conflict):
        jobs.create_job(s, kind="backup", host="h1", volume="vol")
    with ctx.db.session() as s:
        jobs.mark_recovered(s, job_id, "containers shop-db-1, shop-web-1 were started again")
    with ctx.db.session() as s:
        job = jobs.get_job(s, job_id)
        assert job.active_lock is None and job.result[jobs.STOPPED_KEY] == []
        assert "restore_state" not in job.result and "replace_state" not in job.result
        assert jobs.interrupted_restores(s, "h1") == []


def test_a_backup_whose_containers_run_again_is_failed_like_any_lost_job(
        tmp_path: Path) -> None:
    ctx, job_id = _running_backup(tmp_path)
    with ctx.db.session() as s:
        jobs.update_result(s, job_id, {jobs.STOPPED_KEY: []})
    with ctx.db.session() as s:
        jobs.sweep_orphaned(s, "h1", "box", lambda pid: False)
    with ctx.db.session() as s:
        job = jobs.get_job(s, job_id)
        assert job.state == "failed" and job.active_lock is None
        assert jobs.interrupted_restores(s, "h1") == []


def test_a_late_job_that_started_its_containers_after_the_sweep_still_frees_its_lock(
        tmp_path: Path) -> None:
    ctx, job_id = _running_backup(tmp_path)
    with ctx.db.session() as s:  # the sweep fails it while its containers are down
        jobs.sweep_orphaned(s, "h1", "box", lambda pid: False)
    with ctx.db.session() as s:  # then its (late, not dead) process starts them again
        jobs.update_result(s, job_id, {jobs.STOPPED_KEY: []})
    from common.jobs import host

    with ctx.db.session() as s:
        assert [j.id for j in jobs.interrupted_restores(s, "h1")] == [job_id]
    assert host._recover_one(ctx, "vol", {jobs.STOPPED_KEY: []}) == \
        "the containers it had stopped were running again"
    with ctx.db.session() as s:
        jobs.mark_recovered(s, job_id, "nothing left to start")
    with ctx.db.session() as s:
        assert jobs.get_job(s, job_id).active_lock is None


def test_an_operator_release_names_the_containers_to_start_by_hand(tmp_path: Path) -> None:
    ctx, job_id = _running_backup(tmp_path)
    with ctx.db.session() as s:
        jobs.release(s, job_id, by="admin", reason="host gone")
    with ctx.db.session() as s:
        job = jobs.get_job(s, job_id)
        assert job.active_lock is None and job.result[jobs.STOPPED_KEY] == []
        assert "shop-web-1, shop-db-1" in (job.error or "")
        assert "docker start" in (job.error or "")

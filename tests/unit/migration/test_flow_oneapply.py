"""The cut-over's apply and verify in one job on the destination (``migration-sync`` with
``params.verify``): the coordinator names that job for the verify step once it has begun
its verify, a difference (or a kill) in it fails the verify step and rolls back, one
failing before it fails the apply; the view shows both steps with their own state and
times (the split is ``result.verify.started_at``). An apply job without it (queued before
the two were one job) is followed by a verify job of its own: ``test_flow``."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from common.db import Database, Job, JobState, jobs
from common.db.migrate import upgrade
from common.db.migration_rows import Migration
from common.jobs import migration_views
from common.jobs.migration_flow import Coordinator
from tests.unit.migration.test_flow import Ops, _finish, _get, _migration


@pytest.fixture
def env(tmp_path: Path) -> tuple[Database, Coordinator]:
    db = Database(f"sqlite:///{tmp_path / 'c.db'}")
    upgrade(db, quiet=True)
    return db, Coordinator(Ops(db))  # type: ignore[arg-type]


def _to_the_apply(db: Database, c: Coordinator) -> None:
    _migration(db)
    for step, result in (("precopy.backup", {"backup_id": "b1"}), ("precopy.restore", {}),
                         ("cutover.backup", {"backup_id": "b2", "stopped_at": time.time(),
                                             "containers_stopped": [{"id": "c", "name": "x"}]})):
        c.advance("m1")
        _finish(db, step, **result)
    c.advance("m1")


def _view(db: Database) -> dict[str, Any]:
    with db.session() as s:
        m = s.get(Migration, "m1")
        assert m is not None
        return migration_views.view(s, m)


def _steps(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {j["step"]: j | {"phase": p["name"]} for p in view["phases"] for j in p["jobs"]}


def test_one_job_applies_and_verifies_and_the_view_shows_both_steps(
        env: tuple[Database, Coordinator]) -> None:
    db, c = env
    _to_the_apply(db, c)
    m = _get(db)
    with db.session() as s:
        apply = s.get(Job, m.steps["cutover.apply"])
        assert apply is not None and apply.kind == "migration-sync"
        assert apply.params["verify"] == {"baseline": True, "durable": False}
        s.execute(jobs.update(Job).where(Job.id == apply.id).values(
            state=JobState.running, started_at=datetime.now(UTC) - timedelta(seconds=2)))
    mid = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    with db.session() as s:  # the apply done, the verify running (what the job writes)
        jobs.update_result(s, m.steps["cutover.apply"],
                           {"method": "sync", "bytes_fetched": 5, "verify": {"started_at": mid}})
    steps = _steps(_view(db))
    assert steps["cutover.apply"]["state"] == "succeeded"
    assert steps["verify"]["state"] == "running" and steps["verify"]["phase"] == "verify"
    assert steps["verify"]["job_id"] == steps["cutover.apply"]["job_id"]
    assert steps["cutover.apply"]["finished_at"] == steps["verify"]["started_at"]
    assert "verify" not in _get(db).steps  # named by the coordinator once it has ended

    _finish(db, "cutover.apply", method="sync", bytes_fetched=5,
            verify={"started_at": mid, "ok": True, "entries_checked": 9, "problems": []})
    m = c.advance("m1")  # the verify step names the ended job: no job of its own
    assert m.state == "succeeded" and m.verify_outcome == "passed", m.reason
    assert m.steps["verify"] == m.steps["cutover.apply"]
    assert m.downtime_seconds is not None and m.report["apply_method"] == "sync"
    view = _view(db)
    phases = {p["name"]: p for p in view["phases"]}
    assert phases["cut-over"]["state"] == phases["verify"]["state"] == "succeeded"
    steps = _steps(view)
    assert phases["verify"]["started_at"] == steps["verify"]["started_at"] == mid
    assert steps["cutover.apply"]["finished_at"] == mid
    assert phases["verify"]["bytes"] == 0 and phases["cut-over"]["bytes"] == 5
    assert phases["verify"]["finished_at"] > phases["verify"]["started_at"]
    with db.session() as s:
        assert s.query(Job).filter(Job.kind == "migration-verify").count() == 0


def test_a_difference_found_by_the_apply_s_job_fails_the_verify_and_rolls_back(
        env: tuple[Database, Coordinator]) -> None:
    db, c = env
    _to_the_apply(db, c)
    mid = datetime.now(UTC).isoformat()
    _finish(db, "cutover.apply", JobState.failed, method="sync",
            error="the destination volume 'pg' differs from the snapshot: ./a",
            verify={"started_at": mid, "ok": False, "problems": ["./a"]})
    c.advance("m1")
    m = _get(db)
    assert m.verify_outcome == "failed" and m.report["failure"]["step"] == "verify"
    assert m.reason == "verify failed: the destination volume 'pg' differs from the " \
        "snapshot: ./a"
    assert m.steps["verify"] == m.steps["cutover.apply"]
    assert m.report["apply_method"] == "sync"
    steps = _steps(_view(db))
    assert steps["cutover.apply"]["state"] == "succeeded"
    assert steps["cutover.apply"]["error"] is None
    assert steps["verify"]["state"] == "failed" and "differs" in steps["verify"]["error"]
    _finish(db, "rollback.start_containers", started=["x"])
    c.advance("m1")
    _finish(db, "rollback.remove_destination")
    m = c.advance("m1")
    assert m.state == "rolled_back" and m.verify_outcome == "failed"


def test_a_job_killed_in_its_verify_fails_the_verify_and_before_it_the_apply(
        env: tuple[Database, Coordinator]) -> None:
    db, c = env
    _to_the_apply(db, c)
    with db.session() as s:  # what the job wrote before its verify; then its worker died
        jobs.update_result(s, _get(db).steps["cutover.apply"],
                           {"method": "sync", "verify": {"started_at": "now-ish"}})
        jobs.finish_job(s, _get(db).steps["cutover.apply"], JobState.failed,
                        error="its worker died")
    c.advance("m1")
    m = _get(db)
    assert m.reason == "verify failed: its worker died" and m.verify_outcome == "failed"
    # a time it cannot read: the step's bounds are its job's
    steps = _steps(_view(db))
    assert steps["verify"]["state"] == "failed"
    assert steps["cutover.apply"]["state"] == "succeeded"


def test_a_failed_apply_in_the_one_job_is_the_apply_s_failure(
        env: tuple[Database, Coordinator]) -> None:
    db, c = env
    _to_the_apply(db, c)
    _finish(db, "cutover.apply", JobState.failed, error="a pack is damaged")
    c.advance("m1")
    m = _get(db)
    assert m.reason == "cutover.apply failed: a pack is damaged"
    assert m.verify_outcome is None and "verify" not in m.steps

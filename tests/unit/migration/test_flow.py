"""The migration coordinator's state machine over a real (SQLite) catalog, with the child
jobs finished by the test instead of workers: the forward steps in order on the right
hosts, downtime from the stop to the verify, a failed verify turned into the rollback
steps (``rolled_back``), a cancel (``cancelled``), a manual rollback of a success, and
the report as Markdown."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from common.config import Settings
from common.db import Database, Job, JobState, jobs
from common.db.migrate import upgrade
from common.db.migration_rows import Migration
from common.errors import InvalidInput
from common.jobs import migration_views
from common.jobs.inputs import parse
from common.jobs.migration_flow import Coordinator
from common.jobs.migration_inputs import MigrationIn


class Ops:
    """The two services the coordinator calls, recording jobs without a dispatcher."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.settings = Settings(home=Path("/nonexistent"), host_name="a")

    def _job(self, **kw: Any) -> Job:
        with self.db.session() as s:
            job = jobs.create_job(s, **kw)
            s.expunge(job)
            return job

    def submit_backup(self, *, volume: str, host: str, target: str, fmt: str,
                      requested_by: str, keep_trees: bool = False) -> Job:
        return self._job(kind="backup", host=host, volume=volume, target=target,
                         params={"format": fmt, "keep_trees": keep_trees},
                         requested_by=requested_by)

    def _queue_restore(self, *, backup_id: str, into: str, host: str, requested_by: str,
                       mode: str, stop_containers: bool, create: Any = None,
                       record_for: str | None = None) -> Job:
        return self._job(kind="restore", host=host, volume=into, backup_id=backup_id,
                         params={"create": create, "record_for": record_for},
                         requested_by=requested_by)

    def _dispatch(self, job: Job, task: str) -> Job:
        return job


@pytest.fixture
def env(tmp_path: Path) -> tuple[Database, Coordinator]:
    db = Database(f"sqlite:///{tmp_path / 'c.db'}")
    upgrade(db, quiet=True)
    return db, Coordinator(Ops(db))  # type: ignore[arg-type]


def _migration(db: Database, **kw: Any) -> str:
    with db.session() as s:
        s.add(Migration(id="m1", source_host="a", source_volume="pg", dest_host="b",
                        dest_volume="pg", driver="local", driver_opts={}, via="s3",
                        cutover="stop", steps={}, phases=[],
                        report={"checks": [], "validated_at": "now"},
                        **({"remove_source": False} | kw)))
    return "m1"


def _finish(db: Database, step: str, state: JobState = JobState.succeeded,
            **result: Any) -> Job:
    with db.session() as s:
        m = s.get(Migration, "m1")
        assert m is not None, step
        job_id = m.steps[step]
        job = jobs.finish_job(s, job_id, state, result=result, error=result.get("error"),
                              backup_id=result.get("backup_id"))
        assert job is not None
        s.expunge(job)
        return job


def _step_job(db: Database, step: str) -> Job:
    with db.session() as s:
        m = s.get(Migration, "m1")
        assert m is not None
        job = jobs.get_job(s, m.steps[step])
        s.expunge(job)
        return job


def _get(db: Database) -> Migration:
    with db.session() as s:
        m = s.get(Migration, "m1")
        assert m is not None
        s.expunge(m)
        return m


def test_the_forward_steps_run_in_order_on_their_hosts(env: tuple[Database, Coordinator]
                                                       ) -> None:
    db, c = env
    _migration(db)
    c.advance("m1")
    _finish(db, "precopy.backup", backup_id="b1", stored_bytes=100)
    c.advance("m1")
    _finish(db, "precopy.restore", bytes_restored=100)
    c.advance("m1")
    stopped_at = time.time()
    _finish(db, "cutover.backup", backup_id="b2", stored_bytes=5,
            containers_stopped=[{"id": "c1", "name": "app"}], stopped_at=stopped_at)
    c.advance("m1")
    _finish(db, "cutover.apply", bytes_fetched=5, method="sync")
    c.advance("m1")
    _finish(db, "verify", ok=True)
    m = c.advance("m1")
    assert m.state == "succeeded" and m.verify_outcome == "passed"
    assert m.downtime_seconds is not None and m.downtime_seconds >= 0
    with db.session() as s:
        hosts = {step: (s.get(Job, jid).host, s.get(Job, jid).kind)  # type: ignore[union-attr]
                 for step, jid in m.steps.items()}
        restore = s.get(Job, m.steps["precopy.restore"])
        assert restore is not None and restore.backup_id == "b1"
        # the pre-copy keeps its trees for the catch-up round on the same worker
        precopy = s.get(Job, m.steps["precopy.backup"])
        assert precopy is not None and precopy.params["keep_trees"] is True
        verify = s.get(Job, m.steps["verify"])
        # the source is kept: the verify's flush goes on behind its end (not downtime)
        assert verify is not None and verify.params["durable"] is False
        assert restore.params["create"]["labels"] == {"volkeeper.migration": "m1"}
        view = migration_views.view(s, m)
    assert hosts == {"precopy.backup": ("a", "backup"), "precopy.restore": ("b", "restore"),
                     "cutover.backup": ("a", "cutover"),
                     "cutover.apply": ("b", "migration-sync"),
                     "verify": ("b", "migration-verify")}
    assert [(p["name"], p["bytes"]) for p in view["phases"]] == [
        ("validate", 0), ("pre-copy", 200), ("cut-over", 10), ("verify", 0)]
    assert any("app" in step for step in view["next_steps"])
    md = migration_views.markdown(view)
    assert md.startswith("# Migration m1: succeeded") and "| cut-over | succeeded |" in md

    with db.session() as s:
        m2 = s.get(Migration, "m1")
        assert m2 is not None
        m2.state, m2.rollback_requested_by = "running", "alice"
    c.advance("m1")
    _finish(db, "rollback.start_containers", started=["app"])
    c.advance("m1")
    # the destination may hold what the application wrote since the success: the
    # removal backs it up first (to the via target) and the report names that backup
    assert _step_job(db, "rollback.remove_destination").target == "s3"
    _finish(db, "rollback.remove_destination", removed=True, backup_id="kept1")
    m = c.advance("m1")
    assert m.state == "rolled_back" and m.reason == "rolled back by alice"
    assert "rollback.restore_source" not in m.steps  # the source was kept
    assert m.report["destination_backup_id"] == "kept1"
    assert any("kept1" in s for s in migration_views.next_steps(m))


def test_a_failed_verify_rolls_back(env: tuple[Database, Coordinator]) -> None:
    db, c = env
    _migration(db)
    for step, result in (("precopy.backup", {"backup_id": "b1"}), ("precopy.restore", {}),
                         ("cutover.backup", {"backup_id": "b2", "stopped_at": time.time(),
                                             "containers_stopped": [{"id": "c", "name": "x"}]}),
                         ("cutover.apply", {})):
        c.advance("m1")
        _finish(db, step, **result)
    c.advance("m1")
    _finish(db, "verify", JobState.failed, error="the destination differs: ./a")
    c.advance("m1")
    m = _get(db)
    assert m.state == "running" and m.verify_outcome == "failed"
    assert m.reason == "verify failed: the destination differs: ./a"
    _finish(db, "rollback.start_containers", started=["x"])
    c.advance("m1")
    assert _step_job(db, "rollback.remove_destination").target is None  # never used
    _finish(db, "rollback.remove_destination")
    m = c.advance("m1")
    assert m.state == "rolled_back" and m.report["containers_started"] == ["x"]


def test_a_cancel_before_the_cut_over_waits_for_the_running_step_and_ends_cancelled(
        env: tuple[Database, Coordinator]) -> None:
    db, c = env
    _migration(db)
    c.advance("m1")
    _finish(db, "precopy.backup", backup_id="b1")
    c.advance("m1")
    with db.session() as s:
        m = s.get(Migration, "m1")
        assert m is not None
        m.cancel_requested_by = "bob"
    m = c.advance("m1")  # the running step is asked to stop; nothing is undone meanwhile
    assert m.reason is None and "rollback.remove_destination" not in m.steps
    _finish(db, "precopy.restore", JobState.cancelled, error="cancelled by bob")
    c.advance("m1")
    _finish(db, "rollback.remove_destination")
    m = c.advance("m1")
    assert m.state == "cancelled" and "cancelled by bob" in (m.reason or "")
    assert "cutover.backup" not in m.steps and "rollback.start_containers" not in m.steps


def test_a_request_with_bad_fields_names_them() -> None:
    with pytest.raises(InvalidInput) as e:
        parse(MigrationIn, {"volume": "a/b", "to_host": "", "cutover": "later",
                            "driver_opts": {"a=b": "c"}})
    fields = {f["field"] for f in e.value.fields}  # type: ignore[attr-defined]
    assert fields == {"volume", "to_host", "cutover", "driver_opts"}


def test_an_evacuation_moves_at_most_its_concurrency_at_once(
        env: tuple[Database, Coordinator]) -> None:
    db, c = env
    with db.session() as s:
        for name in ("v1", "v2", "v3"):
            s.add(Migration(id=name, source_host="a", source_volume=name, dest_host="b",
                            dest_volume=name, driver="local", driver_opts={}, via="s3",
                            cutover="none", remove_source=False, steps={}, phases=[],
                            batch="e1", report={"concurrency": 2}))
    c.tick()
    with db.session() as s:
        states = {m.id: m.state for m in s.query(Migration)}
    assert sorted(states.values()) == ["queued", "running", "running"]


@pytest.mark.parametrize(("state", "hint"), [
    ("succeeded", "`volkeeper migration rollback m1`"),
    ("rolled_back", "rolled back already"),
    ("failed", "left to do by hand: `volkeeper migration m1`")])
def test_a_cancel_of_a_finished_migration_says_what_applies_to_it(
        env: tuple[Database, Coordinator], state: str, hint: str) -> None:
    """A rollback applies to a succeeded migration only: the hint named it (with "ID")
    for every finished one."""
    from types import SimpleNamespace

    from common.errors import Conflict
    from common.jobs.migrations import MigrationService

    db, _ = env
    _migration(db, state=state)
    svc = MigrationService(SimpleNamespace(db=db, settings=None))  # type: ignore[arg-type]
    with pytest.raises(Conflict) as e:
        svc.cancel(migration_id="m1", requested_by="bob")
    assert hint in (e.value.hint or ""), e.value.hint

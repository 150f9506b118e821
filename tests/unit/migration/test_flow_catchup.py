"""The catch-up rounds in the coordinator's state machine (child jobs finished by the
test): a round after the pre-copy only with ``--cutover stop`` and a running container
on the source; its apply only when its snapshot changed; another round while the last
carried at least 64 MiB and less than the one before, at most three; the rounds in the
report (JSON and Markdown); a failed catch-up rolls back without starting containers
(none were stopped) and removes the destination."""

from __future__ import annotations

import time
from typing import Any

from common.db import Database, Job, JobState
from common.db.migration_rows import Migration
from common.jobs import migration_views
from common.jobs.migration_catchup import MORE_BYTES, ROUNDS
from common.jobs.migration_flow import Coordinator
from common.jobs.migration_plan import FORWARD
from tests.unit.migration.test_flow import _finish, _get, _migration, env

__all__ = ["env"]  # the fixture, imported for pytest
MiB = 1 << 20
RUNNING = [{"id": "c1", "name": "app", "state": "running", "image": "busybox"}]


def _start(db: Database, c: Coordinator, containers: Any = RUNNING,
           cutover: str = "stop") -> None:
    _migration(db)
    with db.session() as s:
        m = s.get(Migration, "m1")
        assert m is not None
        m.report = dict(m.report) | {"source_containers": containers}
        m.cutover = cutover
    c.advance("m1")
    _finish(db, "precopy.backup", backup_id="b1", stored_bytes=100)
    c.advance("m1")
    _finish(db, "precopy.restore", bytes_restored=100)
    c.advance("m1")


def _job(db: Database, step: str) -> Job:
    with db.session() as s:
        job = s.get(Job, _get(db).steps[step])
        assert job is not None
        s.expunge(job)
        return job


def _round(db: Database, c: Coordinator, n: int, read: int, changed: bool = True) -> None:
    _finish(db, f"catchup.backup.{n}", backup_id=f"c{n}", changed=changed,
            bytes_read=read, files_read=3, stored_bytes=read // 2)
    c.advance("m1")
    if changed:
        apply = _job(db, f"catchup.apply.{n}")
        assert (apply.kind, apply.host, apply.backup_id) == ("migration-sync", "b", f"c{n}")
        _finish(db, f"catchup.apply.{n}", files_written=3, bytes_fetched=read // 2,
                method="sync")
        c.advance("m1")


def _to_end(db: Database, c: Coordinator) -> dict[str, Any]:
    _finish(db, "cutover.backup", backup_id="f", stopped_at=time.time(),
            containers_stopped=[{"id": "c1", "name": "app"}])
    c.advance("m1")
    _finish(db, "cutover.apply", method="sync", bytes_fetched=1)
    c.advance("m1")
    _finish(db, "verify", ok=True)
    m = c.advance("m1")
    assert m.state == "succeeded", m.reason
    with db.session() as s:
        return migration_views.view(s, m)


def test_rounds_follow_the_pre_copy_while_the_delta_shrinks_and_is_large(
        env: tuple[Database, Coordinator]) -> None:
    db, c = env
    _start(db, c)
    first = _job(db, "catchup.backup.1")
    assert (first.kind, first.host, first.params["since"]) == ("migration-catchup", "a", "b1")
    _round(db, c, 1, 200 * MiB)
    assert _job(db, "catchup.backup.2").params["since"] == "c1"
    _round(db, c, 2, 10 * MiB)
    assert "catchup.backup.3" not in _get(db).steps
    assert _job(db, "cutover.backup").kind == "cutover"
    view = _to_end(db, c)
    rounds = view["report"]["catchup"]["rounds"]
    assert [(r["round"], r["bytes_read"], r["apply"]["files_written"]) for r in rounds] == [
        (1, 200 * MiB, 3), (2, 10 * MiB, 3)]
    assert "round 2 carried 10.0 MiB" in view["report"]["catchup"]["ended"]
    phases = {p["name"]: p for p in view["phases"]}
    assert [j["step"] for j in phases["catch-up"]["jobs"]] == [
        "catchup.backup.1", "catchup.apply.1", "catchup.backup.2", "catchup.apply.2"]
    assert phases["catch-up"]["bytes"] == 210 * MiB  # stored + fetched of each round
    md = migration_views.markdown(view)
    assert "| catch-up | succeeded |" in md
    assert "- catch-up: round 1: 3 files / 200.0 MiB read, applied" in md


def test_an_unchanged_round_skips_its_apply(env: tuple[Database, Coordinator]) -> None:
    db, c = env
    _start(db, c)
    _round(db, c, 1, 0, changed=False)
    steps = _get(db).steps
    assert "catchup.apply.1" not in steps and "catchup.backup.2" not in steps
    view = _to_end(db, c)
    (r,) = view["report"]["catchup"]["rounds"]
    assert r["apply"] is None and r["apply_skipped"].startswith("nothing changed")
    assert view["report"]["catchup"]["ended"] == (
        "round 1 found nothing changed since the copy before it")
    assert "apply skipped (nothing changed" in migration_views.markdown(view)


def test_no_more_rounds_than_the_limit_nor_when_the_delta_grows(
        env: tuple[Database, Coordinator]) -> None:
    db, c = env
    _start(db, c)
    for n in range(1, ROUNDS + 1):
        _round(db, c, n, (400 - 100 * n) * MiB)
    assert _job(db, "cutover.backup").kind == "cutover"
    assert _to_end(db, c)["report"]["catchup"]["ended"] == f"at most {ROUNDS} rounds"
    assert len([s for s in FORWARD if s.name.startswith("catchup.backup.")]) == ROUNDS

    db2, c2 = env
    with db2.session() as s:  # a second migration in the same catalog: a growing delta
        s.delete(s.get(Migration, "m1"))
    _start(db2, c2)
    _round(db2, c2, 1, 2 * MORE_BYTES)
    _round(db2, c2, 2, 3 * MORE_BYTES)
    assert "catchup.backup.3" not in _get(db2).steps
    assert "writes as fast as a round copies" in _to_end(db2, c2)["report"]["catchup"][
        "ended"]


def test_no_catch_up_without_a_stop_or_a_running_container(
        env: tuple[Database, Coordinator]) -> None:
    db, c = env
    _start(db, c, containers=[{"id": "c1", "name": "app", "state": "exited"}])
    assert "catchup.backup.1" not in _get(db).steps
    view = _to_end(db, c)
    assert view["report"]["catchup"]["rounds"] == []
    assert "no running container used the source" in view["report"]["catchup"]["ended"]
    assert "catch-up" not in [p["name"] for p in view["phases"]]
    assert "- catch-up: skipped: no running container" in migration_views.markdown(view)
    with db.session() as s:
        s.delete(s.get(Migration, "m1"))
    _start(db, c, cutover="none")
    assert "catchup.backup.1" not in _get(db).steps
    with db.session() as s:
        m = s.get(Migration, "m1")
        assert m is not None
        assert "--cutover none" in migration_views.view(s, m)["report"]["catchup"]["ended"]


def test_a_failed_catch_up_rolls_back_and_removes_the_destination(
        env: tuple[Database, Coordinator]) -> None:
    db, c = env
    _start(db, c)
    _finish(db, "catchup.backup.1", backup_id="c1", changed=True, bytes_read=MiB)
    c.advance("m1")
    _finish(db, "catchup.apply.1", JobState.failed, error="host b stopped reporting")
    c.advance("m1")
    m = _get(db)
    assert m.reason == "catchup.apply.1 failed: host b stopped reporting"
    assert "rollback.start_containers" not in m.steps  # nothing was stopped
    assert _job(db, "rollback.remove_destination").kind == "migration-remove"
    _finish(db, "rollback.remove_destination", removed=True)
    m = c.advance("m1")
    assert m.state == "rolled_back" and "cutover.backup" not in m.steps

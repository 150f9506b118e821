"""The coordinator when the finish goes wrong: a ``finish.retire`` (``--remove-source``)
that did not finish leaves the source maybe removed — the rollback looks first and
restores it from the safety backup the retire noted before removing anything; it never
removes the destination while the source is gone. The source's containers are started
before the destination is removed (its host may be away), and a cancel waits for the
step it cancelled to stop before rolling back."""

from __future__ import annotations

import time
from typing import Any

from common.db import Database, Job, JobState
from common.jobs.migration_flow import Coordinator
from tests.unit.migration.test_flow import _finish, _get, _migration, env

__all__ = ["env"]  # the fixture, imported for pytest


def _to_finish(db: Database, c: Coordinator) -> None:
    for step, result in (("precopy.backup", {"backup_id": "b1"}), ("precopy.restore", {}),
                         ("cutover.backup", {"backup_id": "b2", "stopped_at": time.time()}),
                         ("cutover.apply", {}), ("verify", {"ok": True})):
        c.advance("m1")
        _finish(db, step, **result)
    c.advance("m1")


def _kinds(db: Database) -> dict[str, tuple[str, str, Any]]:
    m = _get(db)
    with db.session() as s:
        out = {}
        for step, jid in m.steps.items():
            j = s.get(Job, jid)
            assert j is not None
            out[step] = (j.kind, j.host, j.backup_id)
        return out


def test_a_retire_killed_after_the_removal_restores_the_source_then_removes_the_copy(
        env: tuple[Database, Coordinator]) -> None:
    db, c = env
    _migration(db, remove_source=True)
    _to_finish(db, c)
    with db.session() as s:  # the source goes: the verify ends when the copy is on disk
        verify = s.get(Job, _get(db).steps["verify"])
        assert verify is not None and verify.params["durable"] is True
    _finish(db, "finish.retire", JobState.failed, error="the worker stopped reporting",
            safety_backup_id="s1")
    c.advance("m1")
    m = _get(db)
    assert m.state == "running" and m.reason is not None
    assert m.reason.startswith("finish.retire failed")
    assert _kinds(db)["rollback.check_source"] == ("migration-exists", "a", None)
    _finish(db, "rollback.check_source", exists=False)
    c.advance("m1")
    assert _kinds(db)["rollback.restore_source"] == ("restore", "a", "s1")
    assert "rollback.remove_destination" not in _get(db).steps  # not while it is gone
    _finish(db, "rollback.restore_source")
    c.advance("m1")
    _finish(db, "rollback.remove_destination", removed=True)
    m = c.advance("m1")
    assert m.state == "rolled_back" and m.report["source_restored"] is True


def test_a_retire_killed_before_the_removal_leaves_the_source_and_removes_the_copy(
        env: tuple[Database, Coordinator]) -> None:
    db, c = env
    _migration(db, remove_source=True)
    _to_finish(db, c)
    _finish(db, "finish.retire", JobState.failed, error="the worker stopped reporting")
    c.advance("m1")
    _finish(db, "rollback.check_source", exists=True)
    c.advance("m1")
    assert "rollback.restore_source" not in _get(db).steps
    _finish(db, "rollback.remove_destination", removed=True)
    m = c.advance("m1")
    assert m.state == "rolled_back" and m.report["source_removed"] is False


def test_a_source_gone_without_a_safety_backup_keeps_the_destination(
        env: tuple[Database, Coordinator]) -> None:
    db, c = env
    _migration(db, remove_source=True)
    _to_finish(db, c)
    _finish(db, "finish.retire", JobState.failed, error="killed")
    c.advance("m1")
    _finish(db, "rollback.check_source", exists=False)
    m = c.advance("m1")
    assert m.state == "failed", m.reason
    assert "no safety backup" in (m.reason or "")
    assert "rollback.remove_destination" not in m.steps


def test_the_source_s_containers_start_before_the_destination_is_removed(
        env: tuple[Database, Coordinator]) -> None:
    db, c = env
    _migration(db)
    for step, result in (("precopy.backup", {"backup_id": "b1"}), ("precopy.restore", {}),
                         ("cutover.backup", {"backup_id": "b2", "stopped_at": time.time(),
                                             "containers_stopped": [{"id": "c", "name": "x"}]}),
                         ):
        c.advance("m1")
        _finish(db, step, **result)
    c.advance("m1")
    _finish(db, "cutover.apply", JobState.failed, error="host b stopped reporting")
    c.advance("m1")
    m = _get(db)
    assert "rollback.start_containers" in m.steps
    assert "rollback.remove_destination" not in m.steps  # queued only after it
    assert _kinds(db)["rollback.start_containers"][1] == "a"

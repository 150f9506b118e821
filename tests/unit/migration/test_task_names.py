"""The stale-job sweep sends a waiting job's task again by its kind: every kind a
migration queues maps to a task the workers have (a lost message of a rollback step
waiting for an offline host is sent again, not to a task nobody runs)."""

from __future__ import annotations

from common.jobs.migration_steps import BODIES
from common.jobs.names import (
    TASK_MIGRATION_CHECK,
    TASK_MIGRATION_STEP,
    TASK_RESTORE,
    task_for_kind,
)
from common.jobs.tasks import TASKS


def test_each_migration_step_kind_is_sent_to_the_migration_step_task() -> None:
    for kind in set(BODIES) - {"migration-check"}:
        assert task_for_kind(kind) == TASK_MIGRATION_STEP, kind
    assert task_for_kind("migration-check") == TASK_MIGRATION_CHECK
    assert task_for_kind("restore") == TASK_RESTORE


def test_every_kind_maps_to_a_registered_task() -> None:
    kinds = [*BODIES, "backup", "group-backup", "restore", "validate", "drill", "verify",
             "label", "forget", "copy", "browse", "migrate-target", "prune", "repair",
             "stats", "snapshots", "unlock", "keys"]
    assert [k for k in kinds if task_for_kind(k) not in TASKS] == []

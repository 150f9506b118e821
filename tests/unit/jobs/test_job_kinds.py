"""``JOB_KINDS`` (what ``?kind=`` / ``--kind`` accepts) names every kind a job is created
with: a kind missing there would be refused as unknown when a user filters by it."""

from __future__ import annotations

import re
from pathlib import Path

from common.db.kinds import GROUP_KIND, JOB_KINDS, QUIET_KINDS
from common.jobs.migration_steps import BODIES
from common.jobs.operations import TARGET_JOBS

JOBS = Path(__file__).resolve().parents[3] / "common" / "jobs"


def test_every_kind_a_job_is_created_with_is_known() -> None:
    created: set[str] = set()
    for path in JOBS.glob("*.py"):
        text = path.read_text()
        created |= set(re.findall(r'create_job\([^)]*?kind="([a-z-]+)"', text, re.S))
        created |= set(re.findall(r'queue_step\(\s*ops, m, "([a-z-]+)"', text))
    assert {"restore", "migration-check", "migration-sync"} <= created  # the scan finds them
    missing = (created | set(BODIES) | set(TARGET_JOBS) | QUIET_KINDS | {GROUP_KIND}
               ) - JOB_KINDS
    assert not missing, missing

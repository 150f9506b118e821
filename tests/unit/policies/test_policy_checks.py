"""A policy's scheduled verify and drill through the job services (SQLite, a recording
dispatcher): the newest good backup of each selected volume on the first target is
verified (a subset for repository backups, whole for archives) or drilled, requested by
``policy:NAME``; a volume without one is skipped and named, a busy one too; the next
verify and drill times are shown; bad cadences are refused naming the field."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from common.db import Job, Policy, catalog
from common.db.models import utcnow
from common.jobs.policies import PolicyService
from common.jobs.policy_checks import run_check
from tests.unit.api.test_api import Env, error
from tests.unit.policies.test_policy_api import audit, create, env

__all__ = ["env"]
CADENCE = {"verify_schedule": "@weekly", "verify_subset": 5, "drill_schedule": "@monthly"}


def _backup(env: Env, volume: str, age: timedelta, fmt: str = "tar.zst", **extra: Any
            ) -> str:
    with env.db.session() as s:
        b = catalog.add_backup(s, host="h1", volume=volume, target="local", format=fmt,
                               key=f"k/{volume}/{age}", manifest_key="m", checksum="0" * 64,
                               created_at=utcnow() - age, **extra)
        return b.id


def service(env: Env) -> PolicyService:
    return PolicyService(env.client.app.state.volkeeper.service)  # type: ignore[attr-defined]


def jobs_of(env: Env, kind: str) -> list[Job]:
    with env.db.session() as s:
        return list(s.scalars(select(Job).where(Job.kind == kind).order_by(Job.volume)))


def test_a_verify_run_reads_back_the_newest_good_backup_of_each_volume(env: Env) -> None:
    assert create(env, **CADENCE).status_code == 201
    _backup(env, "pg", timedelta(hours=5))
    damaged = _backup(env, "pg", timedelta(hours=1), verify_status="damaged")
    newest_pg = _backup(env, "pg", timedelta(hours=2), fmt="repo")
    _backup(env, "pg", timedelta(minutes=5), kind="safety")
    res = run_check(service(env), "nightly", "verify", actor="scheduler")
    assert [j.backup_id for j in res.jobs] == [newest_pg] != [damaged]
    assert [(x.volume, "no good backup" in x.reason) for x in res.skipped] == [("redis", True)]
    [job] = jobs_of(env, "verify")
    assert job.requested_by == "policy:nightly" and job.params["subset_percent"] == 5.0
    assert len(env.dispatcher.sent) == 1
    assert audit(env)[-1] == ("policy.verify", "nightly", "queued")
    # the same verify still queued: skipped with the service's own 409 reason
    again = run_check(service(env), "nightly", "verify")
    assert again.jobs == [] and {x.volume for x in again.skipped} == {"pg", "redis"}
    assert len(env.dispatcher.sent) == 1


def test_an_archive_is_verified_whole_and_a_drill_restores_it(env: Env) -> None:
    assert create(env, **CADENCE).status_code == 201
    archive = _backup(env, "redis", timedelta(hours=1))  # tar.zst
    res = run_check(service(env), "nightly", "verify")
    [job] = res.jobs
    assert job.backup_id == archive and job.params["subset_percent"] is None
    drills = run_check(service(env), "nightly", "drill").jobs
    assert [(j.kind, j.backup_id, j.requested_by) for j in drills] == [
        ("drill", archive, "policy:nightly")]
    with pytest.raises(ValueError):
        run_check(service(env), "nightly", "restore")


def test_show_has_the_next_verify_and_drill_times(env: Env) -> None:
    assert create(env).status_code == 201
    shown = env.client.get("/api/v1/policies/nightly").json()
    assert shown["next_verify_at"] is None and shown["next_drill_at"] is None
    r = env.client.patch("/api/v1/policies/nightly", json=CADENCE)
    assert r.status_code == 200, r.text
    shown = env.client.get("/api/v1/policies/nightly").json()
    assert shown["next_verify_at"] and shown["next_drill_at"]
    berlin = ZoneInfo("Europe/Berlin")  # the policy's tz: its cadences run in it too
    verify_at = datetime.fromisoformat(shown["next_verify_at"]).astimezone(berlin)
    drill_at = datetime.fromisoformat(shown["next_drill_at"]).astimezone(berlin)
    now = utcnow()
    assert now < verify_at <= now + timedelta(days=7) and verify_at.weekday() == 6
    assert now < drill_at <= now + timedelta(days=31) and drill_at.day == 1
    assert (verify_at.hour, verify_at.minute, drill_at.hour, drill_at.minute) == (0, 0, 0, 0)
    with env.db.session() as s:
        p = s.scalar(select(Policy))
        assert p is not None and p.verify_last_run_at is None
    off = env.client.patch("/api/v1/policies/nightly", json={"enabled": False}).json()
    assert off["next_verify_at"] is None and off["next_drill_at"] is None


@pytest.mark.parametrize(("change", "field"), [
    ({"verify_schedule": "every week"}, "verify_schedule"),
    ({"drill_schedule": "0 25 * * *"}, "drill_schedule"),
    ({"verify_subset": 0}, "verify_subset"),
    ({"verify_subset": 100.5}, "verify_subset"),
])
def test_a_bad_cadence_is_refused_naming_the_field(env: Env, change: dict[str, Any],
                                                   field: str) -> None:
    r = create(env, **change)
    assert r.status_code == 422, r.text
    assert field in error(r)["message"]

"""A policy's retention queued its forget while the policy's own verify or drill (or any
other job) used the target: the forget's exclusive repository lock was refused, the job
failed and "forget of h/v failed" was notified. The scheduler's follow-up waits until no
other job is queued or running on the target."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from common.db import Job, JobState, jobs, leases
from common.db.models import utcnow
from tests.unit.api.test_api import Env
from tests.unit.policies.test_policy_api import _backup, create, env  # noqa: F401


def test_retention_waits_for_the_target_to_be_free(env: Env) -> None:  # noqa: F811
    from common.jobs.policies import PolicyService
    from common.jobs.policy_followups import FollowUps
    from common.policies.scheduler import LEASE

    assert create(env, targets=["local"], retention={"keep_last": 1}).status_code == 201
    old = _backup(env, "pg", timedelta(days=2))
    new = _backup(env, "pg", timedelta(minutes=1))
    with env.db.session() as s:
        backup = jobs.create_job(s, kind="backup", host="h1", volume="pg", target="local",
                                 requested_by="policy:nightly")
        jobs.finish_job(s, backup.id, JobState.succeeded, result={"backup_id": new},
                        backup_id=new)
        verify = jobs.create_job(s, kind="verify", host="h1", volume="pg", target="local",
                                 backup_id=new, requested_by="policy:nightly",
                                 lock="verify/x")
        jobs.start_job(s, verify.id, "w")
    follow = FollowUps(PolicyService(env.client.app.state.volkeeper.service))  # type: ignore[attr-defined]
    now = utcnow()
    token = leases.acquire(env.db, LEASE, "a", timedelta(seconds=15), now)
    assert token is not None

    def forgets() -> list[str | None]:
        with env.db.session() as s:
            return [j.backup_id for j in s.scalars(select(Job).where(Job.kind == "forget"))]

    assert follow("a", token, now) == [] and forgets() == []  # the verify reads the target
    assert follow("a", token, now) == [] and forgets() == []
    with env.db.session() as s:
        jobs.finish_job(s, verify.id, JobState.succeeded, result={})
    queued = follow("a", token, now)
    assert [j.backup_id for j in queued] == [old] and forgets() == [old]
    assert follow("a", token, now) == [] and forgets() == [old]  # once

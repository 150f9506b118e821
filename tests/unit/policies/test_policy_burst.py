"""The scheduler's burst of due runs: every policy due for a slot runs together
(``run_policies``), with the same checks, 409/skip semantics and history as runs one by
one, all recorded in one transaction, the task messages sent only after it committed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from common.db import AuditEntry, Database, Job, Policy, hosts, jobs
from common.errors import Conflict, NotFound
from common.jobs.policies import PolicyService
from common.jobs.policy_runs import RunResult, run_policies
from common.jobs.policy_state import inventory_view
from common.policies.scheduler import Scheduler
from tests.unit.api.test_api import Env, _make


def vol(name: str, policy: str) -> dict[str, Any]:
    return {"name": name, "driver": "local", "mountpoint": f"/x/{name}", "size_bytes": 1,
            "labels": {"volkeeper.policy": policy}, "containers": {"items": []},
            "created_at": None}


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    for e in _make(tmp_path):
        with e.db.session() as s:
            hosts.replace_inventory(s, "h1", [vol(f"v{k}", f"p{k}") for k in range(4)])
        for k in range(4):
            r = e.client.post("/api/v1/policies", json={
                "name": f"p{k}", "selector": f"volkeeper.policy=p{k}",
                "schedule": "@every 30s", "targets": ["local"]})
            assert r.status_code == 201, r.text
        yield e


def ops_of(env: Env) -> Any:
    return env.client.app.state.volkeeper.service  # type: ignore[attr-defined]


def audit(db: Database, since: int) -> list[tuple[str, str, str, str]]:
    with db.session() as s:
        return [(a.actor, a.action, a.object, a.outcome) for a in s.scalars(
            select(AuditEntry).where(AuditEntry.id > since).order_by(AuditEntry.id))]


def test_a_burst_queues_each_policys_backup_skips_the_busy_and_names_the_unknown(
        env: Env) -> None:
    ops = ops_of(env)
    busy = ops.submit_backup(volume="v2", host="h1", requested_by="someone")
    with env.db.session() as s:
        mark = s.scalar(select(AuditEntry.id).order_by(AuditEntry.id.desc()).limit(1)) or 0
        view = inventory_view(s)
    committed: list[bool] = []
    send = env.dispatcher.send

    def visible_send(task: str, host: str, kwargs: dict[str, Any], **kw: Any) -> None:
        with env.db.session() as s:  # another session sees the job: sent after commit
            committed.append(s.get(Job, kwargs["job_id"]) is not None)
        send(task, host, kwargs, **kw)

    env.dispatcher.send = visible_send  # type: ignore[method-assign]
    sent_before = len(env.dispatcher.sent)
    out = run_policies(ops, ["p0", "p1", "p2", "ghost"], actor="scheduler", view=view,
                       refuse_busy=False)
    assert isinstance(out["ghost"], NotFound)
    runs = {n: r for n, r in out.items() if isinstance(r, RunResult)}
    assert [j.volume for j in runs["p0"].jobs] == ["v0"]
    assert {j.requested_by for r in runs.values() for j in r.jobs} == {"policy:p0",
                                                                        "policy:p1"}
    assert runs["p2"].jobs == [] and "already has an active job" in runs["p2"].skipped[0].reason
    assert busy.id in runs["p2"].skipped[0].reason
    assert committed == [True, True] and len(env.dispatcher.sent) == sent_before + 2
    entries = audit(env.db, mark)
    assert ("policy:p0", "backup", "h1/v0", "queued") in entries
    assert any(e[:3] == ("policy:p2", "backup", "h1/v2") and e[3].startswith(
        "error: conflict") for e in entries)
    runs_audited = {e[2]: e[3] for e in entries if e[1] == "policy.run"}
    assert runs_audited["p0"] == "queued" and runs_audited["p2"] == "skipped"
    assert runs_audited["ghost"].startswith("error: not_found")
    assert {e[0] for e in entries if e[1] == "policy.run"} == {"scheduler"}
    # a manual run of the busy one is still refused like a single backup (409)
    with pytest.raises(Conflict, match="every selected volume is busy"):
        PolicyService(ops).run("p2")


def test_create_jobs_refuses_a_lock_taken_earlier_in_the_same_batch(env: Env) -> None:
    spec = {"kind": "backup", "host": "h1", "volume": "v3", "target": "local"}
    with env.db.session() as s:
        first, second = jobs.create_jobs(s, [spec, spec | {"requested_by": "b"}])
    assert isinstance(first, Job) and isinstance(second, Conflict)
    assert first.id in second.message and "queued" in second.message


def test_the_scheduler_hands_a_burst_of_due_policies_to_run_many_at_once(
        tmp_path: Path) -> None:
    from common.db.migrate import upgrade

    db = Database(f"sqlite:///{tmp_path / 'c.db'}")
    upgrade(db, quiet=True)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with db.session() as s:
        for k in range(3):
            s.add(Policy(name=f"p{k}", selection={"volumes": ["v"]}, schedule="@every 30s",
                         tz="UTC", jitter_seconds=0, targets=["local"], retention={},
                         created_at=start, updated_at=start))
    calls: list[tuple[list[str], datetime]] = []

    def run_many(names: list[str], slot: datetime) -> dict[str, str]:
        calls.append((names, slot))
        return {n: "queued 1" for n in names}

    sched = Scheduler(db, lambda n, slot: "one by one", holder="a", run_many=run_many)
    started = sched.tick(start + timedelta(seconds=31))
    assert [sorted(names) for names, _ in calls] == [["p0", "p1", "p2"]]
    assert {x.outcome for x in started} == {"queued 1"} and len(started) == 3
    assert sched.tick(start + timedelta(seconds=32)) == []  # claimed: no second run

"""The policies REST API and services on SQLite with a recording dispatcher: validation
errors name the field, changes are audited, a run queues backups through the job services
(requested_by policy:NAME, 409 when busy), conflicts are reported, volumes show policy,
RPO and overdue, retention preview and apply follow the rules, and roles are enforced."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from common.db import AuditEntry, Job, Policy, catalog, hosts
from common.db.models import utcnow
from tests.unit.api.test_api import Env, _make, error

NIGHTLY = {"name": "nightly", "selector": "volkeeper.policy=nightly", "schedule": "0 2 * * *",
           "tz": "Europe/Berlin", "targets": ["local", "s3main"],
           "retention": {"keep_daily": 7, "keep_weekly": 4, "keep_monthly": 12}, "rpo": "26h"}


def vol(name: str, labels: dict[str, str] | None = None,
        container_labels: dict[str, str] | None = None) -> dict[str, Any]:
    items = [{"id": f"c-{name}", "name": f"app-{name}", "state": "running",
              "labels": container_labels or {}}]
    return {"name": name, "driver": "local", "mountpoint": f"/x/{name}", "size_bytes": 1,
            "labels": labels or {}, "containers": {"items": items}, "created_at": None}


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    for e in _make(tmp_path):
        with e.db.session() as s:
            catalog.add_target(s, "s3main", "file:///srv/s3main", {}, {})
            hosts.replace_inventory(s, "h1", [
                vol("pg", labels={"volkeeper.policy": "nightly"}),
                vol("redis", container_labels={"volkeeper.policy": "nightly"}),
                vol("cache", container_labels={"com.docker.compose.project": "shop"}),
                vol("data")])
        yield e


def create(env: Env, body: dict[str, Any] | None = None, **extra: Any) -> Any:
    return env.client.post("/api/v1/policies", json=(body or NIGHTLY) | extra)


def audit(env: Env) -> list[tuple[str, str, str]]:
    with env.db.session() as s:
        return [(a.action, a.object, a.outcome)
                for a in s.scalars(select(AuditEntry).where(AuditEntry.action.startswith(
                    "policy")).order_by(AuditEntry.id))]


def test_the_issue_example_is_created_and_shown_with_the_volumes_it_selects(env: Env) -> None:
    r = create(env)
    assert r.status_code == 201, r.text
    p = r.json()
    assert p["targets"] == ["local", "s3main"] and p["rpo"] == "26h" and not p["rpo_default"]
    assert p["retention"] == {"keep_daily": 7, "keep_weekly": 4, "keep_monthly": 12}
    assert p["next_run_at"] is not None
    shown = env.client.get("/api/v1/policies/nightly").json()
    assert [(m["host"], m["volume"]) for m in shown["matches"]] == [("h1", "pg"),
                                                                     ("h1", "redis")]
    assert [x["name"] for x in env.client.get("/api/v1/policies").json()] == ["nightly"]
    assert create(env).status_code == 409
    assert audit(env)[0] == ("policy.create", "nightly", "ok")
    assert audit(env)[1][2].startswith("error: conflict")


@pytest.mark.parametrize(("change", "field", "words"), [
    ({"schedule": "61 2 * * *"}, "schedule", "invalid schedule"),
    ({"tz": "Mars/Olympus"}, "tz", "unknown time zone"),
    ({"targets": ["local", "nas"]}, "targets", "unknown target(s) 'nas'"),
    ({"rpo": "soon"}, "rpo", "invalid duration"),
    ({"retention": {"keep_daily": 0}}, "retention", "keep_daily"),
    ({"retention": {"keep_within": "x"}}, "retention", "keep_within"),
    ({"selector": "no-equals"}, "selector", "invalid selector"),
    ({"targets": []}, "targets", ""),
    ({"selector": None}, "selection", "selects no volume"),
    # durations past what a date can hold were a 500 (OverflowError)
    ({"rpo": "999999999999d"}, "rpo", "at most 100y"),
    ({"schedule": "@every 99999999999h"}, "schedule", "at most 100y"),
    ({"retention": {"keep_within": "99999999999d"}}, "retention", "at most 100y"),
    ({"verify_schedule": "@every 999999999999w"}, "verify_schedule", "at most 100y"),
    # a cron naming no date was saved with a 500, then broke every scheduler tick
    ({"schedule": "0 0 31 2 *"}, "schedule", "never run"),
    ({"drill_schedule": "0 3 31 4 *"}, "drill_schedule", "never run"),
])
def test_bad_input_is_422_naming_the_field(env: Env, change: dict[str, Any], field: str,
                                           words: str) -> None:
    r = create(env, NIGHTLY | change)
    assert r.status_code == 422, r.text
    body = error(r)
    assert field in body["message"] and words in body["hint"]
    assert env.client.get("/api/v1/policies").json() == []


def test_put_replaces_patch_merges_and_delete_removes(env: Env) -> None:
    assert create(env).status_code == 201
    r = env.client.patch("/api/v1/policies/nightly", json={"schedule": "@every 6h",
                                                            "rpo": None})
    assert r.status_code == 200, r.text
    assert r.json()["schedule"] == "@every 6h" and r.json()["rpo"] == "12h"
    assert r.json()["rpo_default"] and r.json()["targets"] == ["local", "s3main"]
    bad = env.client.patch("/api/v1/policies/nightly", json={"tz": "Nowhere/X"})
    assert bad.status_code == 422 and "tz" in error(bad)["message"]
    body = {k: v for k, v in NIGHTLY.items() if k != "name"} | {"targets": ["local"]}
    r = env.client.put("/api/v1/policies/nightly", json=body)
    assert r.status_code == 200 and r.json()["targets"] == ["local"]
    assert env.client.delete("/api/v1/policies/nightly").status_code == 204
    assert env.client.get("/api/v1/policies/nightly").status_code == 404
    assert env.client.delete("/api/v1/policies/nightly").status_code == 404
    actions = [a for a, _, o in audit(env) if o == "ok"]
    assert actions == ["policy.create", "policy.update", "policy.update", "policy.delete"]


def test_a_run_queues_backups_through_the_job_services_as_the_policy(env: Env) -> None:
    assert create(env).status_code == 201
    r = env.client.post("/api/v1/policies/nightly/run")
    assert r.status_code == 202, r.text
    jobs = r.json()["jobs"]
    assert sorted(j["volume"] for j in jobs) == ["pg", "redis"]
    assert {j["requested_by"] for j in jobs} == {"policy:nightly"}
    assert {j["target"] for j in jobs} == {"local"}
    assert len(env.dispatcher.sent) == 2
    # both volumes busy now: the next run is refused like a single backup
    again = env.client.post("/api/v1/policies/nightly/run")
    assert again.status_code == 409 and "busy" in error(again)["message"]
    assert env.client.post("/api/v1/policies/ghost/run").status_code == 404
    assert ("policy.run", "nightly", "queued") in audit(env)
    # the scheduler finding the previous run still going: recorded as skipped
    from common.jobs.policies import PolicyService

    service = PolicyService(env.client.app.state.volkeeper.service)  # type: ignore[attr-defined]
    res = service.run("nightly", actor="scheduler", refuse_busy=False)
    assert res.jobs == [] and len(res.skipped) == 2
    assert "already has an active job" in res.skipped[0].reason
    assert audit(env)[-1] == ("policy.run", "nightly", "skipped")
    assert len(env.dispatcher.sent) == 2


def test_a_volume_two_policies_match_is_backed_up_once_and_reported(env: Env) -> None:
    assert create(env).status_code == 201
    r = create(env, {"name": "all-h1", "hosts": ["h1"], "schedule": "@daily",
                     "targets": ["local"]})
    assert r.status_code == 201, r.text
    shown = env.client.get("/api/v1/policies/nightly").json()["matches"]
    assert all(m["owner"] == "all-h1" and m["conflict"] == ["all-h1", "nightly"]
               for m in shown)
    run = env.client.post("/api/v1/policies/nightly/run").json()
    assert run["jobs"] == [] and len(run["skipped"]) == 2
    assert "conflict" in run["skipped"][0]["reason"]
    vols = {v["name"]: v for v in env.client.get("/api/v1/volumes").json()}
    assert vols["pg"]["policy"] == "all-h1"
    assert vols["pg"]["policy_conflict"] == ["all-h1", "nightly"]
    assert vols["data"]["policy"] == "all-h1" and vols["data"]["policy_conflict"] == []


def _backup(env: Env, volume: str, age: timedelta, **extra: Any) -> str:
    with env.db.session() as s:
        b = catalog.add_backup(s, host="h1", volume=volume, target="local", format="tar.zst",
                               key=f"k/{volume}/{age}", manifest_key="m", checksum="0" * 64,
                               created_at=utcnow() - age, **extra)
        return b.id


def test_volumes_show_rpo_and_overdue_from_the_newest_good_backup(env: Env) -> None:
    assert create(env).status_code == 201
    with env.db.session() as s:  # the policy has existed for a week
        s.scalar(select(Policy)).created_at = utcnow() - timedelta(days=7)
    _backup(env, "pg", timedelta(hours=2), kind="safety")  # a replace-restore's snapshot
    _backup(env, "pg", timedelta(hours=3), verify_status="damaged")
    _backup(env, "pg", timedelta(hours=30))
    _backup(env, "redis", timedelta(hours=1))
    vols = {v["name"]: v for v in env.client.get("/api/v1/volumes").json()}
    pg, redis = vols["pg"], vols["redis"]
    assert pg["policy"] == "nightly" and pg["rpo_seconds"] == 26 * 3600
    assert pg["overdue"] is True  # the newest good one is 30 h old
    assert pg["last_backup_at"] < pg["seen_at"]  # the safety snapshot does not count
    assert redis["overdue"] is False
    assert vols["data"]["policy"] is None and vols["data"]["overdue"] is None
    one = env.client.get("/api/v1/hosts/h1/volumes/pg").json()
    assert one["overdue"] is True and one["policy"] == "nightly" and one == pg
    late = env.client.get("/api/v1/volumes", params={"overdue": True}).json()
    assert [v["name"] for v in late] == ["pg"]


def test_retention_preview_and_apply_keep_pinned_and_say_why(env: Env) -> None:
    assert create(env, retention={"keep_last": 2}).status_code == 201
    ids = [_backup(env, "pg", timedelta(days=d)) for d in range(5)]
    pinned = ids[4]
    with env.db.session() as s:
        catalog.label_backup(s, pinned, pinned=True)
    r = env.client.get("/api/v1/policies/nightly/retention-preview")
    assert r.status_code == 200, r.text
    groups = {(g["volume"], g["target"]): g for g in r.json()}
    g = groups[("pg", "local")]
    assert (g["keep"], g["forget"]) == (3, 2)
    decided = {b["id"]: b for b in g["backups"]}
    assert decided[pinned]["keep"] and decided[pinned]["reasons"] == ["pinned"]
    assert not decided[ids[2]]["keep"] and decided[ids[2]]["reasons"] == ["no rule keeps it"]
    assert groups[("redis", "s3main")]["backups"] == []
    from common.jobs.policies import PolicyService

    service = PolicyService(env.client.app.state.volkeeper.service)  # type: ignore[attr-defined]
    forgets = service.apply_retention("nightly", "h1", "pg", "local")
    assert sorted(j.backup_id or "" for j in forgets) == sorted(ids[2:4])
    assert {j.requested_by for j in forgets} == {"policy:nightly"}


def test_apply_plans_first_then_creates_updates_and_prunes(env: Env) -> None:
    assert create(env).status_code == 201
    assert create(env, {"name": "old", "volumes": ["data"], "schedule": "@daily",
                        "targets": ["local"]}).status_code == 201
    want = [NIGHTLY | {"schedule": "0 3 * * *"},
            {"name": "shop", "project": "shop", "schedule": "@hourly", "targets": ["local"]}]
    r = env.client.post("/api/v1/policies/apply", json={"policies": want, "dry_run": True})
    assert r.status_code == 200, r.text
    plan = {c["name"]: c for c in r.json()["changes"]}
    assert plan["nightly"]["action"] == "update"
    assert plan["nightly"]["changes"] == {"schedule": ["0 2 * * *", "0 3 * * *"]}
    assert plan["shop"]["action"] == "create" and plan["old"]["action"].startswith("kept")
    assert [p["name"] for p in env.client.get("/api/v1/policies").json()] == ["nightly", "old"]
    r = env.client.post("/api/v1/policies/apply", json={"policies": want, "prune": True})
    assert {c["name"]: c["action"] for c in r.json()["changes"]} == {
        "nightly": "update", "shop": "create", "old": "delete"}
    got = {p["name"]: p for p in env.client.get("/api/v1/policies").json()}
    assert sorted(got) == ["nightly", "shop"] and got["nightly"]["schedule"] == "0 3 * * *"
    again = env.client.post("/api/v1/policies/apply", json={"policies": want, "prune": True})
    assert {c["action"] for c in again.json()["changes"]} == {"unchanged"}
    bad = env.client.post("/api/v1/policies/apply", json={"policies": [
        want[1] | {"name": "x", "targets": ["nas"]}]})
    assert bad.status_code == 422 and "targets" in error(bad)["message"]
    assert "x" not in {p["name"] for p in env.client.get("/api/v1/policies").json()}


def test_viewers_read_operators_run_admins_change(env: Env) -> None:
    from common.auth import TokenService

    tokens = TokenService(env.db)
    viewer = tokens.create("v", "viewer")[1]
    operator = tokens.create("o", "operator")[1]
    assert create(env).status_code == 201

    def call(secret: str, method: str, path: str, **kw: Any) -> int:
        return env.client.request(method, "/api/v1/policies" + path,
                                  headers={"Authorization": f"Bearer {secret}"}, **kw
                                  ).status_code

    assert call(viewer, "GET", "") == 200
    assert call(viewer, "GET", "/nightly/retention-preview") == 200
    assert call(viewer, "POST", "/nightly/run") == 403
    assert call(operator, "POST", "/nightly/run") == 202
    assert call(operator, "DELETE", "/nightly") == 403
    assert call(operator, "POST", "", json=NIGHTLY | {"name": "x"}) == 403
    with env.db.session() as s:
        assert {j.requested_by for j in s.scalars(select(Job))} == {"policy:nightly"}


def test_after_a_policy_backup_the_scheduler_copies_it_and_applies_retention_once(
        env: Env) -> None:
    from common.db import JobState, jobs, leases
    from common.jobs.policies import PolicyService
    from common.jobs.policy_followups import FollowUps
    from common.policies.scheduler import LEASE

    assert create(env, retention={"keep_last": 1}).status_code == 201
    old = [_backup(env, "pg", timedelta(days=d)) for d in (2, 3)]
    new = _backup(env, "pg", timedelta(minutes=1))
    with env.db.session() as s:
        job = jobs.create_job(s, kind="backup", host="h1", volume="pg", target="local",
                              requested_by="policy:nightly")
        jobs.finish_job(s, job.id, JobState.succeeded, result={"backup_id": new},
                        backup_id=new)
    follow = FollowUps(PolicyService(env.client.app.state.volkeeper.service))  # type: ignore[attr-defined]
    now = utcnow()
    follow("a", 99, now)  # not the lease holder: nothing
    assert env.dispatcher.sent == []
    token = leases.acquire(env.db, LEASE, "a", timedelta(seconds=15), now)
    assert token is not None

    def queued() -> set[tuple[str, str | None, str | None]]:
        with env.db.session() as s:
            return {(j.kind, j.backup_id, j.target)
                    for j in s.scalars(select(Job).where(Job.state == JobState.queued))}

    def finish(kind: str, result: dict[str, Any]) -> None:
        with env.db.session() as s:
            j = s.scalars(select(Job).where(Job.state == JobState.queued,
                                            Job.kind == kind)).one()
            if kind == "forget":  # as the worker records it
                catalog.delete_backup(s, j.backup_id or "")
            jobs.finish_job(s, j.id, JobState.succeeded, result=result)

    # the backup's end: its copy first (retention waits: forget and copy take the
    # repository's exclusive and shared locks)
    follow("a", token, now)
    assert queued() == {("copy", new, "local")}
    with env.db.session() as s:
        marked = s.get(Job, job.id)
        assert marked is not None and "policy_followup" in marked.result
    finish("copy", {"destination": "s3main", "copy_backup_id": "c1"})
    # the copy's end: retention on its source (and destination), one forget at a time
    follow("a", token, now)
    assert queued() == {("forget", old[1], "local")}  # the oldest first
    finish("forget", {})
    follow("a", token, now)
    assert queued() == {("forget", old[0], "local")}
    finish("forget", {})
    follow("a", token, now)
    assert queued() == set()
    sent = len(env.dispatcher.sent)
    FollowUps(PolicyService(env.client.app.state.volkeeper.service))(  # type: ignore[attr-defined]
        "a", token, now)  # a restarted scheduler: every job is followed up already
    assert len(env.dispatcher.sent) == sent == 3


def test_metrics_health_and_the_rpo_check_see_policies(
        env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    from common import health
    from common.db import leases
    from common.jobs import policy_watch
    from common.policies.scheduler import LEASE

    assert create(env).status_code == 201
    _backup(env, "redis", timedelta(hours=1))

    def samples() -> dict[tuple[str, str], float]:
        out = {}
        for line in env.client.get("/metrics").text.splitlines():
            if line.startswith(("volkeeper_volume_overdue", "volkeeper_scheduler")):
                name, value = line.rsplit(" ", 1)
                out[(name.split("{")[0], name)] = float(value)
        return out

    m = samples()
    assert m[("volkeeper_scheduler_up", "volkeeper_scheduler_up")] == 0
    overdue = {k[1]: v for k, v in m.items() if k[0] == "volkeeper_volume_overdue"}
    assert overdue == {
        'volkeeper_volume_overdue{host="h1",policy="nightly",volume="pg"}': 0.0,
        'volkeeper_volume_overdue{host="h1",policy="nightly",volume="redis"}': 0.0}
    assert leases.acquire(env.db, LEASE, "s1", timedelta(seconds=15), utcnow()) is not None
    assert samples()[("volkeeper_scheduler_up", "volkeeper_scheduler_up")] == 1
    assert policy_watch.health_probe(env.db) == "ok"
    monkeypatch.setattr(health, "_scheduler_probe", [policy_watch.health_probe])
    assert env.client.get("/api/v1/health").json()["checks"]["scheduler"] == "ok"
    leases.release(env.db, LEASE, "s1")
    assert policy_watch.health_probe(env.db) == "not running"
    # the RPO check reports every policy volume to the notifications (which send on change)
    told: list[tuple[str, bool]] = []
    import common.notify

    monkeypatch.setattr(common.notify, "report_freshness",
                        lambda db, settings, **kw: told.append((kw["volume"], kw["overdue"])))
    with env.db.session() as s:
        s.scalar(select(Policy)).created_at = utcnow() - timedelta(days=3)
    check = policy_watch.RpoCheck(env.db, env.client.app.state.volkeeper.settings)  # type: ignore[attr-defined]
    check("s1", 1, utcnow())
    assert sorted(told) == [("pg", True), ("redis", False)]
    check("s1", 1, utcnow())  # at most once a minute
    assert len(told) == 2


def test_a_bad_field_a_service_finds_is_listed_in_fields_as_the_models_are(env: Env) -> None:
    # a 422 raised past the route's model (PATCH merges, then checks) had no "fields"
    assert create(env, NIGHTLY).status_code == 201
    for change, field in (({"schedule": None}, "schedule"), ({"targets": ["nas"]}, "targets")):
        r = env.client.patch("/api/v1/policies/nightly", json=change)
        assert r.status_code == 422, r.text
        assert [f["field"] for f in error(r)["fields"]] == [field], r.text
    r = create(env, NIGHTLY | {"name": "x", "tz": "Mars/Olympus"})
    assert [f["field"] for f in error(r)["fields"]] == ["tz"]


def test_a_policy_saved_with_a_cron_naming_no_date_breaks_neither_lists_nor_the_scheduler(
        env: Env) -> None:
    # rows written before such schedules were refused: GET /policies was a 500 and every
    # scheduler tick failed (no policy's backups ran)
    from common.jobs.policy_scheduler import policy_scheduler

    assert create(env, NIGHTLY).status_code == 201
    own = {k: v for k, v in NIGHTLY.items() if k not in ("selector", "rpo")}  # default RPO
    assert create(env, own | {"name": "feb31", "volumes": ["data"]}).status_code == 201
    with env.db.session() as s:
        s.scalars(select(Policy).where(Policy.name == "feb31")).one().schedule = "0 0 31 2 *"
    listed = env.client.get("/api/v1/policies")
    assert listed.status_code == 200, listed.text
    by_name = {p["name"]: p for p in listed.json()}
    assert by_name["feb31"]["next_run_at"] is None and by_name["nightly"]["next_run_at"]
    assert env.client.get("/api/v1/policies/feb31").status_code == 200
    volumes = env.client.get("/api/v1/volumes")
    assert volumes.status_code == 200, volumes.text
    [data] = [v for v in volumes.json() if v["name"] == "data"]
    assert (data["policy"], data["rpo_seconds"]) == ("feb31", 2 * 86400)
    preview = env.client.get("/api/v1/policies/feb31/retention-preview")
    assert preview.status_code == 200, preview.text
    scheduler = policy_scheduler(env.state.service)
    scheduler.tick(utcnow())  # raised CroniterBadDateError
    assert {e.name for e in scheduler._entries.values()} == {"nightly"}

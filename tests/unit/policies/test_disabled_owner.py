"""A disabled policy run by hand (`volkeeper policy run`) took the volumes it shares with an
enabled policy (the first by name owned them, enabled or not) — and its retention then
forgot that policy's backups by its own, tighter rules. An enabled policy owns what it
matches; the disabled one gets only the volumes no enabled policy matches, and a policy's
retention is applied only to a volume it backs up now."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from common.db import Backup, Job
from tests.unit.api.test_api import Env
from tests.unit.policies.test_policy_api import _backup, create, env  # noqa: F401


def test_a_disabled_policy_neither_takes_nor_trims_an_enabled_policys_volume(
        env: Env) -> None:  # noqa: F811
    from common.jobs.policies import PolicyService

    assert create(env, {"name": "zz-daily", "volumes": ["pg", "data"], "schedule": "@daily",
                        "targets": ["local"], "retention": {"keep_last": 10}}
                  ).status_code == 201
    assert create(env, {"name": "aa-old", "volumes": ["pg", "data"], "schedule": "@daily",
                        "targets": ["local"], "retention": {"keep_last": 1},
                        "enabled": False}).status_code == 201
    ids = [_backup(env, "pg", timedelta(days=d)) for d in range(4)]

    shown = env.client.get("/api/v1/policies/aa-old").json()
    assert {m["volume"]: m["owner"] for m in shown["matches"]} == {"pg": "zz-daily",
                                                                  "data": "zz-daily"}
    r = env.client.post("/api/v1/policies/aa-old/run")
    assert r.status_code == 202, r.text
    assert r.json()["jobs"] == []
    assert {x["volume"] for x in r.json()["skipped"]} == {"pg", "data"}
    assert "'zz-daily' backs it up" in r.json()["skipped"][0]["reason"]

    service = PolicyService(env.client.app.state.volkeeper.service)  # type: ignore[attr-defined]
    assert service.apply_retention("aa-old", "h1", "pg", "local") == []
    with env.db.session() as s:
        assert s.scalars(select(Job).where(Job.kind == "forget")).all() == []
        assert len(s.scalars(select(Backup)).all()) == len(ids)
    # disabled and alone on a volume, it still runs and trims it by hand
    assert env.client.patch("/api/v1/policies/zz-daily", json={"volumes": ["data"]}
                            ).status_code == 200
    r = env.client.post("/api/v1/policies/aa-old/run")
    assert [j["volume"] for j in r.json()["jobs"]] == ["pg"]
    forgets = service.apply_retention("aa-old", "h1", "pg", "local")
    assert sorted(j.backup_id or "" for j in forgets) == sorted(ids[1:])

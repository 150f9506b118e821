"""A retention preview of a policy that does not back a volume up (another policy matches
it first by name) showed its own rules' decisions — "keep" for backups the owner's
retention forgets at its next run. It shows the owner's decisions on the owner's targets,
named."""

from __future__ import annotations

from datetime import timedelta

from tests.unit.api.test_api import Env
from tests.unit.policies.test_policy_api import _backup, create, env  # noqa: F401


def test_a_volume_another_policy_owns_previews_the_owners_retention(
        env: Env) -> None:  # noqa: F811
    assert create(env, targets=["local"], retention={"keep_last": 5}).status_code == 201
    ids = [_backup(env, "pg", timedelta(days=d)) for d in range(3)]
    assert create(env, {"name": "aa", "volumes": ["pg"], "schedule": "@daily",
                        "targets": ["local"], "retention": {"keep_last": 1}}
                  ).status_code == 201
    r = env.client.get("/api/v1/policies/nightly/retention-preview")
    assert r.status_code == 200, r.text
    groups = {(g["volume"], g["target"]): g for g in r.json()}
    pg = groups[("pg", "local")]
    assert pg["owner"] == "aa"
    assert (pg["keep"], pg["forget"]) == (1, 2)
    assert [b["keep"] for b in pg["backups"]] == [True, False, False]
    assert [b["id"] for b in pg["backups"]] == ids
    assert groups[("redis", "local")]["owner"] is None  # its own volume: its own rules
    own = {(g["volume"], g["target"]): g for g in env.client.get(
        "/api/v1/policies/aa/retention-preview").json()}
    assert own[("pg", "local")]["owner"] is None
    assert [b["keep"] for b in own[("pg", "local")]["backups"]] == [True, False, False]

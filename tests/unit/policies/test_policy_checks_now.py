"""``POST /api/v1/policies/{name}/verify|drill`` queue a policy's checks now, through the
same services as its cadence (requested by ``policy:NAME``, audited by the caller), and
refuse with 409 when every volume's check is busy."""

from __future__ import annotations

from datetime import timedelta

from tests.unit.api.test_api import Env, error
from tests.unit.policies.test_policy_api import audit, create, env
from tests.unit.policies.test_policy_checks import _backup

__all__ = ["env"]


def test_verify_and_drill_now_queue_the_checks_and_409_when_all_are_busy(env: Env) -> None:
    assert create(env, verify_subset=5).status_code == 201
    pg = _backup(env, "pg", timedelta(hours=1), fmt="repo")
    redis = _backup(env, "redis", timedelta(hours=2))
    r = env.client.post("/api/v1/policies/nightly/verify")
    assert r.status_code == 202, r.text
    jobs = {j["volume"]: j for j in r.json()["jobs"]}
    assert {v: j["backup_id"] for v, j in jobs.items()} == {"pg": pg, "redis": redis}
    assert jobs["pg"]["params"]["subset_percent"] == 5.0
    assert jobs["redis"]["params"]["subset_percent"] is None  # an archive: whole
    assert {j["requested_by"] for j in jobs.values()} == {"policy:nightly"}
    again = env.client.post("/api/v1/policies/nightly/verify")
    assert again.status_code == 409 and "busy" in error(again)["message"]
    drill = env.client.post("/api/v1/policies/nightly/drill")
    assert drill.status_code == 202, drill.text
    assert sorted(j["kind"] for j in drill.json()["jobs"]) == ["drill", "drill"]
    assert env.client.post("/api/v1/policies/ghost/drill").status_code == 404
    assert ("policy.verify", "nightly", "queued") in audit(env)
    assert any(a == "policy.verify" and o.startswith("error: conflict")
               for a, _, o in audit(env))

"""A jitter longer than a schedule's interval skipped runs silently (a run delayed past the
next slot is not made up twice): `@every 30s` with a 5m jitter ran about one slot in six.
It is refused naming jitter_seconds, for the backup schedule and the cadences."""

from __future__ import annotations

from tests.unit.api.test_api import Env, error
from tests.unit.policies.test_policy_api import create, env  # noqa: F401


def test_a_jitter_longer_than_an_interval_is_refused(env: Env) -> None:  # noqa: F811
    body = {"name": "j", "volumes": ["pg"], "schedule": "@every 30s", "targets": ["local"],
            "jitter_seconds": 300}
    r = create(env, body)
    assert r.status_code == 422, r.text
    assert error(r)["fields"][0]["field"] == "jitter_seconds"
    assert "interval of schedule '@every 30s' (30s)" in error(r)["fields"][0]["problem"]
    r = create(env, body | {"schedule": "@daily", "verify_schedule": "@hourly",
                            "jitter_seconds": 3601})
    assert r.status_code == 422 and "verify_schedule" in r.text, r.text
    assert create(env, body | {"schedule": "@hourly", "jitter_seconds": 3600}
                  ).status_code == 201  # [0, 3600): never past the next slot
    r = env.client.patch("/api/v1/policies/j", json={"schedule": "@every 30m"})
    assert r.status_code == 422 and "jitter_seconds" in r.text, r.text

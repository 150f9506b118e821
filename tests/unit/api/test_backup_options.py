"""The backup request's stop and exclude options through the API (SQLite, recording
dispatcher): carried on the job, bad patterns refused naming the field."""

from __future__ import annotations

from tests.unit.api.test_api import Env, env, error  # noqa: F401 - env is a fixture


def test_stop_containers_and_excludes_go_on_the_job(env: Env) -> None:  # noqa: F811
    r = env.client.post("/api/v1/backups", json={
        "volume": "data", "stop_containers": True,
        "excludes": ["cache/**", " *.tmp ", "cache/**"]})
    assert r.status_code == 202, r.text
    params = r.json()["params"]
    assert params["stop_containers"] is True
    assert params["excludes"] == ["cache/**", "*.tmp"]  # cleaned, deduplicated
    # (without them the job's params stay {"format"}: test_api's queued-backup test)


def test_an_exclude_pattern_leaving_the_volume_is_422(env: Env) -> None:  # noqa: F811
    r = env.client.post("/api/v1/backups", json={"volume": "data",
                                                 "excludes": ["ok/*", "../etc"]})
    assert r.status_code == 422
    [field] = error(r)["fields"]
    assert field["field"] == "excludes" and "'../etc'" in field["problem"]

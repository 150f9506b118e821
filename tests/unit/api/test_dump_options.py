"""Dump requests through the API (SQLite, recording dispatcher): the kind is carried on
the backup job (normalised), an unknown kind or a bad container name is refused naming
the field, and ``dump_into`` refuses the options of a volume restore."""

from __future__ import annotations

from tests.unit.api.test_api import Env, env, error  # noqa: F401 - env is a fixture


def test_a_dump_kind_goes_on_the_backup_job(env: Env) -> None:  # noqa: F811
    r = env.client.post("/api/v1/backups", json={"volume": "data", "dump": "PostgreSQL"})
    assert r.status_code == 202, r.text
    assert r.json()["params"]["dump"] == "postgres"


def test_an_unknown_dump_kind_is_422_naming_the_known_ones(env: Env) -> None:  # noqa: F811
    r = env.client.post("/api/v1/backups", json={"volume": "data", "dump": "oracle"})
    assert r.status_code == 422
    [field] = error(r)["fields"]
    assert field["field"] == "dump" and "postgres" in field["problem"]


def test_dump_into_takes_a_container_name_and_no_volume_options(env: Env) -> None:  # noqa: F811
    r = env.client.post("/api/v1/restores", json={"backup_id": "b1",
                                                  "dump_into": "db; rm -rf /"})
    assert r.status_code == 422 and error(r)["fields"][0]["field"] == "dump_into"
    r = env.client.post("/api/v1/restores", json={"backup_id": "b1", "dump_into": "db",
                                                  "paths": ["a"]})
    assert r.status_code == 422, r.text
    assert "dump_into (--dump-into) loads the dump into a container" in error(r)["message"]

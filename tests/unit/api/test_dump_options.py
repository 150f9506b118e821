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


def _dump_backup(env: Env, path: str) -> str:  # noqa: F811
    """A catalogued backup holding one dump file ``path`` (as its job recorded it)."""
    from common.db import JobState, catalog, jobs

    with env.db.session() as s:
        job = jobs.create_job(s, kind="backup", host="h1", volume="data", target="local",
                              params={})
        jobs.finish_job(s, job.id, JobState.succeeded, result={"dumps": [
            {"container": "db", "kind": "postgres", "path": path, "bytes": 9,
             "database": "shop" if "@" in path else None}]})
        return catalog.add_backup(s, job_id=job.id, host="h1", volume="data",
                                  target="local", format="repo", key="k", manifest_key="",
                                  checksum="", file_count=1, dumps=[
                                      {"container": "db", "kind": "postgres", "path": path,
                                       "database": "shop" if "@" in path else None}]).id


def test_a_backup_shows_the_databases_its_dumps_hold(env: Env) -> None:  # noqa: F811
    one = _dump_backup(env, ".volkeeper-dumps/postgres-db@shop.pgdump")
    r = env.client.get(f"/api/v1/backups/{one}")
    assert r.status_code == 200, r.text
    assert r.json()["dumps"] == [{"kind": "postgres", "container": "db", "database": "shop",
                                  "path": ".volkeeper-dumps/postgres-db@shop.pgdump"}]
    listed = {b["id"]: b["dumps"] for b in env.client.get("/api/v1/backups").json()}
    assert listed[one][0]["database"] == "shop"


def test_a_database_is_named_only_for_a_dump_of_one_database(env: Env) -> None:  # noqa: F811
    r = env.client.post("/api/v1/restores", json={"backup_id": "b1", "database": "copy"})
    assert r.status_code == 422, r.text
    assert "database (--database) names the database that dump_into" in error(r)["message"]
    r = env.client.post("/api/v1/restores", json={"backup_id": "b1", "dump_into": "db",
                                                  "database": "a b"})
    assert r.status_code == 422 and error(r)["fields"][0]["field"] == "database"
    whole = _dump_backup(env, ".volkeeper-dumps/postgres-db.sql")
    r = env.client.post("/api/v1/restores", json={"backup_id": whole, "dump_into": "db",
                                                  "database": "copy"})
    assert r.status_code == 422, r.text
    assert "holds every database of container db" in error(r)["message"]
    assert "--dump-database" in error(r)["hint"]
    one = _dump_backup(env, ".volkeeper-dumps/postgres-db@shop.pgdump")
    r = env.client.post("/api/v1/restores", json={"backup_id": one, "dump_into": "db",
                                                  "database": "copy",
                                                  "replace_database": True})
    assert r.status_code == 202, r.text
    params = r.json()["params"]
    assert (params["dump_into"], params["database"], params["replace_database"]) == (
        "db", "copy", True)

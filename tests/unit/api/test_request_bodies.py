"""What a client is told about the body of its request: malformed JSON, no body, no JSON
object; and the repository jobs whose body has only defaults, which may be left out."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from tests.unit.api.test_api import Env, _make, env, error  # noqa: F401 - env is a fixture


def test_malformed_json_is_422_saying_the_body_is_not_json(env: Env) -> None:  # noqa: F811
    r = env.client.post("/api/v1/backups", content=b'{"volume": ',
                        headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    [field] = error(r)["fields"]
    # not pydantic's location (a character offset) posing as a field name
    assert field["field"] == "body", field
    assert field["problem"].startswith("not valid JSON (") and "character" in field["problem"]


def test_a_missing_body_is_422_saying_a_json_object_is_needed(env: Env) -> None:  # noqa: F811
    r = env.client.post("/api/v1/backups")
    assert r.status_code == 422
    [field] = error(r)["fields"]
    assert field["field"] == "body"
    assert "needs a JSON object" in field["problem"] and "application/json" in field["problem"]


@pytest.mark.parametrize(("body", "ctype"), [
    (b"[]", "application/json"),
    (b"volume=data", "application/x-www-form-urlencoded"),  # curl -d without -H
])
def test_a_body_that_is_no_object_is_422_saying_so(
        env: Env, body: bytes, ctype: str) -> None:  # noqa: F811
    r = env.client.post("/api/v1/backups", content=body, headers={"Content-Type": ctype})
    assert r.status_code == 422
    assert error(r)["fields"] == [{"field": "body", "problem": "the body must be a JSON "
                                   "object (Content-Type: application/json)"}]


@pytest.mark.parametrize("action", ["stats", "snapshots", "keys/list", "unlock", "prune",
                                    "repair"])
def test_repository_jobs_need_no_body_when_every_field_has_a_default(
        env: Env, action: str) -> None:  # noqa: F811
    r = env.client.post(f"/api/v1/targets/local/{action}")
    assert r.status_code == 202, r.text
    assert r.json()["target"] == "local"
    # an empty object still works, and a bad field is still refused
    assert env.client.post(f"/api/v1/targets/local/{action}", json={}).status_code in (202, 409)
    r = env.client.post(f"/api/v1/targets/local/{action}", json={"bogus": 1})
    assert r.status_code == 422 and error(r)["fields"][0]["field"] == "bogus"


def test_a_fleet_backup_naming_no_host_says_to_name_one(tmp_path: Path) -> None:
    """In the fleet the default host is the API server's own name: no Docker host unless
    a worker runs there. The request is refused saying to name the host, not told to
    start a worker on the API server."""
    db_url = f"sqlite:///{tmp_path / 'fleet.db'}"
    auth = {"Authorization": "Bearer t0ken"}
    for e in _make(tmp_path, database_url=db_url, api_token=SecretStr("t0ken"),
                   host_name="control"):
        e.client.post("/api/v1/targets", headers=auth,
                      json={"name": "local", "url": "file:///srv/backups"})
        for path, body in (("/api/v1/backups", {"volume": "data"}),
                           ("/api/v1/groups", {"name": "set", "volumes": ["data"]})):
            r = e.client.post(path, headers=auth, json=body)
            assert r.status_code == 422, r.text
            assert error(r)["message"] == ("no host given, and this API server's own name "
                                           "'control' is not a host of the fleet")
            assert "--host NAME" in error(r)["hint"] and "volkeeper worker" not in r.text
        # naming the host works
        r = e.client.post("/api/v1/backups", headers=auth, json={"volume": "data", "host": "h1"})
        assert r.status_code == 202, r.text


def test_a_database_outage_is_503_unavailable_not_an_internal_error(
        env: Env, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    from collections.abc import Iterator
    from contextlib import contextmanager

    from sqlalchemy.exc import OperationalError

    @contextmanager
    def down() -> Iterator[None]:
        raise OperationalError("SELECT 1", {}, Exception(
            'connection to server at "10.0.0.5", port 5432 failed: Connection refused'))
        yield

    monkeypatch.setattr(env.db, "session", down)
    for path in ("/api/v1/volumes", "/api/v1/jobs", "/api/v1/backups"):
        r = env.client.get(path)
        assert r.status_code == 503, (path, r.text)
        assert error(r)["code"] == "unavailable"
        assert error(r)["message"] == "the database is unavailable"
        assert "10.0.0.5" not in r.text and "SELECT" not in r.text
        assert r.headers["Retry-After"] == "5"


def test_restore_paths_are_kept_once_and_not_inside_another_given(env: Env) -> None:  # noqa: F811
    # ["db", "db/base", "db"] reached GNU tar as three names: "db/base: Not found in
    # archive" (db had brought it), and the restore failed after validating fine
    from common.db import catalog
    from common.jobs.inputs import RestoreIn, parse

    body = {"backup_id": "b", "into": "x",
            "paths": ["db", "db/base", "./db/", "etc/app.conf", "/etc/app.conf", "dbx"]}
    assert parse(RestoreIn, body).paths == ["db", "etc/app.conf", "dbx"]
    with env.db.session() as s:
        backup_id = catalog.add_backup(s, host="h1", volume="data", target="local",
                                       format="tar", key="k", manifest_key="k.m",
                                       checksum="0" * 64).id
    r = env.client.post("/api/v1/restores", json=body | {"backup_id": backup_id})
    assert r.status_code == 202, r.text
    assert r.json()["params"]["paths"] == ["db", "etc/app.conf", "dbx"]

"""Two targets on one storage location would each treat the other's objects as theirs:
a move between them (``delete_source``) forgot the only copy, and forgetting either of two
"copies" deleted both. Adding such a target is refused (409, naming the other target),
and a copy or move between targets already registered that way (rows from before) is
refused (422) before any job is queued."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from common.db import catalog
from common.storage.registry import shares_storage, storage_location
from tests.unit.api.test_api import Env, _make, error
from tests.unit.jobs.test_operations import _backup


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    yield from _make(tmp_path)


def _add(env: Env, name: str, url: str, **options: str) -> tuple[int, dict[str, str]]:
    r = env.client.post("/api/v1/targets", json={"name": name, "url": url,
                                                 "options": options})
    return r.status_code, (error(r) if r.status_code >= 400 else r.json())


def test_a_target_on_another_targets_storage_is_refused_naming_it(env: Env) -> None:
    assert _add(env, "nas", "file:///srv/nas")[0] == 201
    for url in ("file:///srv/nas", "file:///srv/nas/", "file:///srv/x/../nas",
                "file:///srv/nas/volkeeper", "file:///srv/nas/volkeeper/repo/packs"):
        code, err = _add(env, "twin", url)
        assert code == 409, (url, err)
        assert "'nas'" in err["message"] and "location of its own" in err["hint"]
    # beside it, or inside it but outside its volkeeper/ data: fine
    assert _add(env, "sub", "file:///srv/nas/other")[0] == 201
    assert _add(env, "top", "file:///srv")[0] == 201
    # the same bucket and prefix behind the same endpoint (default port spelled out)
    assert _add(env, "s3a", "s3://b1/p", endpoint_url="http://127.0.0.1")[0] == 201
    assert _add(env, "s3b", "s3://b1/p/", endpoint_url="http://127.0.0.1:80")[0] == 409
    assert _add(env, "s3c", "s3://b1/q", endpoint_url="http://127.0.0.1")[0] == 201
    # replacing a target keeps its own location
    r = env.client.post("/api/v1/targets", json={"name": "nas", "url": "file:///srv/nas",
                                                 "replace": True})
    assert r.status_code == 201, r.text


def test_a_move_or_copy_between_targets_sharing_storage_is_refused(env: Env) -> None:
    with env.db.session() as s:  # registered before the check existed
        catalog.add_target(s, "twin", "file:///srv/nas", {}, {})
        catalog.add_target(s, "nas", "file:///srv/nas/", {}, {})
    backup_id = _backup(env, fmt="repo", target="nas")
    r = env.client.post("/api/v1/targets/nas/migrate",
                        json={"destination": "twin", "delete_source": True})
    assert r.status_code == 422, r.text
    assert "same storage" in error(r)["message"]
    r = env.client.post(f"/api/v1/backups/{backup_id}/copy", json={"target": "twin"})
    assert r.status_code == 422, r.text
    assert "same storage" in error(r)["message"]
    assert env.dispatcher.sent == []


def test_storage_locations() -> None:
    def same(a: str, b: str) -> bool:
        return shares_storage(storage_location(a), storage_location(b))

    assert same("file:///a/b", "file:///a//b/")
    assert not same("file:///a/b", "file:///a/bc")
    assert same("file:///a", "file:///a/volkeeper/x")
    assert not same("file:///a", "file:///a/volkeeperx")
    assert not same("file:///a/b", "s3://a/b")
    assert not same("memory://a", "memory://b")
    assert same("s3://bkt/p", "s3://bkt/p/volkeeper/q")


def test_replacing_a_target_answers_with_the_backups_it_still_holds(env: Env) -> None:
    # the answer said backup_count 0 while GET /targets/{name} said 1
    assert _add(env, "nas", "file:///srv/nas")[0] == 201
    _backup(env, target="nas")
    r = env.client.post("/api/v1/targets", json={"name": "nas", "url": "file:///srv/nas2",
                                                 "replace": True})
    assert r.status_code == 201, r.text
    assert r.json()["backup_count"] == 1 and r.json()["stored_bytes"] == 100
    assert env.client.get("/api/v1/targets/nas").json()["backup_count"] == 1


def test_a_target_added_by_another_request_meanwhile_is_a_conflict(
        env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    # two POST /targets of one name at once: the later INSERT failed with a 500
    from sqlalchemy.orm import Session

    from common.errors import Conflict

    with env.db.session() as s:
        catalog.add_target(s, "nas", "file:///srv/nas", {}, {})
    with env.db.session() as s:
        monkeypatch.setattr(Session, "get", lambda *_a, **_k: None)  # it looked before
        with pytest.raises(Conflict, match="another request"):
            catalog.add_target(s, "nas", "file:///srv/other", {}, {})
        monkeypatch.undo()
        # the session goes on (the savepoint was rolled back), the first one stays
        assert catalog.get_target(s, "nas").url == "file:///srv/nas"


def test_a_target_a_job_writes_to_cannot_be_removed_meanwhile(env: Env) -> None:
    # removed under a running backup, the backup was catalogued on a target that was gone
    assert _add(env, "nas", "file:///srv/nas")[0] == 201
    assert _add(env, "far", "file:///srv/far")[0] == 201
    job = env.client.post("/api/v1/backups", json={"volume": "data", "target": "nas"})
    assert job.status_code == 202, job.text
    r = env.client.delete("/api/v1/targets/nas")
    assert r.status_code == 409, r.text
    assert job.json()["id"] in error(r)["message"] and "wait" in error(r)["hint"]
    copy_id = _backup(env)  # on local; a copy to "far" queued
    assert env.client.post(f"/api/v1/backups/{copy_id}/copy",
                           json={"target": "far"}).status_code == 202
    assert env.client.delete("/api/v1/targets/far").status_code == 409
    with env.db.session() as s:
        from common.db import Job, JobState, jobs

        for j in s.scalars(select(Job)):
            jobs.finish_job(s, j.id, JobState.succeeded)
    assert env.client.delete("/api/v1/targets/far").status_code == 204

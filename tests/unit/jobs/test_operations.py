"""The REST API of the operations on stored backups and repositories (tags, pins, forget,
copy, prune, stats, snapshots, keys, unlock) against SQLite with a recording dispatcher:
what is checked in the API process, what is queued where, and what never leaks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from common.config import Settings
from common.db import Database, Job, JobState, catalog, hosts, jobs
from common.db.migrate import upgrade
from common.errors import Unavailable
from common.jobs.operations import OperationsService
from tests.unit.api.test_api import Env, RecordingDispatcher, _make, error

SNAP = "ab" * 32


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    yield from _make(tmp_path)


def _backup(env: Env, fmt: str = "tar.zst", target: str = "local", **extra: Any) -> str:
    with env.db.session() as s:
        repo = fmt == "repo"
        key = f"volkeeper/repo/snapshots/{SNAP}" if repo else "volkeeper/archives/x"
        b = catalog.add_backup(s, host="h1", volume="data", target=target, format=fmt,
                               key=key, manifest_key="" if repo else key + ".m",
                               checksum="" if repo else "0" * 64,
                               snapshot_id=SNAP if repo else "", stored_bytes=100, **extra)
        return b.id


def _job_rows(env: Env) -> list[Job]:
    with env.db.session() as s:
        return list(s.scalars(select(Job)))


def test_tags_and_pin_of_an_archive_backup_change_the_catalog_without_a_job(env: Env) -> None:
    bid = _backup(env)
    other = _backup(env)
    r = env.client.patch(f"/api/v1/backups/{bid}", json={"add_tags": ["before-upgrade", "x"],
                                                         "pinned": True})
    assert r.status_code == 200, r.text
    assert r.json()["job"] is None
    assert r.json()["backup"]["tags"] == ["before-upgrade", "x"]
    assert r.json()["backup"]["pinned"] is True
    r = env.client.patch(f"/api/v1/backups/{bid}", json={"remove_tags": ["x"]})
    shown = env.client.get(f"/api/v1/backups/{bid}").json()
    assert shown["tags"] == ["before-upgrade"] and shown["pinned"] is True
    assert shown["snapshot_id"] is None
    tagged = env.client.get("/api/v1/backups", params={"tag": "before-upgrade"}).json()
    assert [b["id"] for b in tagged] == [bid]
    unpinned = env.client.get("/api/v1/backups", params={"pinned": "false"}).json()
    assert [b["id"] for b in unpinned] == [other]
    assert env.dispatcher.sent == []


def test_invalid_tags_are_refused_naming_the_tag(env: Env) -> None:
    bid = _backup(env)
    r = env.client.patch(f"/api/v1/backups/{bid}", json={"add_tags": ["has space"]})
    assert r.status_code == 422 and "'has space'" in error(r)["message"]
    r = env.client.patch(f"/api/v1/backups/{bid}", json={"add_tags": ["a"],
                                                         "remove_tags": ["a"]})
    assert r.status_code == 422 and "both added and removed" in error(r)["message"]
    assert env.client.get(f"/api/v1/backups/{bid}").json()["tags"] == []
    assert env.client.patch("/api/v1/backups/nope", json={"pinned": True}).status_code == 404


def test_labelling_a_repo_backup_queues_one_job_writing_it_into_the_snapshot(env: Env) -> None:
    bid = _backup(env, "repo")
    r = env.client.patch(f"/api/v1/backups/{bid}", json={"pinned": True})
    assert r.status_code == 200, r.text
    job = r.json()["job"]
    assert job["kind"] == "label" and job["backup_id"] == bid and job["host"] == "h1"
    assert env.dispatcher.sent == [("volkeeper.label", "h1", {"job_id": job["id"]})]
    assert r.json()["backup"]["snapshot_id"] == SNAP
    # while that job is queued, the next change re-uses it (it writes the catalog's state)
    again = env.client.patch(f"/api/v1/backups/{bid}", json={"add_tags": ["keep"]})
    assert again.json()["job"]["id"] == job["id"]
    assert len(env.dispatcher.sent) == 1
    assert again.json()["backup"]["tags"] == ["keep"]


def test_forgetting_a_pinned_backup_is_409_with_the_unpin_hint(env: Env) -> None:
    bid = _backup(env, pinned=True)
    r = env.client.delete(f"/api/v1/backups/{bid}")
    assert r.status_code == 409
    assert "pinned" in error(r)["message"] and f"volkeeper unpin {bid}" in error(r)["hint"]
    assert env.dispatcher.sent == [] and _job_rows(env) == []
    assert env.client.get(f"/api/v1/backups/{bid}").status_code == 200


def test_forget_is_queued_and_the_catalog_row_stays_until_the_worker_deleted(env: Env) -> None:
    bid = _backup(env)
    r = env.client.delete(f"/api/v1/backups/{bid}")
    assert r.status_code == 202, r.text
    assert r.json()["kind"] == "forget" and r.json()["backup_id"] == bid
    assert env.dispatcher.sent == [("volkeeper.forget", "h1", {"job_id": r.json()["id"]})]
    assert env.client.get(f"/api/v1/backups/{bid}").status_code == 200
    assert env.client.delete(f"/api/v1/backups/{bid}").status_code == 409


def test_forget_and_jobs_using_the_backup_exclude_each_other(env: Env) -> None:
    bid = _backup(env)
    verify = env.client.post(f"/api/v1/backups/{bid}/verify").json()
    r = env.client.delete(f"/api/v1/backups/{bid}")
    assert r.status_code == 409
    assert verify["id"] in error(r)["message"] and "verify" in error(r)["message"]
    assert [j.kind for j in _job_rows(env)] == ["verify"]  # the refused forget left no row
    with env.db.session() as s:
        jobs.finish_job(s, verify["id"], JobState.succeeded)
    forget = env.client.delete(f"/api/v1/backups/{bid}")
    assert forget.status_code == 202
    r = env.client.post("/api/v1/restores", json={"backup_id": bid, "into": "elsewhere"})
    assert r.status_code == 409 and forget.json()["id"] in error(r)["message"]
    r = env.client.patch(f"/api/v1/backups/{bid}", json={"pinned": True})
    assert r.status_code == 409 and "being forgotten" in error(r)["message"]
    assert env.client.get(f"/api/v1/backups/{bid}").json()["pinned"] is False
    r = env.client.post(f"/api/v1/backups/{bid}/copy", json={"target": "local"})
    assert r.status_code == 422  # same target, refused before anything else


def test_copy_is_queued_and_checks_the_destination(env: Env) -> None:
    bid = _backup(env)
    r = env.client.post(f"/api/v1/backups/{bid}/copy", json={"target": "nas"})
    assert r.status_code == 404 and "target 'nas'" in error(r)["message"]
    env.client.post("/api/v1/targets", json={"name": "nas", "url": "file:///srv/nas"})
    r = env.client.post(f"/api/v1/backups/{bid}/copy", json={"target": "nas"})
    assert r.status_code == 202, r.text
    assert r.json()["kind"] == "copy" and r.json()["params"]["destination"] == "nas"
    again = env.client.post(f"/api/v1/backups/{bid}/copy", json={"target": "nas"})
    assert again.status_code == 409


def test_prune_takes_the_targets_maintenance_slot_and_stats_do_not(env: Env) -> None:
    assert env.client.post("/api/v1/targets/nope/prune", json={}).status_code == 404
    r = env.client.post("/api/v1/targets/local/prune", json={"dry_run": True})
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["kind"] == "prune" and job["target"] == "local" and job["host"] == "h1"
    assert job["params"] == {"dry_run": True}
    second = env.client.post("/api/v1/targets/local/unlock", json={})
    assert second.status_code == 409 and "target 'local'" in error(second)["message"]
    for kind in ("stats", "snapshots", "stats"):
        r = env.client.post(f"/api/v1/targets/local/{kind}", json={})
        assert r.status_code == 202 and r.json()["kind"] == kind
    assert [t for t, _, _ in env.dispatcher.sent] == [
        "volkeeper.prune", "volkeeper.stats", "volkeeper.snapshots", "volkeeper.stats"]
    # adopting snapshots writes the catalog: it takes the maintenance slot too
    adopt = env.client.post("/api/v1/targets/local/snapshots", json={"adopt": True})
    assert adopt.status_code == 409


def test_a_new_key_passphrase_travels_only_in_the_task_message(env: Env) -> None:
    secret = "a new passphrase nobody may see"
    r = env.client.post("/api/v1/targets/local/keys", json={"new_password": secret})
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    assert env.dispatcher.sent[-1] == ("volkeeper.keys", "h1", {"job_id": job_id})
    assert env.dispatcher.secrets[-1] == {"new_password": secret}
    assert secret not in r.text
    assert secret not in env.client.get(f"/api/v1/jobs/{job_id}").text
    assert secret not in json.dumps([j.params for j in _job_rows(env)])


def test_a_too_short_new_key_passphrase_is_422_before_any_job(env: Env) -> None:
    # it was a 202 and a job that failed on the worker
    r = env.client.post("/api/v1/targets/local/keys", json={"new_password": "second pass"})
    assert r.status_code == 422, r.text
    assert "too short" in error(r)["message"] and "11" in error(r)["message"]
    assert "second pass" not in r.text and _job_rows(env) == []  # never echoed
    assert env.dispatcher.sent == []


def test_targets_show_catalog_usage_and_accept_an_absolute_password_file(env: Env) -> None:
    _backup(env)
    _backup(env)
    [local] = env.client.get("/api/v1/targets").json()
    assert local["backup_count"] == 2 and local["stored_bytes"] == 200
    r = env.client.post("/api/v1/targets", json={"name": "k", "url": "file:///srv/k",
                                                 "options": {"password_file": "repo.key"}})
    assert r.status_code == 422 and "absolute path" in error(r)["message"]
    r = env.client.post("/api/v1/targets", json={
        "name": "k", "url": "file:///srv/k", "options": {"password_file": "/etc/vk/repo.key"}})
    assert r.status_code == 201 and r.json()["options"]["password_file"] == "/etc/vk/repo.key"
    assert r.json()["backup_count"] == 0


def test_fleet_target_jobs_run_on_the_online_host_that_last_backed_up_there(
        tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'f.db'}",
                        redis_url="redis://unused")
    db = Database(settings.effective_database_url)
    upgrade(db)
    dispatcher = RecordingDispatcher()
    service = OperationsService(db, dispatcher, settings)
    with db.session() as s:
        catalog.add_target(s, "s3", "s3://bucket", {}, {})
        for h in ("a", "b"):
            hosts.register_host(s, h, docker_version="28", worker_version="t")
    with pytest.raises(Unavailable, match="--host"):
        service.target_job("stats", target="s3")
    with db.session() as s:
        catalog.add_backup(s, host="b", volume="v", target="s3", format="repo", key="k",
                           manifest_key="", checksum="", snapshot_id=SNAP)
    assert service.target_job("stats", target="s3").host == "b"
    assert service.target_job("stats", target="s3", host="a").host == "a"
    db.dispose()


def test_the_migrations_build_exactly_the_models_tables(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from common.db import Base

    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    upgrade(db)
    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    db.dispose()


def test_repair_is_queued_with_its_options_in_the_targets_maintenance_slot(env: Env) -> None:
    assert env.client.post("/api/v1/targets/nope/repair", json={}).status_code == 404
    r = env.client.post("/api/v1/targets/local/repair",
                        json={"dry_run": True, "forget_broken": True})
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["kind"] == "repair" and job["target"] == "local"
    assert job["params"] == {"dry_run": True, "read_data": False, "forget_broken": True}
    assert [t for t, _, _ in env.dispatcher.sent] == ["volkeeper.repair"]
    assert env.client.post("/api/v1/targets/local/prune", json={}).status_code == 409
    assert env.client.post("/api/v1/targets/local/repair",
                           json={"bogus": 1}).status_code == 422


def test_a_too_long_tag_is_named_without_echoing_all_of_it(env: Env) -> None:
    # the 422 repeated every character of a 3000-character tag
    backup_id = _backup(env)
    r = env.client.patch(f"/api/v1/backups/{backup_id}", json={"add_tags": ["x" * 3000]})
    assert r.status_code == 422
    assert len(error(r)["message"]) < 200 and "3000 characters" in error(r)["message"]

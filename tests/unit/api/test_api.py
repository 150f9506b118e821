"""The REST API against SQLite with a recording dispatcher: validation, errors, locking,
secrets, auth and the job state machine — no servers needed."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.main import create_app
from common.auth import read_token_file
from common.config import Settings
from common.db import Database, JobState, hosts, jobs
from common.db.models import utcnow
from common.errors import Unavailable
from common.progress import MemoryProgressBus


class RecordingDispatcher:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, Any]]] = []
        self.secrets: list[dict[str, Any]] = []
        self.fail = False

    def send(self, task: str, host: str, kwargs: dict[str, Any], *,
             secrets: dict[str, Any] | None = None) -> None:
        if self.fail:
            raise Unavailable("the broker is unreachable (ConnectionError)")
        self.sent.append((task, host, kwargs))
        self.secrets.append(secrets or {})


class Env:
    def __init__(
        self,
        client: TestClient,
        db: Database,
        dispatcher: RecordingDispatcher,
        bus: MemoryProgressBus,
    ) -> None:
        self.client, self.db, self.dispatcher, self.bus = client, db, dispatcher, bus
        self.state: Any = None  # the app's AppState


def _make(tmp_path: Path, *, in_process: bool = False, **overrides: Any) -> Iterator[Env]:
    """The API as ``volkeeper serve`` runs it (not in-process: tokens and the Host check
    apply); embedded, the client sends the admin token of ``<home>/api.token``."""
    overrides = {"allowed_s3_endpoints": "127.0.0.1", "allowed_target_roots": "/srv",
                 "password_file_dir": "/etc", "host_name": "h1"} | overrides
    settings = Settings(home=tmp_path, **overrides)
    db = Database(settings.effective_database_url)
    dispatcher, bus = RecordingDispatcher(), MemoryProgressBus()
    app = create_app(settings, dispatcher=dispatcher, bus=bus, db=db, sweep_every=3600,
                     in_process=in_process)
    token = read_token_file(settings) if settings.mode == "embedded" else None
    headers = {"Authorization": f"Bearer {token}"} if token and not in_process else {}
    with TestClient(app, base_url="http://127.0.0.1:8470", headers=headers,
                    raise_server_exceptions=False) as client:
        with db.session() as s:
            hosts.register_host(s, "h1", docker_version="28.2", worker_version="t")
            hosts.replace_inventory(
                s,
                "h1",
                [
                    {
                        "name": "data",
                        "driver": "local",
                        "mountpoint": "/x",
                        "size_bytes": 10,
                        "labels": {},
                        "containers": {"items": [{"id": "c1", "name": "db", "state": "running"}]},
                        "created_at": None,
                    }
                ],
            )
        env = Env(client, db, dispatcher, bus)
        env.state = app.state.volkeeper
        yield env
    db.dispose()


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    yield from _make(tmp_path)


def error(resp: Any) -> dict[str, Any]:
    body: dict[str, Any] = resp.json()["error"]
    return body


def test_backup_of_an_unknown_host_is_404_naming_the_host(env: Env) -> None:
    r = env.client.post("/api/v1/backups", json={"volume": "data", "host": "nope"})
    assert r.status_code == 404
    assert "'nope'" in error(r)["message"] and "host" in error(r)["message"]


def test_backup_of_an_unknown_volume_is_404_naming_the_volume(env: Env) -> None:
    r = env.client.post("/api/v1/backups", json={"volume": "ghost"})
    assert r.status_code == 404
    assert "volume 'ghost'" in error(r)["message"]


def test_backup_to_an_unknown_target_is_404_naming_the_target(env: Env) -> None:
    r = env.client.post("/api/v1/backups", json={"volume": "data", "target": "nas"})
    assert r.status_code == 404
    assert "target 'nas'" in error(r)["message"]
    # the first step a fleet set up by hand misses: the hint says how to take it
    assert "volkeeper targets add nas URL" in error(r)["hint"]


def test_malformed_backup_request_is_422_naming_the_field(env: Env) -> None:
    r = env.client.post("/api/v1/backups", json={"volume": "data", "format": "zip"})
    assert r.status_code == 422
    assert [f["field"] for f in error(r)["fields"]] == ["format"]
    r = env.client.post("/api/v1/backups", json={"volume": "../etc"})
    assert r.status_code == 422 and error(r)["fields"][0]["field"] == "volume"


def test_backup_is_queued_on_the_volume_hosts_queue(env: Env) -> None:
    r = env.client.post("/api/v1/backups", json={"volume": "data", "format": "tar.gz"})
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["state"] == "queued" and job["params"] == {"format": "tar.gz"}
    assert env.dispatcher.sent == [("volkeeper.backup", "h1", {"job_id": job["id"]})]
    assert env.client.get(f"/api/v1/jobs/{job['id']}").json()["state"] == "queued"


def test_a_second_job_on_the_same_volume_is_409_until_the_first_finishes(env: Env) -> None:
    first = env.client.post("/api/v1/backups", json={"volume": "data"}).json()
    r = env.client.post("/api/v1/backups", json={"volume": "data"})
    assert r.status_code == 409
    assert first["id"] in error(r)["message"]
    with env.db.session() as s:
        jobs.start_job(s, first["id"], "w")
    with env.db.session() as s:
        jobs.finish_job(s, first["id"], JobState.succeeded)
    assert env.client.post("/api/v1/backups", json={"volume": "data"}).status_code == 202


def test_a_broker_failure_fails_the_job_and_releases_the_volume(env: Env) -> None:
    env.dispatcher.fail = True
    r = env.client.post("/api/v1/backups", json={"volume": "data"})
    assert r.status_code == 503
    assert "broker" in error(r)["message"]
    failed = env.client.get("/api/v1/jobs").json()[0]
    assert failed["state"] == "failed" and "could not queue" in failed["error"]
    env.dispatcher.fail = False
    assert env.client.post("/api/v1/backups", json={"volume": "data"}).status_code == 202


def test_a_job_for_an_offline_host_is_refused_with_503(env: Env) -> None:
    with env.db.session() as s:
        hosts.get_host(s, "h1").last_seen_at = utcnow() - timedelta(hours=1)
    r = env.client.post("/api/v1/backups", json={"volume": "data"})
    assert r.status_code == 503
    assert "offline" in error(r)["message"] and "volkeeper worker" in error(r)["hint"]


def test_target_credentials_are_stored_but_never_returned(env: Env) -> None:
    secret = "wJalrXUtnFEMI-very-secret"
    r = env.client.post(
        "/api/v1/targets",
        json={
            "name": "s3main",
            "url": "s3://bucket/prefix",
            "options": {"endpoint_url": "http://127.0.0.1:9000", "path_style": True},
            "credentials": {"access_key_id": "AKIA1", "secret_access_key": secret},
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["has_credentials"] is True
    for path in ("/api/v1/targets", "/api/v1/targets/s3main"):
        body = env.client.get(path).text
        assert secret not in body and "AKIA1" not in body
    assert secret not in env.client.get("/api/v1/openapi.json").text
    raw = Path(env.db.url.split("sqlite:///", 1)[1]).read_bytes()
    assert secret.encode() not in raw and b"AKIA1" not in raw  # sealed at rest


def test_fleet_mode_without_a_secret_key_refuses_credentials_and_says_which_setting(
    tmp_path: Path,
) -> None:
    db_url = f"sqlite:///{tmp_path / 'fleet.db'}"
    auth = {"Authorization": "Bearer t0ken"}
    for e in _make(tmp_path, database_url=db_url, api_token=SecretStr("t0ken")):
        r = e.client.post("/api/v1/targets", headers=auth, json={
            "name": "s3", "url": "s3://bucket/p",
            "credentials": {"access_key_id": "AKIA1", "secret_access_key": "x"}})
        assert r.status_code == 422
        assert "VOLKEEPER_SECRET_KEY" in error(r)["hint"]
        r = e.client.post("/api/v1/targets", headers=auth,
                          json={"name": "s3", "url": "s3://bucket/p"})
        assert r.status_code == 201, r.text  # no credentials (instance role): nothing to seal


def test_invalid_target_urls_are_rejected_with_a_hint(env: Env) -> None:
    for url in ("ftp://x/y", "file://relative/path", "s3:///nobucket"):
        r = env.client.post("/api/v1/targets", json={"name": "bad", "url": url})
        assert r.status_code == 422, (url, r.text)
        assert error(r)["message"]
    r = env.client.post(
        "/api/v1/targets",
        json={"name": "bad", "url": "s3://bucket/p", "credentials": {"password": "x"}},
    )
    assert r.status_code == 422 and "password" in error(r)["message"]


def test_restore_of_an_unknown_backup_is_404(env: Env) -> None:
    r = env.client.post("/api/v1/restores", json={"backup_id": "deadbeef"})
    assert r.status_code == 404 and "backup 'deadbeef'" in error(r)["message"]


def test_the_embedded_default_target_exists(env: Env) -> None:
    names = [t["name"] for t in env.client.get("/api/v1/targets").json()]
    assert names == ["local"]


def test_volumes_list_shows_driver_size_and_containers(env: Env) -> None:
    [v] = env.client.get("/api/v1/volumes").json()
    assert (v["name"], v["driver"], v["size_bytes"]) == ("data", "local", 10)
    assert v["containers"] == [{"id": "c1", "name": "db", "state": "running"}]
    assert env.client.get("/api/v1/hosts").json()[0]["online"] is True


def test_running_job_shows_live_progress_from_the_bus(env: Env) -> None:
    job = env.client.post("/api/v1/backups", json={"volume": "data"}).json()
    with env.db.session() as s:
        jobs.start_job(s, job["id"], "w")
    env.bus.publish(job["id"], {"phase": "backing up", "bytes_done": 42})
    assert env.client.get(f"/api/v1/jobs/{job['id']}").json()["progress"]["bytes_done"] == 42


def test_event_stream_sends_progress_then_the_final_job(env: Env) -> None:
    job = env.client.post("/api/v1/backups", json={"volume": "data"}).json()
    with env.db.session() as s:
        jobs.start_job(s, job["id"], "w")
        jobs.finish_job(s, job["id"], JobState.failed, error="boom", progress={"phase": "failed"})
    r = env.client.get(f"/api/v1/jobs/{job['id']}/events")
    assert r.headers["content-type"].startswith("text/event-stream")
    assert "event: progress" in r.text and "event: end" in r.text and "boom" in r.text


def test_event_stream_pushes_every_snapshot_as_it_is_published(env: Env) -> None:
    job = env.client.post("/api/v1/backups", json={"volume": "data"}).json()
    with env.db.session() as s:
        jobs.start_job(s, job["id"], "w")

    def publish_then_finish() -> None:
        for n in range(1, 6):  # faster than the stream reads the database (every 5 s)
            env.bus.publish(job["id"], {"phase": "backing up", "bytes_done": n})
            time.sleep(0.02)
        with env.db.session() as s:
            jobs.finish_job(s, job["id"], JobState.succeeded, progress={"phase": "done"})
        env.bus.publish(job["id"], {"phase": "done", "bytes_done": 5})

    events: list[str] = []
    publisher = threading.Thread(target=publish_then_finish)
    with env.client.stream("GET", f"/api/v1/jobs/{job['id']}/events?interval=5") as r:
        for line in r.iter_lines():
            if line.startswith("event: "):
                events.append(line[7:])
                if not publisher.is_alive() and len(events) == 1:
                    publisher.start()  # subscribed: the first event came after subscribe
            elif line.startswith("data: ") and events[-1] == "progress":
                events[-1] = f"progress {json.loads(line[6:]).get('bytes_done')}"
    publisher.join()
    assert events[1:6] == [f"progress {n}" for n in range(1, 6)]
    assert events[-1] == "end"


def test_stale_running_jobs_are_failed_by_the_sweep(env: Env) -> None:
    job = env.client.post("/api/v1/backups", json={"volume": "data"}).json()
    with env.db.session() as s:
        jobs.start_job(s, job["id"], "w1")
        jobs.get_job(s, job["id"]).heartbeat_at = utcnow() - timedelta(minutes=10)
    with env.db.session() as s:
        failed = jobs.sweep_stale(
            s, running_after=timedelta(minutes=2), queued_after=timedelta(hours=6)
        )
    assert failed == [job["id"]]
    got = env.client.get(f"/api/v1/jobs/{job['id']}").json()
    assert got["state"] == "failed" and "stopped reporting" in got["error"]


def test_running_jobs_whose_worker_process_on_this_machine_is_gone_are_failed(
        env: Env) -> None:
    job = env.client.post("/api/v1/backups", json={"volume": "data"}).json()
    with env.db.session() as s:
        jobs.start_job(s, job["id"], "h1@box:4242")
    with env.db.session() as s:  # alive, or run on another machine: untouched
        assert jobs.sweep_orphaned(s, "h1", "box", lambda pid: True) == []
        assert jobs.sweep_orphaned(s, "h1", "other-box", lambda pid: False) == []
    with env.db.session() as s:
        assert jobs.sweep_orphaned(s, "h1", "box", lambda pid: pid != 4242) == [job["id"]]
    got = env.client.get(f"/api/v1/jobs/{job['id']}").json()
    assert got["state"] == "failed" and "no longer exists" in got["error"]
    again = env.client.post("/api/v1/backups", json={"volume": "data"})
    assert again.status_code == 202  # the volume's lock was released


def test_a_redelivered_message_for_a_job_running_on_a_live_worker_is_dropped(env: Env) -> None:
    job = env.client.post("/api/v1/backups", json={"volume": "data"}).json()
    stale = timedelta(minutes=2)
    with env.db.session() as s:
        assert jobs.start_job(s, job["id"], "w1") is not None
    with env.db.session() as s:  # w1 heartbeats and is not known dead: leave it running
        assert jobs.start_job(s, job["id"], "w2", stale_after=stale,
                              owner_dead=lambda j: False) is None
    got = env.client.get(f"/api/v1/jobs/{job['id']}").json()
    assert got["state"] == "running" and got["worker"] == "w1"
    with env.db.session() as s:  # a dead worker's job is failed, not re-run
        assert jobs.start_job(s, job["id"], "w2", stale_after=stale,
                              owner_dead=lambda j: j.worker == "w1") is None
    got = env.client.get(f"/api/v1/jobs/{job['id']}").json()
    assert got["state"] == "failed" and "w1" in got["error"] and "not retried" in got["error"]


def test_a_redelivered_message_fails_a_job_whose_heartbeat_is_stale(env: Env) -> None:
    job = env.client.post("/api/v1/backups", json={"volume": "data"}).json()
    with env.db.session() as s:
        jobs.start_job(s, job["id"], "w1")
        jobs.get_job(s, job["id"]).heartbeat_at = utcnow() - timedelta(minutes=10)
    with env.db.session() as s:
        assert jobs.start_job(s, job["id"], "w2", stale_after=timedelta(minutes=2)) is None
    got = env.client.get(f"/api/v1/jobs/{job['id']}").json()
    assert got["state"] == "failed" and "stopped reporting" in got["error"]


def test_verify_of_an_unknown_backup_is_404_and_a_known_one_is_queued(env: Env) -> None:
    r = env.client.post("/api/v1/backups/nope/verify")
    assert r.status_code == 404 and "backup 'nope'" in error(r)["message"]
    with env.db.session() as s:
        from common.db import catalog

        b = catalog.add_backup(s, host="h1", volume="data", target="local", format="tar",
                               key="k", manifest_key="k.m", checksum="0" * 64)
        backup_id = b.id
    r = env.client.post(f"/api/v1/backups/{backup_id}/verify")
    assert r.status_code == 202 and r.json()["kind"] == "verify"
    assert env.dispatcher.sent[-1] == ("volkeeper.verify", "h1", {"job_id": r.json()["id"]})
    again = env.client.post(f"/api/v1/backups/{backup_id}/verify")
    assert again.status_code == 409 and "verify" in error(again)["message"]
    # verifying does not hold the volume: a backup of it can still start
    assert env.client.post("/api/v1/backups", json={"volume": "data"}).status_code == 202


def test_verify_takes_read_data_and_a_subset_for_repo_backups_only(env: Env) -> None:
    from common.db import catalog

    with env.db.session() as s:
        repo_id = catalog.add_backup(s, host="h1", volume="data", target="local",
                                     format="repo", key="volkeeper/repo/snapshots/x",
                                     manifest_key="", checksum="0" * 64).id
        tar_id = catalog.add_backup(s, host="h1", volume="data", target="local",
                                    format="tar", key="k", manifest_key="k.m",
                                    checksum="0" * 64).id
    r = env.client.post(f"/api/v1/backups/{repo_id}/verify",
                        json={"subset": "5%", "seed": 9})
    assert r.status_code == 202
    assert r.json()["params"] == {"read_data": False, "subset_percent": 5.0, "seed": 9}
    for bad in ("0", "101%", "lots", -3):
        r = env.client.post(f"/api/v1/backups/{tar_id}/verify", json={"subset": bad})
        assert r.status_code == 422 and "invalid subset" in error(r)["message"]
    r = env.client.post(f"/api/v1/backups/{tar_id}/verify", json={"subset": 5})
    assert r.status_code == 422 and "repository backups only" in error(r)["message"]
    r = env.client.post(f"/api/v1/backups/{tar_id}/verify", json={"read_data": True})
    assert r.status_code == 202 and r.json()["params"]["read_data"] is True


def test_drills_are_queued_with_a_scratch_volume_and_listed_as_history(env: Env) -> None:
    r = env.client.post("/api/v1/drills", json={"backup_id": "nope"})
    assert r.status_code == 404
    with env.db.session() as s:
        from common.db import catalog

        backup_id = catalog.add_backup(s, host="h1", volume="data", target="local",
                                       format="tar", key="k", manifest_key="k.m",
                                       checksum="0" * 64).id
    r = env.client.post("/api/v1/drills", json={"backup_id": backup_id})
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["kind"] == "drill" and job["params"]["scratch_volume"].startswith(
        "volkeeper-drill-")
    assert job["params"]["scratch_volume"] != "data"
    assert [j["id"] for j in env.client.get("/api/v1/drills?volume=data").json()] == [job["id"]]
    assert env.client.get("/api/v1/drills?volume=other").json() == []


def test_rollback_is_refused_for_anything_but_a_completed_replace(env: Env) -> None:
    from common.db import catalog

    with env.db.session() as s:
        plain = jobs.create_job(s, kind="restore", host="h1", volume="data",
                                params={"mode": "new"})
        jobs.finish_job(s, plain.id, JobState.succeeded, result={"volume": "data"})
        safety = catalog.add_backup(s, host="h1", volume="data", target="local",
                                    format="tar.zst", key="k", manifest_key="k.m",
                                    checksum="0" * 64, kind="safety",
                                    expires_at=utcnow() - timedelta(hours=1))
        replaced = jobs.create_job(s, kind="restore", host="h1", volume="other",
                                   params={"mode": "replace"})
        jobs.finish_job(s, replaced.id, JobState.succeeded,
                        result={"safety_backup_id": safety.id, "replace_state": "done"})
    r = env.client.post(f"/api/v1/restores/{plain.id}/rollback")
    assert r.status_code == 422 and "not a completed replace" in error(r)["message"]
    r = env.client.post(f"/api/v1/restores/{replaced.id}/rollback")
    assert r.status_code == 409 and "expired" in error(r)["message"]
    assert env.client.post("/api/v1/restores/nope/rollback").status_code == 404
    # safety snapshots are not listed as backups unless asked for
    assert env.client.get("/api/v1/backups").json() == []
    assert [b["kind"] for b in env.client.get("/api/v1/backups?kind=safety").json()] == [
        "safety"]


def test_an_operator_releases_a_stuck_lock_and_the_release_is_kept_on_the_job(
        env: Env, caplog: pytest.LogCaptureFixture) -> None:
    job = env.client.post("/api/v1/backups", json={"volume": "data"}).json()
    with env.db.session() as s:
        jobs.start_job(s, job["id"], "h1@gone-machine:7")
    r = env.client.post(f"/api/v1/jobs/{job['id']}/release", json={"reason": "machine lost"})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["state"] == "failed" and "released by operator" in got["error"]
    assert "machine lost" in got["error"] and "h1@gone-machine:7" in got["error"]
    assert any("released job" in m and job["id"] in m for m in caplog.messages)
    assert env.client.post("/api/v1/backups", json={"volume": "data"}).status_code == 202
    again = env.client.post(f"/api/v1/jobs/{job['id']}/release")
    assert again.status_code == 409 and "holds no lock" in error(again)["message"]
    assert env.client.post("/api/v1/jobs/nope/release").status_code == 404


def test_event_stream_refuses_an_interval_that_is_not_a_number(env: Env) -> None:
    # interval=nan passed the clamp to 0.05..5 and made the stream read the database
    # without pausing for as long as the job ran
    job = env.client.post("/api/v1/backups", json={"volume": "data"}).json()
    with env.db.session() as s:
        jobs.start_job(s, job["id"], "w")
        jobs.finish_job(s, job["id"], JobState.succeeded, progress={"phase": "done"})
    for bad in ("nan", "NaN", "inf", "-inf"):
        r = env.client.get(f"/api/v1/jobs/{job['id']}/events", params={"interval": bad})
        assert r.status_code == 422, (bad, r.text)
        assert "interval" in error(r)["message"]
    ok = env.client.get(f"/api/v1/jobs/{job['id']}/events", params={"interval": "100"})
    assert ok.status_code == 200 and "event: end" in ok.text  # clamped, as documented


def test_an_unknown_path_or_method_says_so_and_where_the_paths_are(env: Env) -> None:
    # both were {"code": "http_error", "message": "Not Found"} without a hint
    r = env.client.get("/api/v1/backup")
    assert r.status_code == 404
    assert error(r) == {"code": "not_found", "message": "no such path: /api/v1/backup",
                        "hint": "see the API's paths and methods at /api/docs"}
    r = env.client.put("/api/v1/backups", json={})
    assert r.status_code == 405 and error(r)["code"] == "method_not_allowed"
    assert "PUT" in error(r)["message"] and "GET" in error(r)["hint"]
    assert "POST" in r.headers["allow"]


def test_verify_takes_its_host_in_the_body_as_copy_and_drills_do(env: Env) -> None:
    # only ?host= worked; {"host": …} in the body was "Extra inputs are not permitted"
    with env.db.session() as s:
        from common.db import catalog, hosts

        hosts.register_host(s, "h2", docker_version="28.2", worker_version="t")
        backup_id = catalog.add_backup(s, host="h1", volume="data", target="local",
                                       format="tar", key="k", manifest_key="k.m",
                                       checksum="0" * 64).id
    r = env.client.post(f"/api/v1/backups/{backup_id}/verify", json={"host": "h2"})
    assert r.status_code == 202, r.text
    assert r.json()["host"] == "h2"
    with env.db.session() as s:
        jobs.finish_job(s, r.json()["id"], JobState.succeeded)
    both = env.client.post(f"/api/v1/backups/{backup_id}/verify", params={"host": "h1"},
                           json={"host": "h2"})
    assert both.status_code == 422 and "name the host once" in error(both)["hint"]
    ghost = env.client.post(f"/api/v1/backups/{backup_id}/verify", json={"host": "ghost"})
    assert ghost.status_code == 404


def test_the_openapi_schema_documents_the_error_body_the_api_sends(env: Env) -> None:
    # it documented FastAPI's {"detail": [...]} for 422, which this API never sends
    spec = env.client.get("/api/v1/openapi.json").json()
    responses = spec["paths"]["/api/v1/backups"]["post"]["responses"]
    for status in ("422", "4XX"):
        assert responses[status]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorBody"}, responses
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    detail = spec["components"]["schemas"]["ErrorDetail"]["properties"]
    assert {"code", "message", "hint", "fields"} <= set(detail)
    body = env.client.post("/api/v1/backups", json={}).json()
    assert set(body) == {"error"} and set(body["error"]) <= set(detail)

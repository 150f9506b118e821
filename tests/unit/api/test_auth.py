"""Authentication and authorization of the API as ``volkeeper serve`` runs it: the token
file, roles and named tokens, the audit log, the trusted-Host check, the console's session
cookie and its CSRF check, the docs behind a token — no servers needed."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select

from common.auth import hash_secret, read_token_file
from common.config import Settings
from common.db import ApiToken, AuditEntry, JobState, jobs
from tests.unit.api.test_api import Env, _make, error


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    yield from _make(tmp_path)


def bare(env: Env, base_url: str = "http://127.0.0.1:8470", **kw: Any) -> TestClient:
    """A client on the same app without the admin token."""
    return TestClient(env.client.app, base_url=base_url, raise_server_exceptions=False, **kw)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def new_token(env: Env, name: str, role: str) -> str:
    r = env.client.post("/api/v1/tokens", json={"name": name, "role": role})
    assert r.status_code == 201, r.text
    return str(r.json()["secret"])


def test_the_embedded_token_file_is_created_0600_and_holds_the_admin_secret(
        env: Env, tmp_path: Path) -> None:
    path = tmp_path / "api.token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secret = path.read_text().strip()
    assert len(secret) > 30
    assert env.client.get("/api/v1/whoami").json() == {"name": "admin", "role": "admin"}
    assert not list(tmp_path.glob(".api.token.*"))  # no temporary file left behind


def test_an_existing_token_file_is_kept_and_made_private(tmp_path: Path) -> None:
    (tmp_path / "api.token").write_text("vk_existing-secret-0123456789\n")
    (tmp_path / "api.token").chmod(0o644)
    for e in _make(tmp_path):
        assert e.client.get("/api/v1/whoami").status_code == 200
    assert read_token_file(Settings(home=tmp_path)) == "vk_existing-secret-0123456789"
    assert stat.S_IMODE((tmp_path / "api.token").stat().st_mode) == 0o600


def test_no_token_is_401_with_a_hint_naming_the_token_file(env: Env, tmp_path: Path) -> None:
    with bare(env) as c:
        for method, path in (("GET", "/api/v1/volumes"), ("POST", "/api/v1/backups"),
                             ("GET", "/api/v1/openapi.json"), ("GET", "/api/docs")):
            r = c.request(method, path, json={"volume": "data"})
            assert r.status_code == 401, (path, r.text)
            assert str(tmp_path / "api.token") in error(r)["hint"]
            assert r.headers["www-authenticate"] == "Bearer"
        r = c.get("/api/v1/jobs", headers=bearer("vk_wrong"))
        assert r.status_code == 401 and "unknown" in error(r)["message"]
        assert env.dispatcher.sent == []


def test_health_answers_without_a_token_but_shows_details_only_with_one(env: Env) -> None:
    with bare(env) as c:
        assert c.get("/api/v1/health").json() == {"status": "ok"}
    full = env.client.get("/api/v1/health").json()
    assert full["mode"] == "embedded"
    assert full["checks"] == {"database": "ok", "redis": "not used", "scheduler": "not running"}


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8470", "127.0.0.1.nip.io",
                                  "10.0.0.5:8470"])
def test_embedded_refuses_a_dns_rebinding_host_header_with_400(env: Env, host: str) -> None:
    r = env.client.get("/api/v1/volumes", headers={"Host": host})
    assert r.status_code == 400
    assert error(r)["code"] == "untrusted_host" and "loopback" in error(r)["hint"]


@pytest.mark.parametrize("host", ["127.0.0.1:8470", "localhost:8470", "[::1]:8470",
                                  "LOCALHOST"])
def test_embedded_answers_loopback_host_names(env: Env, host: str) -> None:
    assert env.client.get("/api/v1/volumes", headers={"Host": host}).status_code == 200


def test_the_fleet_answers_only_the_allowed_hosts_when_set(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'fleet.db'}"
    for e in _make(tmp_path, database_url=db_url, api_token=SecretStr("t0ken"),
                   allowed_hosts="volkeeper.example.com"):
        r = e.client.get("/api/v1/jobs", headers=bearer("t0ken") | {"Host": "evil.example"})
        assert r.status_code == 400 and "VOLKEEPER_ALLOWED_HOSTS" in error(r)["hint"]
        for host in ("volkeeper.example.com", "VOLKEEPER.example.com:443",
                     "127.0.0.1:8470"):  # loopback: the container's health check
            r = e.client.get("/api/v1/jobs", headers=bearer("t0ken") | {"Host": host})
            assert r.status_code == 200


def test_fleet_docs_and_openapi_need_the_token(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'fleet.db'}"
    for e in _make(tmp_path, database_url=db_url, api_token=SecretStr("t0ken")):
        for path in ("/api/docs", "/api/v1/openapi.json"):
            assert e.client.get(path).status_code == 401
            assert e.client.get(path, headers=bearer("t0ken")).status_code == 200
        assert "VOLKEEPER_API_TOKEN" in error(e.client.get("/api/v1/jobs"))["hint"]


def test_the_docs_page_runs_only_the_pinned_swagger_ui_it_holds_hashes_of(env: Env) -> None:
    # it loaded swagger-ui-dist@5 (whatever 5.x is newest) from a CDN without integrity
    # on the API's origin, where the console's session cookie works; and a third site's
    # favicon
    import re

    page = env.client.get("/api/docs")
    assert page.status_code == 200
    external = re.findall(r'(?:src|href)="(https?://[^"]+)"', page.text)
    assert len(external) == 2 and all("swagger-ui-dist@5.36.0/" in u for u in external)
    tags = re.findall(r"<(?:script|link)[^>]*https?://[^>]*>", page.text)
    assert len(tags) == 2
    assert all('integrity="sha384-' in t and 'crossorigin="anonymous"' in t for t in tags)
    assert "/api/v1/openapi.json" in page.text


def test_no_cors_headers_are_sent(env: Env) -> None:
    r = env.client.options("/api/v1/backups", headers={
        "Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
    assert not any(h.startswith("access-control-") for h in r.headers)
    r = env.client.get("/api/v1/volumes", headers={"Origin": "http://evil.example"})
    assert not any(h.startswith("access-control-") for h in r.headers)


def test_roles_viewer_reads_operator_backs_up_admin_changes_targets(env: Env) -> None:
    viewer, operator = new_token(env, "dash", "viewer"), new_token(env, "ci", "operator")
    with bare(env) as c:
        assert c.get("/api/v1/volumes", headers=bearer(viewer)).status_code == 200
        r = c.post("/api/v1/backups", headers=bearer(viewer), json={"volume": "data"})
        assert r.status_code == 403
        assert "operator role" in error(r)["message"] and "--role operator" in error(r)["hint"]
        r = c.post("/api/v1/backups", headers=bearer(operator), json={"volume": "data"})
        assert r.status_code == 202 and r.json()["requested_by"] == "ci"
        r = c.post("/api/v1/targets", headers=bearer(operator),
                   json={"name": "nas", "url": "file:///srv/nas"})
        assert r.status_code == 403 and "admin role" in error(r)["message"]
        for path in ("/api/v1/tokens", "/api/v1/audit"):
            assert c.get(path, headers=bearer(operator)).status_code == 403
        r = c.post("/api/v1/restores", headers=bearer(operator),
                   json={"backup_id": "x", "mode": "replace"})
        assert r.status_code == 403 and "replace-restore" in error(r)["message"]
    r = env.client.post("/api/v1/targets", json={"name": "nas", "url": "file:///srv/nas"})
    assert r.status_code == 201
    [(_, _, kwargs)] = env.dispatcher.sent
    with env.db.session() as s:
        assert jobs.get_job(s, kwargs["job_id"]).requested_by == "ci"


def test_tokens_are_stored_hashed_shown_once_and_revocable(env: Env) -> None:
    r = env.client.post("/api/v1/tokens", json={"name": "ci", "role": "operator"})
    secret = r.json()["secret"]
    assert r.status_code == 201 and secret.startswith("vk_")
    with env.db.session() as s:
        row = s.scalar(select(ApiToken).where(ApiToken.name == "ci"))
        assert row is not None and row.secret_sha256 == hash_secret(secret)
    raw = Path(env.db.url.split("sqlite:///", 1)[1]).read_bytes()
    assert secret.encode() not in raw
    listed = env.client.get("/api/v1/tokens").json()
    assert [t["name"] for t in listed] == ["ci"] and "secret" not in listed[0]
    assert env.client.post("/api/v1/tokens", json={"name": "ci", "role": "viewer"}
                           ).status_code == 409
    with bare(env) as c:
        assert c.get("/api/v1/whoami", headers=bearer(secret)).json()["name"] == "ci"
        assert env.client.delete("/api/v1/tokens/ci").json()["revoked_at"] is not None
        assert c.get("/api/v1/whoami", headers=bearer(secret)).status_code == 401
    r = env.client.post("/api/v1/tokens", json={"name": "x", "role": "root"})
    assert r.status_code == 422


def test_every_change_is_audited_without_secrets_and_refusals_too(env: Env) -> None:
    viewer = new_token(env, "dash", "viewer")
    env.client.post("/api/v1/targets", json={
        "name": "s3", "url": "s3://bucket/p", "options": {"endpoint_url": "http://127.0.0.1:9"},
        "credentials": {"access_key_id": "AKIA1", "secret_access_key": "very-secret-1"}})
    env.client.post("/api/v1/backups", json={"volume": "data"})
    keys = env.client.post("/api/v1/targets/s3/keys", json={"new_password": "passphrase-42"})
    with env.db.session() as s:  # a target a job still uses is not removed
        jobs.finish_job(s, keys.json()["id"], JobState.succeeded)
    env.client.delete("/api/v1/targets/s3")
    env.client.post("/api/v1/targets", json={"name": "etc", "url": "file:///etc"})
    with bare(env) as c:
        c.delete("/api/v1/targets/s3", headers=bearer(viewer))
    entries = env.client.get("/api/v1/audit", params={"limit": 50}).json()
    got = [(e["actor"], e["action"], e["object"], e["outcome"].split(":")[0])
           for e in reversed(entries)]
    assert got == [
        ("admin", "token.create", "dash", "ok"),
        ("admin", "target.add", "s3", "ok"),
        ("admin", "backup", "data", "queued"),
        ("admin", "target.keys.add", "s3", "queued"),
        ("admin", "target.remove", "s3", "ok"),
        ("admin", "target.add", "etc", "error"),
        ("dash", "denied", "DELETE /api/v1/targets/s3", "denied"),
    ]
    text = str(entries)
    assert "very-secret-1" not in text and "AKIA1" not in text and "passphrase-42" not in text
    assert "outside the allowed roots" in entries[1]["outcome"]
    only = env.client.get("/api/v1/audit", params={"action": "target.", "actor": "admin"}
                          ).json()
    assert {e["action"] for e in only} == {"target.add", "target.remove", "target.keys.add"}
    with env.db.session() as s:
        assert all(e.at is not None for e in s.scalars(select(AuditEntry)))


def test_the_console_needs_a_login_and_its_cookie_is_httponly_samesite_strict(
        env: Env, tmp_path: Path) -> None:
    secret = (tmp_path / "api.token").read_text().strip()
    origin = {"Origin": "http://127.0.0.1:8470"}
    with bare(env) as c:
        r = c.get("/", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/login"
        assert "token=" in c.get("/login").text  # the page reads #token=…
        assert c.post("/login", json={"token": "vk_wrong"}, headers=origin).status_code == 401
        assert c.post("/login", json={"token": secret}, headers={
            "Origin": "http://evil.example"}).status_code == 403
        r = c.post("/login", json={"token": secret}, headers=origin)
        assert r.status_code == 200
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert c.get("/").status_code == 200 and "volkeeper" in c.get("/").text
        assert c.get("/api/v1/volumes").status_code == 200
        assert c.get("/api/docs").status_code == 200
        # a change carried by the cookie must come from the console's own origin
        r = c.post("/api/v1/backups", json={"volume": "data"})
        assert r.status_code == 403 and "cross-site" in error(r)["message"]
        r = c.post("/api/v1/backups", json={"volume": "data"},
                   headers={"Origin": "http://evil.example"})
        assert r.status_code == 403
        r = c.post("/api/v1/backups", json={"volume": "data"}, headers=origin)
        assert r.status_code == 202
        c.post("/logout")
        assert c.get("/api/v1/volumes").status_code == 401


def test_the_session_cookie_is_not_the_token_and_ends_with_it(env: Env) -> None:
    """The cookie names the token without holding it: it does not work as a Bearer token,
    a forged or altered one is refused, and revoking the token ends the session."""
    origin = {"Origin": "http://127.0.0.1:8470"}
    _, secret = env.state.tokens.create("ops", "operator")
    with bare(env) as c:
        r = c.post("/login", json={"token": secret}, headers=origin)
        assert r.status_code == 200
        cookie = c.cookies["volkeeper_session"]
        assert secret not in cookie and hash_secret(secret) not in cookie
        assert c.get("/api/v1/whoami").json() == {"name": "ops", "role": "operator"}
    with bare(env) as other:
        assert other.get("/api/v1/whoami", headers=bearer(cookie)).status_code == 401
        value, _, mac = cookie.partition(".")
        for forged in (value + "." + "0" * len(mac), value[:-2] + "." + mac, "x", ""):
            other.cookies.set("volkeeper_session", forged)
            assert other.get("/api/v1/whoami").status_code == 401, forged
    env.state.tokens.revoke("ops")
    with bare(env) as c:
        c.cookies.set("volkeeper_session", cookie)
        r = c.get("/api/v1/whoami")
        assert r.status_code == 401 and "log in again" in (error(r)["hint"] or "")


def test_a_session_expires_and_a_recreated_token_does_not_revive_it(env: Env) -> None:
    sessions = env.state.sessions
    _, secret = env.state.tokens.create("ops", "operator")
    issued = sessions.issue(secret, now=1_000_000.0)
    assert issued is not None
    principal, cookie = issued
    assert sessions.check(cookie, now=1_000_000.0 + 60) == principal
    assert sessions.check(cookie, now=1_000_000.0 + sessions.ttl + 1) is None
    assert sessions.issue("vk_not-a-token") is None
    fresh = sessions.issue(secret)
    assert fresh is not None
    env.state.tokens.revoke("ops")
    with env.db.session() as s:
        s.delete(s.scalar(select(ApiToken).where(ApiToken.name == "ops")))
    env.state.tokens.create("ops", "admin")
    assert sessions.check(fresh[1]) is None


def test_an_in_process_app_acts_as_the_local_user(tmp_path: Path) -> None:
    for e in _make(tmp_path, in_process=True):
        assert e.client.get("/api/v1/whoami").json() == {"name": "cli:local-user",
                                                         "role": "admin"}
        r = e.client.post("/api/v1/backups", json={"volume": "data"})
        assert r.json()["requested_by"] == "cli:local-user"
    assert not (tmp_path / "api.token").exists()


def test_the_cli_reads_the_token_file_for_a_loopback_server_only(tmp_path: Path) -> None:
    from common.auth import client_token, ensure_token_file, login_url

    settings = Settings(home=tmp_path)
    assert client_token(settings, "http://127.0.0.1:8470", None) is None  # no file yet
    secret = ensure_token_file(settings)
    for server in ("http://127.0.0.1:8470", "http://localhost:1", "http://[::1]:8470"):
        assert client_token(settings, server, None) == secret
    assert client_token(settings, "https://volkeeper.example.com", None) is None
    assert client_token(settings, "http://127.0.0.1:8470", "given") == "given"
    assert login_url("http://127.0.0.1:8470/", secret) == (
        f"http://127.0.0.1:8470/login#token={secret}")


def test_the_audit_log_filters_by_time_in_any_timezone(env: Env) -> None:
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    env.client.post("/api/v1/tokens", json={"name": "ci", "role": "viewer"})
    before = datetime.now(UTC) - timedelta(minutes=1)
    after = datetime.now(UTC) + timedelta(minutes=1)
    for since, n in ((before, 1), (before.astimezone(ZoneInfo("Asia/Tokyo")), 1), (after, 0)):
        got = env.client.get("/api/v1/audit", params={"since": since.isoformat()}).json()
        assert len(got) == n, (since, got)


def test_releasing_a_stuck_lock_is_for_admins_and_is_audited(env: Env) -> None:
    operator = new_token(env, "ci", "operator")
    job = env.client.post("/api/v1/backups", json={"volume": "data"}).json()
    with env.db.session() as s:
        jobs.start_job(s, job["id"], "h1@gone-machine:7")
    with bare(env) as c:
        r = c.post(f"/api/v1/jobs/{job['id']}/release", headers=bearer(operator))
        assert r.status_code == 403 and "admin role" in error(r)["message"]
    r = env.client.post(f"/api/v1/jobs/{job['id']}/release", json={"reason": "machine lost"})
    assert r.status_code == 200 and "released by operator admin" in r.json()["error"]
    env.client.post(f"/api/v1/jobs/{job['id']}/release")  # 409: holds no lock any more
    got = [(e["actor"], e["action"], e["object"], e["outcome"].split(":")[0])
           for e in env.client.get("/api/v1/audit", params={"action": "job."}).json()]
    assert got == [("admin", "job.release", job["id"], "error"),
                   ("admin", "job.release", job["id"], "ok")]


def test_repairing_a_repository_is_for_admins(env: Env) -> None:
    operator = new_token(env, "ci", "operator")
    with bare(env) as c:
        r = c.post("/api/v1/targets/local/repair", headers=bearer(operator), json={})
        assert r.status_code == 403 and "admin role" in error(r)["message"]
    r = env.client.post("/api/v1/targets/local/repair", json={"dry_run": True})
    assert r.status_code == 202 and r.json()["requested_by"] == "admin"

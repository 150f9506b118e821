"""The embedded server is authenticated by default, over real HTTP against a running
``volkeeper serve``: the token file it creates (0600), 401 without it (naming the file),
400 for a DNS-rebinding Host header, no CORS, the console login, roles of named tokens,
and the audit log of what was changed."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import httpx
import pytest

from common.auth import login_url
from tests.fixtures.embedded import api_client, api_token

pytestmark = pytest.mark.integration


def test_serve_creates_a_private_token_file_and_requires_it(
        embedded_server: str, embedded_env: dict[str, str]) -> None:
    path = Path(embedded_env["VOLKEEPER_HOME"]) / "api.token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    log = (Path(embedded_env["VOLKEEPER_HOME"]).parent / "serve.log").read_text()
    # not a terminal (a service's log): the login page and where the token is, not the token
    assert f"console: {embedded_server}/login (token: the content of {path})" in log, log
    assert path.read_text().strip() not in log
    for method, route in (("GET", "/api/v1/volumes"), ("POST", "/api/v1/targets"),
                          ("GET", "/api/v1/openapi.json")):
        r = httpx.request(method, embedded_server + route,
                          json={"name": "t", "url": "file:///etc"})
        assert r.status_code == 401, (route, r.text)
        assert str(path) in r.json()["error"]["hint"]
    assert httpx.get(embedded_server + "/api/v1/health").json() == {"status": "ok"}
    with api_client(embedded_server, embedded_env) as c:
        assert c.get("/whoami").json() == {"name": "admin", "role": "admin"}
        assert c.get("/health").json()["mode"] == "embedded"


def test_a_dns_rebinding_host_header_is_refused_and_no_cors_is_sent(
        embedded_server: str, embedded_env: dict[str, str]) -> None:
    auth = {"Authorization": f"Bearer {api_token(embedded_env)}"}
    port = embedded_server.rsplit(":", 1)[1]
    for host in (f"rebind.attacker.example:{port}", "attacker.example"):
        r = httpx.get(embedded_server + "/api/v1/volumes", headers=auth | {"Host": host})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "untrusted_host"
    for host in (f"localhost:{port}", f"127.0.0.1:{port}"):
        r = httpx.get(embedded_server + "/api/v1/volumes", headers=auth | {"Host": host})
        assert r.status_code == 200
    r = httpx.options(embedded_server + "/api/v1/targets", headers={
        "Origin": "http://attacker.example", "Access-Control-Request-Method": "POST"})
    assert not [h for h in r.headers if h.lower().startswith("access-control-")]


def test_the_console_login_sets_a_strict_cookie_and_refuses_cross_site_changes(
        embedded_server: str, embedded_env: dict[str, str]) -> None:
    url = login_url(embedded_server, api_token(embedded_env))
    assert url.startswith(embedded_server + "/login#token=vk_")
    with httpx.Client(base_url=embedded_server, timeout=30) as browser:
        assert browser.get("/").status_code == 303
        r = browser.post("/login", json={"token": api_token(embedded_env)},
                         headers={"Origin": embedded_server})
        assert r.status_code == 200
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert browser.get("/").status_code == 200
        r = browser.post("/api/v1/targets", json={"name": "t", "url": "file:///etc"},
                         headers={"Origin": "http://attacker.example"})
        assert r.status_code == 403 and "cross-site" in r.json()["error"]["message"]


def test_named_tokens_have_roles_and_the_audit_log_names_who_changed_what(
        embedded_server: str, embedded_env: dict[str, str], tmp_path: Path) -> None:
    with api_client(embedded_server, embedded_env) as admin:
        viewer = admin.post("/tokens", json={"name": "dash", "role": "viewer"}).json()
        r = httpx.post(embedded_server + "/api/v1/targets",
                       headers={"Authorization": f"Bearer {viewer['secret']}"},
                       json={"name": "t", "url": (tmp_path / "t").as_uri()})
        assert r.status_code == 403 and "admin role" in r.json()["error"]["message"]
        r = admin.post("/targets", json={"name": "etc", "url": "file:///etc"})
        assert r.status_code == 422
        assert "VOLKEEPER_ALLOWED_TARGET_ROOTS" in r.json()["error"]["hint"]
        assert admin.post("/targets", json={"name": "t", "url": (tmp_path / "t").as_uri()}
                          ).status_code == 201
        log: list[dict[str, Any]] = admin.get("/audit").json()
        got = [(e["actor"], e["action"], e["object"], e["outcome"].split(":")[0])
               for e in reversed(log)]
        assert got[-4:] == [("admin", "token.create", "dash", "ok"),
                            ("dash", "denied", "POST /api/v1/targets", "denied"),
                            ("admin", "target.add", "etc", "error"),
                            ("admin", "target.add", "t", "ok")]
        assert viewer["secret"] not in str(log)


def test_cli_tokens_give_named_roles_that_the_server_enforces_and_audits(
        embedded_server: str, embedded_env: dict[str, str]) -> None:
    """`volkeeper tokens create` (embedded, as root on the machine) makes a viewer token;
    `volkeeper --server … --token` with it may read but not change, and the audit log names
    who tried what."""
    import json
    import subprocess
    import sys

    from tests.fixtures.embedded import REPO

    def cli(*args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
        env = dict(embedded_env)
        if token:
            env["VOLKEEPER_API_TOKEN"] = token
        return subprocess.run([sys.executable, "-m", "cli.main", *args], env=env, cwd=REPO,
                              capture_output=True, text=True, timeout=60)

    made = cli("tokens", "create", "watcher", "--role", "viewer", "--json")
    assert made.returncode == 0, made.stderr
    secret = json.loads(made.stdout)["secret"]
    listed = cli("--server", embedded_server, "backups", "--json", token=secret)
    assert listed.returncode == 0 and json.loads(listed.stdout) == [], listed.stderr
    refused = cli("--server", embedded_server, "targets", "add", "evil", "file:///etc",
                  token=secret)
    assert refused.returncode == 1
    assert "admin" in refused.stderr  # the role it would need
    log = json.loads(cli("audit", "--actor", "watcher", "--json").stdout)
    assert [(e["action"], e["object"]) for e in log] == [("denied", "POST /api/v1/targets")]
    assert cli("tokens", "revoke", "watcher").returncode == 0
    gone = cli("--server", embedded_server, "backups", "--json", token=secret)
    assert gone.returncode == 1 and "token" in gone.stderr

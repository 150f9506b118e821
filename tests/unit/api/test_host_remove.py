"""``DELETE /api/v1/hosts/{name}`` as ``volkeeper serve`` runs it: admin only (viewer and
operator get 403, audited), 404 for an unknown host, 409 while it is online or is this
machine; removed, the host leaves ``/hosts``, ``/volumes`` and ``/health`` and its backups
stay listed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from common.db import catalog, hosts
from common.db.models import Host, Policy, utcnow
from tests.unit.api.test_api import Env, _make, error
from tests.unit.api.test_auth import bare, bearer, new_token


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    yield from _make(tmp_path)


def _old_host(env: Env, *, silent_for: float = 3600) -> None:
    with env.db.session() as s:
        hosts.register_host(s, "old", docker_version="27", worker_version="t")
        hosts.replace_inventory(s, "old", [{"name": "pgdata", "driver": "local"}])
        catalog.add_backup(s, host="old", volume="pgdata", target="local", format="tar",
                           key="k", manifest_key="k.m", checksum="0" * 64)
        s.execute(update(Host).where(Host.name == "old")
                  .values(last_seen_at=utcnow() - timedelta(seconds=silent_for)))


def test_only_an_admin_removes_a_host(env: Env) -> None:
    _old_host(env)
    viewer, operator = new_token(env, "dash", "viewer"), new_token(env, "ci", "operator")
    with bare(env) as c:
        for secret in (viewer, operator):
            r = c.delete("/api/v1/hosts/old", headers=bearer(secret))
            assert r.status_code == 403 and "admin role" in error(r)["message"]
        assert c.delete("/api/v1/hosts/old").status_code == 401
    assert "old" in {h["name"] for h in env.client.get("/api/v1/hosts").json()}
    r = env.client.delete("/api/v1/hosts/old")
    assert r.status_code == 200, r.text
    assert r.json() == {"name": "old", "volumes": 1, "backups_kept": 1, "policies": [],
                        "policies_changed": []}
    assert [h["name"] for h in env.client.get("/api/v1/hosts").json()] == ["h1"]
    assert {v["host"] for v in env.client.get("/api/v1/volumes").json()} == {"h1"}
    assert list(env.client.get("/api/v1/health").json()["workers"]) == ["h1"]
    [kept] = env.client.get("/api/v1/backups", params={"host": "old"}).json()
    assert kept["volume"] == "pgdata"
    audit = env.client.get("/api/v1/audit", params={"action": "host.remove"}).json()
    assert [(e["actor"], e["object"], e["outcome"]) for e in audit] == [
        ("admin", "old", "ok")]
    denied = env.client.get("/api/v1/audit", params={"action": "denied"}).json()
    assert {(e["actor"], e["object"]) for e in denied} == {
        ("dash", "DELETE /api/v1/hosts/old"), ("ci", "DELETE /api/v1/hosts/old")}


def test_unknown_online_and_this_machine_are_refused(env: Env) -> None:
    r = env.client.delete("/api/v1/hosts/typo")
    assert r.status_code == 404 and "volkeeper hosts" in error(r)["hint"]
    _old_host(env, silent_for=5)
    r = env.client.delete("/api/v1/hosts/old")
    assert r.status_code == 409
    assert "is online" in error(r)["message"] and "stop its worker" in error(r)["hint"]
    r = env.client.delete("/api/v1/hosts/h1")  # the embedded server's own host
    assert r.status_code == 409 and "this machine" in error(r)["message"]
    assert {h["name"] for h in env.client.get("/api/v1/hosts").json()} == {"h1", "old"}


def test_policies_naming_it_refuse_it_unless_update_policies_which_lists_the_changes(
        env: Env) -> None:
    _old_host(env)
    with env.db.session() as s:
        s.add(Policy(name="nightly", selection={"hosts": ["old", "h1"]}, schedule="@daily",
                     targets=["local"]))
        s.add(Policy(name="solo", selection={"hosts": ["old"]}, schedule="@daily",
                     targets=["local"]))
    r = env.client.delete("/api/v1/hosts/old")
    assert r.status_code == 409
    assert "named by policies: nightly (" in error(r)["message"]
    assert "update_policies=true" in error(r)["hint"]
    assert "old" in {h["name"] for h in env.client.get("/api/v1/hosts").json()}
    r = env.client.delete("/api/v1/hosts/old", params={"update_policies": "true"})
    assert r.status_code == 200, r.text
    assert r.json()["policies_changed"] == [
        {"name": "nightly", "change": "host_dropped", "hosts": ["h1"]},
        {"name": "solo", "change": "disabled", "hosts": ["old"]}]
    assert r.json()["policies"] == ["solo"]
    nightly = env.client.get("/api/v1/policies/nightly").json()
    solo = env.client.get("/api/v1/policies/solo").json()
    assert (nightly["hosts"], nightly["enabled"]) == (["h1"], True)
    assert (solo["hosts"], solo["enabled"]) == (["old"], False)
    audit = env.client.get("/api/v1/audit", params={"action": "policy.update"}).json()
    assert sorted((e["actor"], e["object"]) for e in audit) == [
        ("admin", "nightly"), ("admin", "solo")]

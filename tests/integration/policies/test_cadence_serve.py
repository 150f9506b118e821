"""``volkeeper serve`` (embedded) runs a policy's verify and drill cadences: beside its
backups, the scheduler queues a subset verify and a restore drill of the volume's newest
good backup, requested by ``policy:NAME``, and they succeed; ``policy show`` names the
next times."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.embedded import api_client

pytestmark = pytest.mark.integration


def test_serve_verifies_and_drills_a_policys_backups_on_their_cadence(
        embedded_env: dict[str, str], embedded_server: str, docker_host_a: Any,
        fresh_volume_name: str) -> None:
    docker_host_a.client().volumes.create(fresh_volume_name)
    mount = Path(docker_host_a.client().volumes.get(fresh_volume_name).attrs["Mountpoint"])
    for k in range(20):
        (mount / f"f{k}.bin").write_bytes(bytes([k]) * 50_000)
    with api_client(embedded_server, embedded_env) as http:
        http.post("/hosts/laptop/refresh")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and fresh_volume_name not in {
                v["name"] for v in http.get("/volumes").json()}:
            time.sleep(0.3)
        r = http.post("/policies", json={
            "name": "checked", "volumes": [fresh_volume_name], "schedule": "@every 5s",
            "targets": ["local"], "format": "repo", "verify_schedule": "@every 6s",
            "verify_subset": 50, "drill_schedule": "@every 10s"})
        assert r.status_code == 201, r.text
        shown = http.get("/policies/checked").json()
        assert shown["next_verify_at"] and shown["next_drill_at"]

        def mine() -> list[dict[str, Any]]:
            return [j for j in http.get("/jobs", params={"limit": 200}).json()
                    if j["requested_by"] == "policy:checked"]

        deadline = time.monotonic() + 60
        jobs = mine()
        while time.monotonic() < deadline:
            jobs = mine()
            done = {j["kind"] for j in jobs if j["state"] == "succeeded"}
            if {"backup", "verify", "drill"} <= done:
                break
            time.sleep(0.5)
        assert http.patch("/policies/checked", json={"enabled": False}).status_code == 200
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(
                j["state"] in ("queued", "running") for j in mine()):
            time.sleep(0.5)
        jobs = mine()
        by_kind = {k: [j for j in jobs if j["kind"] == k] for k in ("verify", "drill")}
        assert by_kind["verify"] and by_kind["drill"], jobs
        failed = [j for j in jobs if j["state"] != "succeeded"]
        assert not failed, failed
        assert all(j["params"]["subset_percent"] == 50 for j in by_kind["verify"])
        backups = {b["id"] for b in http.get(
            "/backups", params={"volume": fresh_volume_name}).json()}
        assert {j["backup_id"] for j in by_kind["verify"] + by_kind["drill"]} <= backups
        audit = http.get("/audit", params={"action": "policy.verify"}).json()
        assert audit and {a["actor"] for a in audit} == {"scheduler"}


def test_policy_show_names_the_next_verify_and_drill_and_a_bad_cadence_is_refused(
        embedded_env: dict[str, str], fresh_volume_name: str) -> None:
    from tests.integration.policies.test_policy_cli import cli

    env = embedded_env
    bad = cli(env, "policy", "create", "cad", "--volume", fresh_volume_name, "--schedule",
              "@daily", "--verify-schedule", "every sunday", ok=False)
    assert bad.returncode != 0 and "verify_schedule" in bad.stderr + bad.stdout
    bad = cli(env, "policy", "create", "cad", "--volume", fresh_volume_name, "--schedule",
              "@daily", "--verify-subset", "0", ok=False)
    assert bad.returncode != 0 and "verify_subset" in bad.stderr + bad.stdout
    cli(env, "policy", "create", "cad", "--volume", fresh_volume_name, "--schedule", "@daily",
        "--verify-schedule", "@weekly", "--verify-subset", "5", "--drill-schedule",
        "@monthly")
    shown = cli(env, "policy", "show", "cad").stdout
    verify = next(line for line in shown.splitlines() if line.strip().startswith("verify:"))
    drill = next(line for line in shown.splitlines() if line.strip().startswith("drill:"))
    assert "@weekly" in verify and "5% read back" in verify and "next" in verify, shown
    assert "@monthly" in drill and "next" in drill, shown
    cli(env, "policy", "delete", "cad")

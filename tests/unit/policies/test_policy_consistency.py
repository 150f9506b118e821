"""A policy says how its backups are made consistent (stop_containers, excludes,
snapshot, dump): checked like a backup request (a 422 naming the field), shown, changed by
PATCH and apply, and carried by every run — a burst of the scheduler or ``policy run`` —
into each backup job's params, with the policy named (labels come first for it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from common.db import Job, hosts
from common.jobs.policy_runs import RunResult, run_policies
from common.jobs.policy_state import inventory_view
from tests.unit.api.test_api import Env, _make, error

BASE = {"schedule": "@every 30s", "targets": ["local"]}
CONSISTENT = {"stop_containers": True, "excludes": ["cache/**", "*.tmp"],
              "snapshot": "off"}


def vol(name: str) -> dict[str, Any]:
    items = [{"id": f"c-{name}", "name": f"app-{name}", "state": "running", "labels": {}}]
    return {"name": name, "driver": "local", "mountpoint": f"/x/{name}", "size_bytes": 1,
            "labels": {}, "containers": {"items": items}, "created_at": None}


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    for e in _make(tmp_path):
        with e.db.session() as s:
            hosts.replace_inventory(s, "h1", [vol("app"), vol("db"), vol("plain")])
        yield e


def create(env: Env, name: str, volumes: list[str], **extra: Any) -> Any:
    return env.client.post("/api/v1/policies",
                           json=BASE | {"name": name, "volumes": volumes} | extra)


def test_the_fields_are_shown_patched_and_default_to_a_plain_backup(env: Env) -> None:
    r = create(env, "app", ["app"], **CONSISTENT)
    assert r.status_code == 201, r.text
    shown = env.client.get("/api/v1/policies/app").json()
    assert {k: shown[k] for k in (*CONSISTENT, "dump")} == CONSISTENT | {"dump": None}
    plain = create(env, "plain", ["plain"]).json()
    assert (plain["stop_containers"], plain["excludes"], plain["snapshot"],
            plain["dump"]) == (False, [], None, None)
    r = env.client.patch("/api/v1/policies/app",
                         json={"stop_containers": False, "dump": "PostgreSQL"})
    assert r.status_code == 200, r.text
    assert r.json()["dump"] == "postgres" and r.json()["excludes"] == ["cache/**", "*.tmp"]
    bad = env.client.patch("/api/v1/policies/app", json={"stop_containers": True})
    assert bad.status_code == 422 and "dump" in error(bad)["message"]


@pytest.mark.parametrize(("fields", "field", "words"), [
    ({"dump": "postgres", "stop_containers": True}, "dump", "does not stop"),
    ({"dump": "redis", "snapshot": "btrfs"}, "dump", "does not read a snapshot"),
    ({"dump": "oracle"}, "dump", "postgres"),
    ({"snapshot": "xfs"}, "snapshot", "auto"),
    ({"excludes": ["../etc"]}, "excludes", "invalid exclude pattern"),
    ({"stop_containers": "maybe"}, "stop_containers", "bool"),
])
def test_bad_consistency_is_422_naming_the_field(env: Env, fields: dict[str, Any],
                                                 field: str, words: str) -> None:
    r = create(env, "app", ["app"], **fields)
    assert r.status_code == 422, r.text
    body = error(r)
    assert field in body["message"]
    assert words.lower() in (body["message"] + body["hint"]).lower(), body
    assert env.client.get("/api/v1/policies").json() == []


def test_apply_sets_and_changes_the_fields(env: Env) -> None:
    doc = {"policies": [BASE | {"name": "app", "volumes": ["app"]} | CONSISTENT]}
    assert env.client.post("/api/v1/policies/apply", json=doc).status_code == 200
    doc["policies"][0]["excludes"] = ["logs/**"]
    plan = env.client.post("/api/v1/policies/apply", json=doc | {"dry_run": True}).json()
    assert plan["changes"][0]["changes"] == {"excludes": [["cache/**", "*.tmp"],
                                                          ["logs/**"]]}


def params(result: RunResult | Any) -> dict[str, dict[str, Any]]:
    assert isinstance(result, RunResult), result
    return {j.volume: j.params for j in result.jobs}


def test_a_burst_carries_each_policys_consistency_into_its_backup_params(env: Env) -> None:
    assert create(env, "app", ["app"], **CONSISTENT).status_code == 201
    assert create(env, "db", ["db"], dump="redis").status_code == 201
    assert create(env, "plain", ["plain"]).status_code == 201
    ops = env.client.app.state.volkeeper.service  # type: ignore[attr-defined]
    with env.db.session() as s:
        view = inventory_view(s)
    out = run_policies(ops, ["app", "db", "plain"], actor="scheduler", view=view,
                       refuse_busy=False)
    fmt = ops.settings.default_format
    assert params(out["app"]) == {"app": {
        "format": fmt, "policy": "app", "stop_containers": True,
        "excludes": ["cache/**", "*.tmp"], "snapshot": "off"}}
    assert params(out["db"]) == {"db": {"format": fmt, "policy": "db", "dump": "redis"}}
    assert params(out["plain"]) == {"plain": {"format": fmt, "policy": "plain"}}
    with env.db.session() as s:  # as recorded, what the worker reads
        stored = s.get(Job, out["app"].jobs[0].id)  # type: ignore[union-attr]
        assert stored is not None and stored.params["stop_containers"] is True


def test_policy_run_carries_them_too(env: Env) -> None:
    assert create(env, "app", ["app"], **CONSISTENT).status_code == 201
    r = env.client.post("/api/v1/policies/app/run")
    assert r.status_code in (200, 202), r.text
    [job] = r.json()["jobs"]
    assert job["params"]["excludes"] == ["cache/**", "*.tmp"]
    assert job["params"]["stop_containers"] is True and job["params"]["policy"] == "app"

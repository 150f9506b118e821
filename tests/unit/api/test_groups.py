"""Volume groups through the API (SQLite, recording dispatcher): a Compose project's
volumes become one queued group-backup job; a named set names its volumes; bad groups are
refused naming what to fix; a group's backups are listed and restored together."""

from __future__ import annotations

from typing import Any

from common.db import catalog, hosts
from tests.unit.api.test_api import Env, env, error  # noqa: F401 - env is a fixture


def _inventory(e: Env) -> None:
    def vol(name: str, labels: dict[str, str], ctr_labels: dict[str, str]) -> dict[str, Any]:
        return {"name": name, "driver": "local", "mountpoint": f"/v/{name}", "size_bytes": 1,
                "labels": labels, "created_at": None,
                "containers": {"items": [{"id": f"c-{name}", "name": f"{name}-ctr",
                                          "state": "running", "labels": ctr_labels}]}}

    shop = {"com.docker.compose.project": "shop"}
    with e.db.session() as s:
        hosts.replace_inventory(s, "h1", [
            vol("shop_db", shop, {}), vol("shop_files", {}, shop),  # label on a container
            vol("other", {}, {"com.docker.compose.project": "blog"}),
            vol("data", {}, {})])


def test_a_projects_volumes_are_one_group_backup_job(env: Env) -> None:  # noqa: F811
    _inventory(env)
    r = env.client.post("/api/v1/groups", json={"project": "shop", "stop_containers": True})
    assert r.status_code == 202, r.text
    job = r.json()
    assert (job["kind"], job["volume"]) == ("group-backup", "project:shop")
    assert job["params"]["volumes"] == ["shop_db", "shop_files"]
    assert job["params"]["stop_containers"] is True
    assert env.dispatcher.sent[-1] == ("volkeeper.group-backup", "h1", {"job_id": job["id"]})
    # a second group of the same project, or a backup of a member, waits its turn
    again = env.client.post("/api/v1/groups", json={"project": "shop"})
    assert again.status_code == 409


def test_a_named_set_and_bad_groups(env: Env) -> None:  # noqa: F811
    _inventory(env)
    r = env.client.post("/api/v1/groups", json={"name": "pair", "volumes": ["data", "other"]})
    assert r.status_code == 202, r.text
    assert r.json()["volume"] == "group:pair"
    assert r.json()["params"]["volumes"] == ["data", "other"]
    # while the group is active, another group or a job on one of its volumes waits
    busy = env.client.post("/api/v1/groups", json={"name": "again", "volumes": ["other"]})
    assert busy.status_code == 409 and "job " + r.json()["id"] in error(busy)["message"]
    single = env.client.post("/api/v1/backups", json={"volume": "data"})
    assert single.status_code == 409 and "group backup" in error(single)["message"]
    with env.db.session() as s:  # once it is done, they go ahead
        from common.db import JobState, jobs

        jobs.finish_job(s, r.json()["id"], JobState.succeeded)
    assert env.client.post("/api/v1/backups", json={"volume": "data"}).status_code == 202
    nobody = env.client.post("/api/v1/groups", json={"project": "nope"})
    assert nobody.status_code == 404 and "com.docker.compose.project" in error(nobody)["hint"]
    for body, words in (({"name": "x"}, "has no volumes"),
                        ({"project": "shop", "name": "x", "volumes": ["data"]}, "either"),
                        ({}, "either"),
                        ({"project": "shop", "snapshot": "nfs"}, "snapshot")):
        bad = env.client.post("/api/v1/groups", json=body)
        assert bad.status_code == 422, (body, bad.text)
        assert words in bad.text, bad.text
    ghost = env.client.post("/api/v1/groups", json={"name": "g", "volumes": ["ghost"]})
    assert ghost.status_code == 404 and "'ghost'" in error(ghost)["message"]


def test_a_groups_backups_are_listed_and_restored_together(env: Env) -> None:  # noqa: F811
    _inventory(env)
    with env.db.session() as s:
        for v in ("shop_db", "shop_files"):
            catalog.add_backup(s, job_id="g1", host="h1", volume=v, target="local",
                               format="tar", key=f"k/{v}", manifest_key=f"m/{v}",
                               checksum="c", group_id="g1")
        catalog.add_backup(s, job_id="j2", host="h1", volume="data", target="local",
                           format="tar", key="k/d", manifest_key="m/d", checksum="c")
    listed = env.client.get("/api/v1/groups/g1").json()
    assert sorted(b["volume"] for b in listed) == ["shop_db", "shop_files"]
    assert {b["group_id"] for b in listed} == {"g1"}
    assert len(env.client.get("/api/v1/backups", params={"group": "g1"}).json()) == 2
    made = env.client.post("/api/v1/groups/g1/restore", json={"suffix": "-copy"})
    assert made.status_code == 202, made.text
    assert sorted(j["volume"] for j in made.json()) == ["shop_db-copy", "shop_files-copy"]
    assert {j["kind"] for j in made.json()} == {"restore"}
    missing = env.client.post("/api/v1/groups/nope/restore", json={})
    assert missing.status_code == 404
    bad = env.client.post("/api/v1/groups/g1/restore", json={"suffix": "/x"})
    assert bad.status_code == 422


def test_an_unknown_group_is_404_and_a_group_without_backups_an_empty_list(
        env: Env) -> None:  # noqa: F811
    # GET /groups/{id} answered 200 [] for any id, also a mistyped one
    _inventory(env)
    ghost = env.client.get("/api/v1/groups/nope")
    assert ghost.status_code == 404, ghost.text
    assert "'nope'" in error(ghost)["message"] and "group" in error(ghost)["hint"]
    job = env.client.post("/api/v1/groups", json={"project": "shop"}).json()
    made = env.client.get(f"/api/v1/groups/{job['id']}")  # queued (or failed): no backups
    assert made.status_code == 200 and made.json() == []
    backup = env.client.post("/api/v1/backups", json={"volume": "data"}).json()
    assert env.client.get(f"/api/v1/groups/{backup['id']}").status_code == 404

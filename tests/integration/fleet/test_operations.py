"""Operations on stored backups in the fleet: every job travels API → Redis → the worker of
the right host, with a repository passphrase that lives only in a key file on the workers
(the target's ``password_file``)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.fleet import Fleet
from tests.integration.fleet.test_fleet import mountpoint, submit

pytestmark = pytest.mark.integration


def test_labels_keys_prune_and_copy_run_on_the_workers_with_the_targets_key_file(
        fleet: Fleet, s3_server: Any, tmp_path: Path) -> None:
    keyfile = tmp_path / "fleet-repo.key"
    keyfile.write_text("passphrase only the workers read\n")
    bucket = f"ops-{uuid.uuid4().hex[:10]}"
    s3_server.client().create_bucket(Bucket=bucket)
    with fleet.http as c:
        r = c.post("/targets", json={
            "name": "vault", "url": f"s3://{bucket}/vk",
            "options": {"endpoint_url": s3_server.endpoint_url, "path_style": True,
                        "region": s3_server.region, "password_file": str(keyfile)},
            "credentials": {"access_key_id": s3_server.access_key_id,
                            "secret_access_key": s3_server.secret_access_key}})
        assert r.status_code == 201, r.text
    fleet.docker["host-a"].client().volumes.create("fleet-ops")
    (mountpoint(fleet, "host-a", "fleet-ops") / "data.txt").write_text("fleet data")
    fleet.wait_volume("host-a", "fleet-ops")
    job = fleet.wait_job(submit(fleet, "/backups", {"volume": "fleet-ops", "host": "host-a",
                                                    "target": "vault", "format": "repo"})["id"])
    assert job["state"] == "succeeded", job["error"]
    bid = job["backup_id"]

    with fleet.http as c:
        r = c.patch(f"/backups/{bid}", json={"add_tags": ["fleet"], "pinned": True})
    assert r.status_code == 200, r.text
    label = fleet.wait_job(r.json()["job"]["id"])
    assert label["state"] == "succeeded" and label["host"] == "host-a", label["error"]
    assert label["result"]["rewritten"] is True

    secret = "a second passphrase " + uuid.uuid4().hex
    added = fleet.wait_job(submit(fleet, "/targets/vault/keys", {"new_password": secret})["id"])
    assert added["state"] == "succeeded", added["error"]
    assert added["host"] == "host-a"  # the host that last backed up to the target
    with fleet.http as c:
        assert secret not in c.get(f"/jobs/{added['id']}").text
    keys = fleet.wait_job(submit(fleet, "/targets/vault/keys/list", {})["id"])
    assert len(keys["result"]["keys"]) == 2

    pruned = fleet.wait_job(submit(fleet, "/targets/vault/prune", {"host": "host-b"})["id"])
    assert pruned["state"] == "succeeded" and pruned["host"] == "host-b", pruned["error"]

    # a target whose key file is missing on the workers: a clear failure naming it, no row
    missing = tmp_path / "not-on-the-workers.key"
    with fleet.http as c:
        r = c.post("/targets", json={
            "name": "vault-nokey", "url": f"s3://{bucket}/other",
            "options": {"endpoint_url": s3_server.endpoint_url, "path_style": True,
                        "region": s3_server.region, "password_file": str(missing)},
            "credentials": {"access_key_id": s3_server.access_key_id,
                            "secret_access_key": s3_server.secret_access_key}})
        assert r.status_code == 201, r.text
    copy = fleet.wait_job(submit(fleet, f"/backups/{bid}/copy", {"target": "vault-nokey"})["id"])
    assert copy["state"] == "failed"
    assert str(missing) in copy["error"] and "key file" in copy["error"]
    with fleet.http as c:
        assert c.get("/backups", params={"target": "vault-nokey"}).json() == []
        r = c.delete(f"/backups/{bid}")
    assert r.status_code == 409 and "pinned" in r.json()["error"]["message"]

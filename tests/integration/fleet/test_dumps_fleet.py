"""A database dump through the fleet: the API queues a backup of a Redis volume whose
container is labelled ``volkeeper.dump=redis``, host-a's worker streams the RDB into the
S3 target's repository (the catalog shows the dump it holds), and a restore with
``dump_into`` loads it into a fresh server."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.fixtures.fleet import Fleet
from tests.integration.embedded.test_dumps import redis, start_redis
from tests.integration.fleet.test_fleet import submit

pytestmark = pytest.mark.integration


def test_the_fleet_streams_a_labelled_redis_dump_and_loads_it_into_a_fresh_server(
        fleet: Fleet, db_image: str) -> None:
    client = fleet.docker["host-a"].client()
    name = f"rdf-{uuid.uuid4().hex[:6]}"
    made: list[Any] = [client.volumes.create(name), client.volumes.create(f"{name}-fresh")]
    src = start_redis(client, db_image, name, f"{name}-db", {"volkeeper.dump": "redis"})
    fresh = start_redis(client, db_image, f"{name}-fresh", f"{name}-fresh-db")
    try:
        script = "for i in $(seq 1 500); do echo \"SET k:$i v-$i\"; done"
        assert src.exec_run(["sh", "-c", f"({script}) | redis-cli --pipe"]).exit_code == 0
        fleet.wait_volume("host-a", name)
        job = fleet.wait_job(submit(fleet, "/backups", {
            "volume": name, "host": "host-a", "target": "s3", "format": "repo"})["id"])
        assert job["state"] == "succeeded", job["error"]
        assert [(d["kind"], d["exit_code"]) for d in job["result"]["dumps"]] == [("redis", 0)]
        assert "REDIS" not in str(job["params"])  # the job carries no credentials or data
        with fleet.http as c:  # the catalog (PostgreSQL) shows what the backup holds
            shown = c.get(f"/backups/{job['result']['backup_id']}").json()["dumps"]
            assert shown == [{"kind": "redis", "container": src.name, "database": None,
                              "path": f".volkeeper-dumps/redis-{src.name}.rdb"}]
            listed = {b["id"]: b["dumps"] for b in c.get("/backups").json()}
            assert listed[job["result"]["backup_id"]] == shown

        done = fleet.wait_job(submit(fleet, "/restores", {
            "backup_id": job["result"]["backup_id"], "dump_into": fresh.name})["id"])
        assert done["state"] == "succeeded", done["error"]
        fresh.reload()
        assert fresh.status == "running"
        assert redis(fresh, "DBSIZE") == "500" and redis(fresh, "GET", "k:77") == "v-77"
    finally:
        for c in (src, fresh):
            c.remove(force=True)
        for v in made:
            v.remove(force=True)

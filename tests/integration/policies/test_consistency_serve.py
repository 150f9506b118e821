"""``volkeeper serve`` (embedded) runs a policy that says how its backups are made
consistent: with ``stop_containers`` and an exclude, its scheduled backup of a volume a
running container uses stops that container for the backup (the job records the stop
window), leaves the excluded paths out (recorded, and absent from a restore) and starts
the container again. A container labelled ``volkeeper.stop-during-backup=false`` on a
second volume of the same policy wins over the policy: it is not stopped."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.dockerd import busybox_image
from tests.fixtures.embedded import api_client
from tests.fixtures.util import wait_for

pytestmark = pytest.mark.integration
SERVE = "trap 'exit 0' TERM; sleep 3600 & wait"


@pytest.fixture
def containers(docker_host_a: Any) -> Iterator[list[Any]]:
    made: list[Any] = []
    yield made
    for ctr in made:
        ctr.remove(force=True)


def volume_with_app(docker_host_a: Any, made: list[Any], labels: dict[str, str]
                    ) -> tuple[str, Path, Any]:
    """A volume holding data.bin, cache/junk and x.tmp, used by a running container."""
    client = docker_host_a.client()
    name = f"pc-{uuid.uuid4().hex[:8]}"
    path = Path(client.volumes.create(name).attrs["Mountpoint"])
    (path / "data.bin").write_bytes(b"d" * 200_000)
    (path / "cache").mkdir()
    (path / "cache" / "junk").write_bytes(b"j" * 1000)
    (path / "x.tmp").write_text("scratch\n")
    ctr = client.containers.run(busybox_image(docker_host_a), ["sh", "-c", SERVE],
                                detach=True, network_mode="none", name=f"{name}-app",
                                labels=labels, volumes={name: {"bind": "/data",
                                                               "mode": "rw"}})
    made.append(ctr)
    return name, path, ctr


def running(ctr: Any) -> bool:
    ctr.reload()
    return bool(ctr.attrs["State"]["Running"])


def test_a_policys_stop_and_excludes_apply_to_its_scheduled_backups(
        embedded_env: dict[str, str], embedded_server: str, docker_host_a: Any,
        containers: list[Any]) -> None:
    name, _, ctr = volume_with_app(docker_host_a, containers, {})
    kept, _, keeper = volume_with_app(docker_host_a, containers,
                                      {"volkeeper.stop-during-backup": "false"})
    with api_client(embedded_server, embedded_env) as http:
        http.post("/hosts/laptop/refresh")
        wait_for(lambda: {name, kept} <= {v["name"] for v in http.get("/volumes").json()},
                 30, "the volumes in the inventory", interval=0.3)
        r = http.post("/policies", json={
            "name": "consistent", "volumes": [name, kept], "schedule": "@every 3s",
            "targets": ["local"], "format": "tar", "stop_containers": True,
            "excludes": ["cache/**", "*.tmp"]})
        assert r.status_code == 201, r.text
        assert r.json()["stop_containers"] and r.json()["excludes"] == ["cache/**", "*.tmp"]

        def backups() -> list[dict[str, Any]]:
            return [j for j in http.get("/jobs", params={"limit": 200}).json()
                    if j["requested_by"] == "policy:consistent" and j["kind"] == "backup"]

        def done() -> dict[str, dict[str, Any]]:
            return {j["volume"]: j for j in backups()
                    if j["state"] in ("succeeded", "failed")}

        wait_for(lambda: {name, kept} <= set(done()), 60, "a backup of each volume",
                 interval=0.5)
        assert http.patch("/policies/consistent", json={"enabled": False}).status_code == 200
        wait_for(lambda: all(j["state"] in ("succeeded", "failed", "cancelled")
                             for j in backups()), 60, "the runs under way", interval=0.3)
        first = done()
        job, other = first[name], first[kept]
        assert job["state"] == "succeeded", job["error"]
        assert job["params"]["stop_containers"] is True
        assert job["params"]["excludes"] == ["cache/**", "*.tmp"]
        r = job["result"]
        [window] = r["stop_windows"]
        assert window["name"] == ctr.name and r["stopped_containers"] == [ctr.name]
        assert r["restarted_containers"] == [ctr.name]
        assert r["excludes"] == ["cache/**", "*.tmp"] and r["excluded_entries"] == 2
        assert running(ctr)
        # the container's label says no stop: it wins over the policy
        assert other["state"] == "succeeded", other["error"]
        assert other["result"]["stopped_containers"] == [] and running(keeper)

        backup = http.get(f"/backups/{r['backup_id']}")
        assert backup.status_code == 200, backup.text
        restore = http.post("/restores", json={"backup_id": r["backup_id"],
                                               "into": f"{name}-back"})
        assert restore.status_code == 202, restore.text
        wait_for(lambda: http.get(f"/jobs/{restore.json()['id']}").json()["state"]
                 in ("succeeded", "failed"), 60, "the restore", interval=0.3)
        assert http.get(f"/jobs/{restore.json()['id']}").json()["state"] == "succeeded"
    back = Path(docker_host_a.client().volumes.get(f"{name}-back").attrs["Mountpoint"])
    assert (back / "data.bin").read_bytes() == b"d" * 200_000
    assert not (back / "x.tmp").exists() and not any((back / "cache").iterdir())

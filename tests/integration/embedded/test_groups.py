"""Volume groups as a user runs them (embedded `volkeeper backup --project/--group`,
`volkeeper restore --group`): a Compose project's volumes backed up as one job within one
stop window — dependents stopped first, started last, each container once —, one backup
per volume tied by the group id, restored together (into new names; into the original,
non-empty volumes refused as for one restore); a failing group stores nothing and starts
its containers again."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.embedded import api_client
from tests.fixtures.util import wait_for
from tests.integration.embedded.test_consistent import (
    STOP,
    app,  # noqa: F401 - a fixture
    backup,
    backups_of,
    state,
    when,
)
from tests.integration.embedded.test_embedded import cli
from tests.treecmp import compare_trees

pytestmark = pytest.mark.integration


def project_volumes(docker_host: Any, project: str) -> dict[str, Path]:
    """The project's volumes db and files (labelled like Compose does) with content."""
    out = {}
    for i, part in enumerate(("db", "files")):
        name = f"{project}_{part}"
        v = docker_host.client().volumes.create(name, labels={
            "com.docker.compose.project": project, "com.docker.compose.volume": part})
        path = Path(v.attrs["Mountpoint"])
        (path / f"{part}.bin").write_bytes(bytes([i + 1]) * 200_000)
        (path / "sub").mkdir()
        (path / "sub" / "note.txt").write_text(f"{part} of {project}\n")
        out[name] = path
    return out


def test_a_compose_project_is_backed_up_in_one_stop_window_and_restored_together(
        embedded_env: dict[str, str], docker_host_a: Any, app: Any) -> None:  # noqa: F811
    project = f"shop{uuid.uuid4().hex[:6]}"
    vols = project_volumes(docker_host_a, project)
    db_vol, files_vol = vols
    compose = {"com.docker.compose.project": project}
    db = app(db_vol, f"{project}-db", compose | STOP | {"com.docker.compose.service": "db"})
    web = app(files_vol, f"{project}-web", compose | {
        "com.docker.compose.service": "web",
        "com.docker.compose.depends_on": "db:service_started:false"})
    outsider = f"{project}-other"  # not in the project: not backed up
    docker_host_a.client().volumes.create(outsider)

    job = backup(embedded_env, "--project", project, "--format", "tar.zst")
    assert job["state"] == "succeeded", job["error"]
    assert (job["kind"], job["volume"]) == ("group-backup", f"project:{project}")
    r = job["result"]
    group = r["group_id"]
    assert group == job["id"]
    assert [m["volume"] for m in r["members"]] == [db_vol, files_vol]
    # one stop window for the group: each container stopped once, web (the dependent) first
    assert r["stopped_containers"] == [web.name, db.name]
    assert sorted(r["restarted_containers"]) == sorted([web.name, db.name])
    s_db, s_web = state(db), state(web)
    assert s_db["Running"] and s_web["Running"]
    assert when(s_web["FinishedAt"]) < when(s_db["FinishedAt"])
    assert when(s_db["StartedAt"]) < when(s_web["StartedAt"])

    listed = json.loads(cli(embedded_env, "backups", "--group", group, "--json").stdout)
    assert sorted(b["volume"] for b in listed) == [db_vol, files_vol]
    assert {b["group_id"] for b in listed} == {group}
    assert sorted(b["id"] for b in listed) == sorted(r["backup_ids"])
    assert backups_of(embedded_env, outsider) == []
    # a wide terminal shows the group column (at 80 columns it is among those left out
    # to fit: `backups --group ID` names the group in the title then)
    table = cli(embedded_env | {"COLUMNS": "160"}, "backups").stdout
    assert "group" in table and group in table

    # restored together into new names: each equal to its volume
    p = cli(embedded_env, "restore", "--group", group, "--suffix", "-back", "--json")
    done = json.loads(p.stdout)
    assert [j["state"] for j in done] == ["succeeded", "succeeded"], done
    for name, path in vols.items():
        back = Path(docker_host_a.client().volumes.get(f"{name}-back").attrs["Mountpoint"])
        assert compare_trees(path, back) == []
    # into the original volumes, which hold data: refused, as for one restore
    p = cli(embedded_env, "restore", "--group", group, "--json", ok=False)
    assert p.returncode != 0
    refused = json.loads(p.stdout)
    assert {j["state"] for j in refused} == {"failed"}
    assert all("not empty" in j["error"] for j in refused), refused
    assert (vols[db_vol] / "db.bin").read_bytes() == bytes([1]) * 200_000


def test_a_named_group_that_fails_stores_nothing_and_starts_its_containers(
        embedded_env: dict[str, str], docker_host_a: Any, app: Any,  # noqa: F811
        tmp_path: Path) -> None:
    project = f"set{uuid.uuid4().hex[:6]}"
    vols = list(project_volumes(docker_host_a, project))
    ctr = app(vols[1], f"{project}-app")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "volkeeper").write_text("a file where the target needs a directory")
    cli(embedded_env, "targets", "add", "broken", f"file://{broken}")
    job = backup(embedded_env, "--group", "pair", "--volume", vols[0], "--volume", vols[1],
                 "--stop-containers", "--target", "broken", "--format", "tar", ok=False)
    assert job["state"] == "failed" and "target 'broken'" in job["error"], job["error"]
    assert job["result"]["stopped_containers"] == [ctr.name]
    assert job["result"]["restarted_containers"] == [ctr.name]
    assert state(ctr)["Running"]
    assert backups_of(embedded_env, vols[0]) == backups_of(embedded_env, vols[1]) == []

    ok = backup(embedded_env, "--group", "pair", "--volume", vols[0], "--volume", vols[1],
                "--format", "repo")
    assert ok["state"] == "succeeded", ok["error"]
    assert ok["volume"] == "group:pair" and len(ok["result"]["backup_ids"]) == 2
    p = cli(embedded_env, "backup", vols[0], "--group", "x", ok=False)
    assert p.returncode != 0 and "one VOLUME, or a group" in p.stderr


def test_the_remote_front_backs_up_and_restores_a_group_through_the_api(
        embedded_server: str, embedded_env: dict[str, str], docker_host_a: Any) -> None:
    project = f"api{uuid.uuid4().hex[:6]}"
    vols = project_volumes(docker_host_a, project)
    with api_client(embedded_server, embedded_env) as c:
        c.post("/hosts/laptop/refresh").raise_for_status()
        wait_for(lambda: set(vols) <= {v["name"] for v in c.get("/volumes").json()}, 30,
                 "the server's inventory lists the project's volumes")
    remote = ("--server", embedded_server)
    job = json.loads(cli(embedded_env, *remote, "backup", "--project", project, "--format",
                         "tar", "--wait", "--json").stdout)
    assert job["state"] == "succeeded" and job["kind"] == "group-backup", job
    group = job["result"]["group_id"]
    with api_client(embedded_server, embedded_env) as c:
        members = c.get(f"/groups/{group}").json()
    assert sorted(b["volume"] for b in members) == sorted(vols)
    done = json.loads(cli(embedded_env, *remote, "restore", "--group", group, "--suffix",
                          "-r", "--wait", "--json").stdout)
    assert [j["state"] for j in done] == ["succeeded", "succeeded"], done
    for name, path in vols.items():
        back = Path(docker_host_a.client().volumes.get(f"{name}-r").attrs["Mountpoint"])
        assert compare_trees(path, back) == []

"""A group backup takes the consistency options of a single backup per member: a Compose
project of a live PostgreSQL (its volume dumped, the database never stopped, a client
inserting all the while) and a files volume (its container stopped once) — the dump
loads into a fresh server with every row committed before it, the files restore equal;
and a group read from btrfs snapshots (`--snapshot btrfs`): no container stopped, each
member one instant of a volume being written, every snapshot dropped; and a group of
snapshots and a live member whose process is killed: the next command drops every
snapshot and starts the container the group had stopped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.integration.embedded.test_consistent import (
    STOP,
    app,  # noqa: F401 - a fixture
    backup,
    backups_of,
    new_volume,
    state,
)
from tests.integration.embedded.test_dumps import (
    Pg,
    orders_digest,
    pg_dump,
    run,
    start_inserter,
    start_pg,
)
from tests.integration.embedded.test_embedded import REPO, cli
from tests.integration.embedded.test_snapshots import (
    btrfs,  # noqa: F401 - a fixture
    records,
    snapshots_left,
    subvolume_volume,
    writer,  # noqa: F401 - a fixture
)
from tests.treecmp import compare_trees

pytestmark = pytest.mark.integration


def test_a_project_with_a_database_dumps_it_and_stops_only_the_file_side(
        embedded_env: dict[str, str], docker_host_a: Any, db_image: str,
        app: Any) -> None:  # noqa: F811
    client = docker_host_a.client()
    project = f"pgapp{uuid.uuid4().hex[:6]}"
    compose = {"com.docker.compose.project": project}
    db_vol = f"{project}_db"
    client.volumes.create(db_vol, labels=compose)
    files_vol, files = new_volume(docker_host_a, compose)
    (files / "sub").mkdir()
    (files / "sub" / "upload.txt").write_text("an upload\n")
    db = start_pg(client, db_image, db_vol, f"{project}-db", compose | {
        "com.docker.compose.service": "db", "volkeeper.dump": "postgres"})
    try:
        pg = Pg(client, db_image, db, db_vol)
        pg.sql("CREATE DATABASE shop", "postgres")
        pg.sql("CREATE TABLE orders (id bigserial PRIMARY KEY, note text NOT NULL, "
               "at timestamptz NOT NULL DEFAULT clock_timestamp())")
        start_inserter(pg)
        web = app(files_vol, f"{project}-web", compose | STOP | {
            "com.docker.compose.service": "web",
            "com.docker.compose.depends_on": "db:service_started:false"})
        started = state(db)["StartedAt"]
        committed = int(pg.sql("SELECT max(id) FROM orders"))

        job = backup(embedded_env, "--project", project, "--format", "tar.zst")
        assert job["state"] == "succeeded", job["error"]
        r = job["result"]
        by = {m["volume"]: m for m in r["members"]}
        assert by[db_vol]["read_as"] == "dump" and by[files_vol]["read_as"] == "files"
        assert [(d["kind"], d["exit_code"]) for d in by[db_vol]["dumps"]] == [("postgres", 0)]
        assert r["stopped_containers"] == [web.name] == r["restarted_containers"]
        assert state(db)["Running"] and state(db)["StartedAt"] == started  # never stopped
        assert state(web)["Running"]
        listed = {b["volume"]: b["dumps"] for b in json.loads(cli(
            embedded_env, "backups", "--group", r["group_id"], "--json").stdout)}
        assert listed == {db_vol: [{"kind": "postgres", "container": db.name,
                                    "database": None,
                                    "path": f".volkeeper-dumps/postgres-{db.name}.sql"}],
                          files_vol: []}  # the member's own dumps, on its catalog row

        # the db member loads into a fresh server: every row committed before the dump
        fresh_vol = f"{project}-fresh"
        client.volumes.create(fresh_vol)
        fresh = start_pg(client, db_image, fresh_vol, f"{fresh_vol}-db")
        loaded = run(embedded_env, "restore", by[db_vol]["backup_id"], "--dump-into",
                     fresh.name)
        assert loaded["state"] == "succeeded", loaded["error"]
        upto = int(pg.sql("SELECT max(id) FROM orders", ctr=fresh))
        assert upto >= committed
        assert orders_digest(pg, fresh, upto) == orders_digest(pg, db, upto)
        assert "CREATE TABLE public.orders" in pg_dump(fresh, "shop")

        # restored together: the files equal, the db member's dump file in its volume
        done = json.loads(cli(embedded_env, "restore", "--group", r["group_id"], "--suffix",
                              "-back", "--json").stdout)
        assert [j["state"] for j in done] == ["succeeded", "succeeded"], done
        back = Path(client.volumes.get(f"{files_vol}-back").attrs["Mountpoint"])
        assert compare_trees(files, back) == []
        dumped = Path(client.volumes.get(f"{db_vol}-back").attrs["Mountpoint"])
        assert [p.name for p in (dumped / ".volkeeper-dumps").iterdir()] == [
            f"postgres-{db.name}.sql"]
    finally:
        for c in client.containers.list(all=True, filters={"name": project}):
            if not c.name.endswith("-web"):  # the app fixture removes that one
                c.remove(force=True)


def test_a_group_read_from_btrfs_snapshots_stops_nothing_and_drops_them_all(
        embedded_env: dict[str, str], docker_host_a: Any, btrfs: Path,  # noqa: F811
        writer: Any) -> None:  # noqa: F811
    vols = [subvolume_volume(docker_host_a, btrfs) for _ in range(2)]
    ctrs = [writer(name) for name, _ in vols]  # labelled to stop: the snapshots replace it
    for _, sub in vols:
        while not (sub / "b").exists() or (sub / "b").stat().st_size < 5_000:
            time.sleep(0.05)
    started = [state(c)["StartedAt"] for c in ctrs]

    args = [a for name, _ in vols for a in ("--volume", name)]
    job = backup(embedded_env, "--group", "snapped", *args, "--snapshot", "btrfs",
                 "--format", "repo")
    assert job["state"] == "succeeded", job["error"]
    r = job["result"]
    assert r["stopped_containers"] == []
    assert [state(c)["StartedAt"] for c in ctrs] == started
    for m, (_, sub) in zip(r["members"], vols, strict=True):
        assert m["read_as"] == "snapshot" and m["snapshot"]["kind"] == "btrfs", m
        assert m["snapshot"]["dropped"]
        assert m["snapshot"]["handle"].startswith(f"{sub}/.volkeeper-snapshots/")
    assert snapshots_left(btrfs) == []
    done = json.loads(cli(embedded_env, "restore", "--group", r["group_id"], "--suffix",
                          "-back", "--json").stdout)
    assert [j["state"] for j in done] == ["succeeded", "succeeded"], done
    for c in ctrs:
        c.stop(timeout=5)
    for name, sub in vols:
        back = Path(docker_host_a.client().volumes.get(f"{name}-back").attrs["Mountpoint"])
        a, b = records((back / "a").read_bytes()), records((back / "b").read_bytes())
        assert a == list(range(1, len(a) + 1)) and b == list(range(1, len(b) + 1))
        assert len(b) <= len(a) <= len(b) + 1 and len(a) > 20
        assert (sub / "a").read_bytes().startswith((back / "a").read_bytes().rstrip(b"\0"))
        assert sorted(p.name for p in back.iterdir()) == ["a", "b"]


def test_a_killed_mixed_group_has_its_snapshots_dropped_and_its_container_started(
        embedded_env: dict[str, str], docker_host_a: Any, btrfs: Path,  # noqa: F811
        app: Any) -> None:  # noqa: F811
    snapped = [subvolume_volume(docker_host_a, btrfs)[0] for _ in range(2)]
    plain, path = new_volume(docker_host_a)  # ext4: `auto` reads it live, in the window
    for i in range(4):
        (path / f"blob{i}.bin").write_bytes(os.urandom(8 << 20))
    ctr = app(plain, f"{plain}-app", STOP)
    cli(embedded_env, "jobs")  # the database exists before two processes use it
    slow = embedded_env | {"VOLKEEPER_BANDWIDTH_LIMIT": str(2 << 20)}  # ~16 s for plain
    members = [*snapped, plain]
    p = subprocess.Popen([sys.executable, "-m", "cli.main", "backup", "--group", "mixed",
                          *(a for v in members for a in ("--volume", v)), "--snapshot",
                          "auto", "--format", "tar"], env=slow, cwd=REPO,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while p.poll() is None and time.monotonic() < deadline and (
            len(snapshots_left(btrfs)) < 2 or state(ctr)["Running"]):
        time.sleep(0.05)
    time.sleep(0.3)
    assert p.poll() is None, "the group backup ended before it could be killed"
    p.kill()
    p.wait(30)
    assert len(snapshots_left(btrfs)) == 2 and not state(ctr)["Running"]  # nobody else

    history = json.loads(cli(embedded_env, "jobs", "--json").stdout)
    job = next(j for j in history if j["kind"] == "group-backup")
    assert job["state"] == "failed"
    err = job["error"]
    assert "started again" in err and ctr.name in err and "dropped" in err, err
    assert snapshots_left(btrfs) == [] and state(ctr)["Running"]
    assert all(backups_of(embedded_env, v) == [] for v in members)
    again = backup(embedded_env, "--group", "mixed",
                   *(a for v in members for a in ("--volume", v)), "--snapshot", "auto",
                   "--format", "tar")  # the members are not locked
    assert again["state"] == "succeeded", again["error"]
    assert [m["read_as"] for m in again["result"]["members"]] == [
        "snapshot", "snapshot", "files"]
    assert again["result"]["stopped_containers"] == [ctr.name]
    assert snapshots_left(btrfs) == []

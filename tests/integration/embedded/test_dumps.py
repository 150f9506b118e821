"""Database dumps as first-class backups, on a real PostgreSQL and a real Redis (the image
of ``tests/fixtures/dbimages.py``), as a user runs them (embedded ``volkeeper``): a client
inserts rows the whole time; a dump backup restores into a fresh server equal to the
source at the dump's snapshot; a stop-mode backup of the data directory starts a server
that passes ``pg_amcheck`` with every row committed before the stop; a failing dump fails
the backup, stores nothing and leaves the database running."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.integration.embedded.test_embedded import cli

pytestmark = pytest.mark.integration

PGDATA = "/var/lib/postgresql/data"
USER = "vkadmin"  # the superuser name comes from the container's environment only
INSERTER = ("while :; do echo \"INSERT INTO orders(note) VALUES (md5(random()::text)); "
            "SELECT pg_sleep(0.003);\"; done | psql -X -q -d shop >/dev/null 2>&1")


@dataclass
class Pg:
    client: Any
    image: str
    container: Any
    volume: str

    def sql(self, query: str, db: str = "shop", ctr: Any = None) -> str:
        return psql(ctr or self.container, query, db)


def psql(ctr: Any, query: str, db: str = "shop") -> str:
    for _ in range(5):
        r = ctr.exec_run(["psql", "-X", "-At", "-d", db, "-c", query], user="postgres",
                         environment={"PGUSER": USER})
        assert r.exit_code == 0, r.output.decode(errors="replace")
        out = str(r.output.decode().strip())
        # a SELECT always prints a row here; on a loaded machine (a CI run) the engine
        # once answered an exec with exit 0 and no output at all: ask again
        if out or not query.lstrip().upper().startswith("SELECT"):
            return out
        time.sleep(0.2)
    raise AssertionError(f"psql printed nothing five times for {query!r}")


def start_pg(client: Any, image: str, volume: str, name: str,
             labels: dict[str, str] | None = None) -> Any:
    ctr = client.containers.run(image, ["postgres"], detach=True, network_mode="none",
                                name=name, environment={"POSTGRES_USER": USER},
                                labels=labels or {},
                                volumes={volume: {"bind": PGDATA, "mode": "rw"}})
    wait_ready(ctr)
    ctr.reload()
    return ctr


def wait_ready(ctr: Any) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        r = ctr.exec_run(["pg_isready", "-q"], user="postgres")
        if r.exit_code == 0:
            ok = ctr.exec_run(["psql", "-X", "-At", "-U", USER, "-d", "postgres", "-c",
                               "select 1"], user="postgres")
            if ok.exit_code == 0:
                return
        time.sleep(0.2)
    ctr.reload()
    raise AssertionError(f"postgres did not come up: {ctr.logs()[-2000:]!r}")


@pytest.fixture(scope="module")
def pg(docker_host_a: Any, db_image: str) -> Iterator[Pg]:
    """One PostgreSQL for the module: databases ``shop`` (a client inserts rows the whole
    time) and ``crm`` (still), in a volume."""
    client = docker_host_a.client()
    volume = f"pg-{uuid.uuid4().hex[:8]}"
    client.volumes.create(volume)
    ctr = start_pg(client, db_image, volume, f"{volume}-db")
    p = Pg(client, db_image, ctr, volume)
    p.sql("CREATE DATABASE shop", "postgres")
    p.sql("CREATE DATABASE crm", "postgres")
    p.sql("CREATE TABLE orders (id bigserial PRIMARY KEY, note text NOT NULL, "
          "at timestamptz NOT NULL DEFAULT clock_timestamp())")
    p.sql("CREATE TABLE customers (id int PRIMARY KEY, name text); INSERT INTO customers "
          "SELECT g, 'customer ' || g FROM generate_series(1, 5000) g", "crm")
    start_inserter(p)
    yield p
    for c in client.containers.list(all=True, filters={"name": volume}):
        c.remove(force=True)
    client.volumes.get(volume).remove(force=True)


def start_inserter(p: Pg) -> None:
    """A client inserting rows into ``shop.orders`` (one commit each) until it is killed."""
    before = int(p.sql("SELECT count(*) FROM orders"))
    p.container.exec_run(["sh", "-c", INSERTER], user="postgres",
                         environment={"PGUSER": USER}, detach=True)
    deadline = time.monotonic() + 30
    while int(p.sql("SELECT count(*) FROM orders")) < before + 50:
        assert time.monotonic() < deadline, "the inserting client does not insert"
        time.sleep(0.1)


def run(env: dict[str, str], *args: str, ok: bool = True) -> dict[str, Any]:
    return dict(json.loads(cli(env, *args, "--json", ok=ok).stdout))


def backups_of(env: dict[str, str], volume: str) -> list[dict[str, Any]]:
    return list(json.loads(cli(env, "backups", "--volume", volume, "--json").stdout))


def pg_dump(ctr: Any, db: str) -> str:
    """``pg_dump`` of ``db`` without the random key of its ``\\restrict`` lines."""
    r = ctr.exec_run(["pg_dump", "-U", USER, db], user="postgres")
    assert r.exit_code == 0, r.output
    return "\n".join(line for line in r.output.decode().splitlines()
                     if not line.startswith(("\\restrict", "\\unrestrict")))


def orders_digest(pg: Pg, ctr: Any, upto: int) -> str:
    return pg.sql(f"SELECT count(*) || ':' || md5(string_agg(id || note || at, ',' ORDER BY "
                  f"id)) FROM orders WHERE id <= {upto}", ctr=ctr)


def test_a_dump_backup_of_a_live_database_restores_into_a_fresh_server(
        pg: Pg, embedded_env: dict[str, str]) -> None:
    """Both formats, loaded one after the other into the same fresh server: the second
    load replaces what the first made (pg_dumpall --clean)."""
    fresh_volume = f"{pg.volume}-fresh"
    pg.client.volumes.create(fresh_volume)
    fresh = start_pg(pg.client, pg.image, fresh_volume, f"{fresh_volume}-db")
    started = pg.container.attrs["State"]["StartedAt"]
    for fmt in ("tar.zst", "repo"):
        committed = int(pg.sql("SELECT max(id) FROM orders"))
        job = run(embedded_env, "backup", pg.volume, "--dump", "postgres", "--format", fmt)
        assert job["state"] == "succeeded", job["error"]
        dumps = job["result"]["dumps"]
        assert [(d["kind"], d["exit_code"]) for d in dumps] == [("postgres", 0)]
        assert dumps[0]["path"] == f".volkeeper-dumps/postgres-{pg.container.name}.sql"
        assert job["result"]["stopped_containers"] == []
        assert pg.client.containers.get(pg.container.id).attrs["State"]["StartedAt"] == started

        restored = run(embedded_env, "restore", job["backup_id"], "--dump-into", fresh.name)
        assert restored["state"] == "succeeded", restored["error"]
        assert restored["result"]["loaded"][0]["container"] == fresh.name
        # psql's errors about its own role are expected, and none other came
        assert restored["result"]["loaded"][0]["errors"] == []

        upto = int(pg.sql("SELECT max(id) FROM orders", ctr=fresh))
        assert upto >= committed  # every row committed before the dump started
        assert orders_digest(pg, fresh, upto) == orders_digest(pg, pg.container, upto)
        a, b = pg_dump(pg.container, "crm"), pg_dump(fresh, "crm")
        assert a == b and "customer 5000" in a
        # the dump is a backup like any other: it verifies, and a drill restores it
        v = run(embedded_env, "verify", job["backup_id"],
                *(["--read-data"] if fmt == "repo" else []))
        assert v["state"] == "succeeded", v["error"]
        if fmt == "repo":
            d = run(embedded_env, "drill", job["backup_id"])
            assert d["state"] == "succeeded", d["error"]


def test_a_failing_dump_fails_the_backup_stores_nothing_and_the_database_runs_on(
        pg: Pg, embedded_env: dict[str, str]) -> None:
    started = pg.client.containers.get(pg.container.id).attrs["State"]["StartedAt"]
    # the image has MariaDB's client too, but no MySQL server runs in this container
    job = run(embedded_env, "backup", pg.volume, "--dump", "mysql", ok=False)
    assert job["state"] == "failed"
    assert "mysql dump in container" in job["error"] and "exited with code 2" in \
        job["error"] and "Can't connect to local server" in job["error"], job["error"]
    assert job["result"]["dumps"][0]["exit_code"] == 2
    assert not [b for b in backups_of(embedded_env, pg.volume) if b.get("job_id") == job["id"]]
    state = pg.client.containers.get(pg.container.id).attrs["State"]
    assert state["Running"] and state["StartedAt"] == started
    # a kind volkeeper does not know is refused before anything runs
    bad = cli(embedded_env, "backup", pg.volume, "--dump", "oracle", ok=False)
    assert bad.returncode != 0 and "unknown dump kind 'oracle'" in bad.stdout + bad.stderr


def test_excludes_asked_of_a_dump_backup_are_said_not_to_apply(
        pg: Pg, embedded_env: dict[str, str]) -> None:
    """A dump is the database's content, not its files: ``--exclude`` has nothing to leave
    out; the backup says so instead of taking it silently."""
    job = run(embedded_env, "backup", pg.volume, "--dump", "postgres", "--exclude", "*.tmp")
    assert job["state"] == "succeeded", job["error"]
    assert job["result"]["hook_warnings"] == [
        "the excludes (*.tmp) do not apply to a dump backup: the dump is the database's "
        "content, not its files"]


def test_a_stop_mode_backup_of_the_data_directory_starts_and_passes_amcheck(
        pg: Pg, embedded_env: dict[str, str]) -> None:
    committed = int(pg.sql("SELECT max(id) FROM orders"))
    job = run(embedded_env, "backup", pg.volume, "--stop-containers", "--format", "repo")
    assert job["state"] == "succeeded", job["error"]
    assert job["result"]["stopped_containers"] == [pg.container.name]
    assert "dumps" not in job["result"]
    wait_ready(pg.container)  # started again; its inserting client died with the stop
    at_stop = int(pg.sql("SELECT max(id) FROM orders"))
    assert at_stop >= committed

    into = f"{pg.volume}-files"
    done = run(embedded_env, "restore", job["backup_id"], "--into", into)
    assert done["state"] == "succeeded", done["error"]
    copy = start_pg(pg.client, pg.image, into, f"{into}-db")
    # every row committed before the stop, and nothing else
    assert int(pg.sql("SELECT max(id) FROM orders", ctr=copy)) == at_stop
    assert orders_digest(pg, copy, at_stop) == orders_digest(pg, pg.container, at_stop)
    assert pg_dump(copy, "crm") == pg_dump(pg.container, "crm")
    assert pg.sql("SHOW data_checksums", ctr=copy) == "on"
    check = copy.exec_run(["pg_amcheck", "-U", USER, "--install-missing", "--all"],
                          user="postgres")
    assert check.exit_code == 0, check.output.decode(errors="replace")
    start_inserter(pg)


def redis(ctr: Any, *args: str) -> str:
    r = ctr.exec_run(["redis-cli", *args])
    assert r.exit_code == 0, r.output
    return str(r.output.decode().strip())


def start_redis(client: Any, image: str, volume: str, name: str,
                labels: dict[str, str] | None = None) -> Any:
    ctr = client.containers.run(image, ["redis"], detach=True, network_mode="none", name=name,
                                labels=labels or {},
                                volumes={volume: {"bind": "/data", "mode": "rw"}})
    deadline = time.monotonic() + 30
    while ctr.exec_run(["redis-cli", "ping"]).output.strip() != b"PONG":
        assert time.monotonic() < deadline, ctr.logs()[-2000:]
        time.sleep(0.1)
    return ctr


def test_a_labelled_redis_is_dumped_and_loaded_into_a_fresh_server(
        docker_host_a: Any, db_image: str, embedded_env: dict[str, str]) -> None:
    client = docker_host_a.client()
    volume = f"rd-{uuid.uuid4().hex[:8]}"
    made = [client.volumes.create(volume), client.volumes.create(f"{volume}-fresh")]
    src = start_redis(client, db_image, volume, f"{volume}-db", {"volkeeper.dump": "redis"})
    fresh = start_redis(client, db_image, f"{volume}-fresh", f"{volume}-fresh-db")
    try:
        script = ("for i in $(seq 1 2000); do echo \"SET key:$i value-$i\"; done; "
                  "echo 'RPUSH list a b c'; echo 'HSET h f1 v1 f2 v2'")
        assert src.exec_run(["sh", "-c", f"({script}) | redis-cli --pipe"]).exit_code == 0
        job = run(embedded_env, "backup", volume)  # the label asks for the dump
        assert job["state"] == "succeeded", job["error"]
        assert [d["kind"] for d in job["result"]["dumps"]] == ["redis"]
        redis(src, "SET", "after", "the-backup")
        redis(fresh, "SET", "only", "in-fresh")

        done = run(embedded_env, "restore", job["backup_id"], "--dump-into", fresh.name)
        assert done["state"] == "succeeded", done["error"]
        fresh.reload()
        assert fresh.status == "running"  # the loader restarted it
        deadline = time.monotonic() + 30
        while fresh.exec_run(["redis-cli", "ping"]).output.strip() != b"PONG":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert redis(fresh, "DBSIZE") == "2002"
        assert redis(fresh, "GET", "key:1999") == "value-1999"
        assert redis(fresh, "LRANGE", "list", "0", "-1").split() == ["a", "b", "c"]
        assert redis(fresh, "HGET", "h", "f2") == "v2"
        assert redis(fresh, "EXISTS", "after") == "0" and redis(fresh, "EXISTS", "only") == "0"
    finally:
        for c in (src, fresh):
            c.remove(force=True)
        for v in made:
            v.remove(force=True)

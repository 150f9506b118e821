"""Dumps of one database, restored under another name or replacing one, on a real
PostgreSQL (the image of ``tests/fixtures/dbimages.py``), as a user runs them (embedded
``volkeeper``): a client inserts rows the whole time; ``--dump-database`` dumps each named
database alone; ``restore --dump-into … --database NEW`` loads it into a new database of a
fresh server and beside the original in the same server, equal to the source at the dump's
snapshot; ``--replace-database`` replaces one; an existing database, a dump of every
database and a file path are refused, and a replace whose load fails leaves the old
database as it was."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.embedded.test_dumps import (
    PGDATA,
    USER,
    Pg,
    orders_digest,
    pg_dump,
    psql,
    run,
    start_inserter,
    start_pg,
)
from tests.integration.embedded.test_embedded import cli

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pg(docker_host_a: Any, db_image: str) -> Iterator[Pg]:
    """A PostgreSQL labelled ``volkeeper.dump=postgres`` (every database by default) with
    the databases ``shop`` (a client inserts rows the whole time) and ``crm`` (still)."""
    client = docker_host_a.client()
    volume = f"pgdb-{uuid.uuid4().hex[:8]}"
    client.volumes.create(volume)
    ctr = start_pg(client, db_image, volume, f"{volume}-db", {"volkeeper.dump": "postgres"})
    p = Pg(client, db_image, ctr, volume)
    p.sql("CREATE DATABASE shop", "postgres")
    p.sql("CREATE DATABASE crm", "postgres")
    p.sql("CREATE TABLE orders (id bigserial PRIMARY KEY, note text NOT NULL, "
          "at timestamptz NOT NULL DEFAULT clock_timestamp()); CREATE VIEW recent AS "
          "SELECT * FROM orders ORDER BY id DESC LIMIT 10; CREATE TABLE products (id int "
          "PRIMARY KEY, name text); INSERT INTO products SELECT g, 'product ' || g FROM "
          "generate_series(1, 3000) g")
    p.sql("CREATE TABLE customers (id int PRIMARY KEY, name text); INSERT INTO customers "
          "SELECT g, 'customer ' || g FROM generate_series(1, 5000) g", "crm")
    start_inserter(p)
    yield p
    for c in client.containers.list(all=True, filters={"name": volume}):
        c.remove(force=True)
    for v in client.volumes.list(filters={"name": volume}):
        v.remove(force=True)


@pytest.fixture(scope="module")
def fresh(pg: Pg) -> Any:
    """A second, empty PostgreSQL with the same superuser."""
    volume = f"{pg.volume}-fresh"
    pg.client.volumes.create(volume)
    return start_pg(pg.client, pg.image, volume, f"{volume}-db")


def databases(ctr: Any, user: str = USER) -> set[str]:
    r = ctr.exec_run(["psql", "-X", "-At", "-d", "postgres", "-c",
                      "SELECT datname FROM pg_database"], user="postgres",
                     environment={"PGUSER": user})
    assert r.exit_code == 0, r.output
    return set(r.output.decode().split())


def refused(env: dict[str, str], *args: str) -> str:
    """The error of a command volkeeper refuses before it queues anything."""
    p = cli(env, *args, ok=False)
    assert p.returncode != 0
    return p.stdout + p.stderr


def test_one_database_dumped_live_loads_under_a_new_name_here_and_in_a_fresh_server(
        pg: Pg, fresh: Any, embedded_env: dict[str, str]) -> None:
    committed = int(pg.sql("SELECT max(id) FROM orders"))
    job = run(embedded_env, "backup", pg.volume, "--dump-database", "shop",
              "--dump-database", "crm", "--format", "repo")
    assert job["state"] == "succeeded", job["error"]
    name = pg.container.name
    assert [(d["database"], d["path"], d["exit_code"]) for d in job["result"]["dumps"]] == [
        ("crm", f".volkeeper-dumps/postgres-{name}@crm.pgdump", 0),
        ("shop", f".volkeeper-dumps/postgres-{name}@shop.pgdump", 0)]
    [listed] = [b for b in json.loads(cli(embedded_env, "backups", "--volume", pg.volume,
                                          "--json").stdout) if b["id"] == job["backup_id"]]
    assert [(d["kind"], d["container"], d["database"]) for d in listed["dumps"]] == [
        ("postgres", name, "crm"), ("postgres", name, "shop")]
    backup = job["backup_id"]
    # two dumps: the restore must say which
    assert "holds 2 dumps" in run(embedded_env, "restore", backup, "--dump-into",
                                  fresh.name, ok=False)["error"]

    # into a new database of a fresh server, under another name
    done = run(embedded_env, "restore", backup, "--dump-into", fresh.name,
               "--dump-from", "shop", "--database", "shop_copy")
    assert done["state"] == "succeeded", done["error"]
    assert [(x["database"], x["path"]) for x in done["result"]["loaded"]] == [
        ("shop_copy", f".volkeeper-dumps/postgres-{name}@shop.pgdump")]
    assert "shop_copy" in databases(fresh) and "shop" not in databases(fresh)
    upto = int(psql(fresh, "SELECT max(id) FROM orders", "shop_copy"))
    assert upto >= committed  # every row committed before the dump started
    assert int(pg.sql("SELECT max(id) FROM orders")) > upto  # the client went on writing
    digest = ("SELECT count(*) || ':' || md5(string_agg(id || note || at, ',' ORDER BY id)) "
              f"FROM orders WHERE id <= {upto}")
    assert psql(fresh, digest, "shop_copy") == orders_digest(pg, pg.container, upto)
    assert _schema(fresh, "shop_copy") == _schema(pg.container, "shop")
    assert _table(fresh, "shop_copy", "products") == _table(pg.container, "shop", "products")
    assert psql(fresh, "SELECT count(*) FROM recent", "shop_copy") == "10"

    # beside the original, in the same server
    done = run(embedded_env, "restore", backup, "--dump-into", name,
               "--dump-from", f"{name}@crm", "--database", "crm_copy")
    assert done["state"] == "succeeded", done["error"]
    assert pg_dump(pg.container, "crm_copy") == pg_dump(pg.container, "crm")
    assert not {d for d in databases(pg.container) if d.startswith("volkeeper_restore")}

    # an existing database is refused, and left as it is
    pg.sql("INSERT INTO customers VALUES (0, 'kept')", "crm_copy")
    again = run(embedded_env, "restore", backup, "--dump-into", name, "--dump-from", "crm",
                "--database", "crm_copy", ok=False)
    assert again["state"] == "failed"
    assert "the database 'crm_copy' exists already" in again["error"], again["error"]
    assert "--replace-database" in again["error"]
    assert pg.sql("SELECT name FROM customers WHERE id = 0", "crm_copy") == "kept"

    # … unless it is to be replaced: the dump's content, nothing of the old
    done = run(embedded_env, "restore", backup, "--dump-into", name, "--dump-from", "crm",
               "--database", "crm_copy", "--replace-database")
    assert done["state"] == "succeeded", done["error"]
    assert pg.sql("SELECT count(*) FROM customers WHERE id = 0", "crm_copy") == "0"
    assert pg_dump(pg.container, "crm_copy") == pg_dump(pg.container, "crm")
    # without --database: the database of its own name, replaced when asked
    fresh_done = run(embedded_env, "restore", backup, "--dump-into", fresh.name,
                     "--dump-from", "crm")
    assert fresh_done["state"] == "succeeded", fresh_done["error"]
    assert pg_dump(fresh, "crm") == pg_dump(pg.container, "crm")


def _schema(ctr: Any, db: str) -> str:
    r = ctr.exec_run(["pg_dump", "-U", USER, "--schema-only", db], user="postgres")
    assert r.exit_code == 0, r.output
    return "\n".join(line for line in r.output.decode().splitlines()
                     if not line.startswith(("\\restrict", "\\unrestrict")))


def _table(ctr: Any, db: str, table: str) -> str:
    return psql(ctr, f"SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM {table} t", db)


def test_a_dump_of_every_database_a_path_and_a_database_without_a_container_are_refused(
        pg: Pg, fresh: Any, embedded_env: dict[str, str]) -> None:
    whole = run(embedded_env, "backup", pg.volume)  # the label: pg_dumpall
    assert whole["state"] == "succeeded", whole["error"]
    assert [d["database"] for d in whole["result"]["dumps"]] == [None]
    said = refused(embedded_env, "restore", whole["backup_id"], "--dump-into", fresh.name,
                   "--database", "shop_again")
    assert "holds every database of container" in said, said
    assert "volkeeper.dump-database=NAME" in said and "--dump-database NAME" in said, said
    assert "--dump-into" in refused(embedded_env, "restore", whole["backup_id"],
                                    "--database", "x")
    one = run(embedded_env, "backup", pg.volume, "--dump-database", "crm")
    assert one["state"] == "succeeded", one["error"]
    assert "is a file path" in refused(embedded_env, "restore", one["backup_id"],
                                       "--dump-into", fresh.name, "--database", "/tmp/crm")
    assert "not a database name" in refused(embedded_env, "restore", one["backup_id"],
                                            "--dump-into", fresh.name, "--database", "a;b")
    assert "redis dump holds the whole server" in refused(
        embedded_env, "backup", pg.volume, "--dump", "redis", "--dump-database", "crm")
    assert not {d for d in databases(fresh) if d in ("shop_again", "x")}


def test_a_replace_whose_load_fails_leaves_the_old_database_as_it_was(
        pg: Pg, embedded_env: dict[str, str]) -> None:
    """A server whose superuser is another role: the dump's objects belong to a role it
    lacks, so the load fails — after the old database was left alone."""
    volume = f"{pg.volume}-other"
    pg.client.volumes.create(volume)
    other = pg.client.containers.run(pg.image, ["postgres"], detach=True, network_mode="none",
                                     name=f"{volume}-db", environment={"POSTGRES_USER": "other"},
                                     volumes={volume: {"bind": PGDATA, "mode": "rw"}})
    _wait_other(other)
    def sql(db: str, query: str) -> str:
        r = other.exec_run(["psql", "-X", "-At", "-U", "other", "-d", db, "-c", query],
                           user="postgres")
        assert r.exit_code == 0, r.output
        return str(r.output.decode().strip())

    sql("postgres", "CREATE DATABASE crm")
    sql("crm", "CREATE TABLE marker (x text); INSERT INTO marker VALUES ('the old one')")
    one = run(embedded_env, "backup", pg.volume, "--dump-database", "crm", "--format",
              "tar.zst")
    assert one["state"] == "succeeded", one["error"]
    failed = run(embedded_env, "restore", one["backup_id"], "--dump-into", other.name,
                 "--replace-database", ok=False)
    assert failed["state"] == "failed"
    assert f'role "{USER}" does not exist' in failed["error"], failed["error"]
    assert sql("crm", "SELECT x FROM marker") == "the old one"
    assert not {d for d in databases(other, "other") if d.startswith("volkeeper_restore")}


def _wait_other(ctr: Any) -> None:
    import time

    deadline = time.monotonic() + 60
    while ctr.exec_run(["psql", "-X", "-U", "other", "-d", "postgres", "-c", "select 1"],
                       user="postgres").exit_code != 0:
        assert time.monotonic() < deadline, ctr.logs()[-2000:]
        time.sleep(0.2)


def test_an_unchanged_database_dumped_again_is_stored_once(
        pg: Pg, embedded_env: dict[str, str]) -> None:
    """``pg_dump -Fc -Z0``: the custom format uncompressed, so the repository's chunking
    finds yesterday's dump in today's (a compressed dump would differ throughout)."""
    pg.sql("CREATE DATABASE ledger", "postgres")
    pg.sql("CREATE TABLE entries (id int PRIMARY KEY, memo text); INSERT INTO entries "
           "SELECT g, md5(g::text) || repeat('-', 200) FROM generate_series(1, 120000) g",
           "ledger")
    args = ("backup", pg.volume, "--dump-database", "ledger", "--format", "repo")
    first, second = run(embedded_env, *args), run(embedded_env, *args)
    assert first["state"] == second["state"] == "succeeded", (first["error"], second["error"])
    size = second["result"]["logical_bytes"]
    assert size > 20_000_000 and first["result"]["stored_bytes"] > 0
    assert second["result"]["stored_bytes"] < size // 10, second["result"]

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
    r = ctr.exec_run(["psql", "-X", "-At", "-d", db, "-c", query], user="postgres",
                     environment={"PGUSER": USER})
    assert r.exit_code == 0, r.output.decode(errors="replace")
    return str(r.output.decode().strip())


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
    ctr.exec_run(["sh", "-c", INSERTER], user="postgres", environment={"PGUSER": USER},
                 detach=True)
    deadline = time.monotonic() + 30
    while int(p.sql("SELECT count(*) FROM orders")) < 50:
        assert time.monotonic() < deadline, "the inserting client does not insert"
        time.sleep(0.1)
    yield p
    for c in client.containers.list(all=True, filters={"name": volume}):
        c.remove(force=True)
    client.volumes.get(volume).remove(force=True)


def run(env: dict[str, str], *args: str, ok: bool = True) -> dict[str, Any]:
    return dict(json.loads(cli(env, *args, "--json", ok=ok).stdout))


def pg_dump(ctr: Any, db: str) -> str:
    """``pg_dump`` of ``db`` without the random key of its ``\\restrict`` lines."""
    r = ctr.exec_run(["pg_dump", "-U", USER, db], user="postgres")
    assert r.exit_code == 0, r.output
    return "\n".join(line for line in r.output.decode().splitlines()
                     if not line.startswith(("\\restrict", "\\unrestrict")))


def orders_digest(pg: Pg, ctr: Any, upto: int) -> str:
    return pg.sql(f"SELECT count(*) || ':' || md5(string_agg(id || note || at, ',' ORDER BY "
                  f"id)) FROM orders WHERE id <= {upto}", ctr=ctr)


@pytest.mark.parametrize("fmt", ["repo", "tar.zst"])
def test_a_dump_backup_of_a_live_database_restores_into_a_fresh_server(
        pg: Pg, embedded_env: dict[str, str], fmt: str) -> None:
    committed = int(pg.sql("SELECT max(id) FROM orders"))
    job = run(embedded_env, "backup", pg.volume, "--dump", "postgres", "--format", fmt)
    assert job["state"] == "succeeded", job["error"]
    dumps = job["result"]["dumps"]
    assert [(d["kind"], d["exit_code"]) for d in dumps] == [("postgres", 0)]
    assert dumps[0]["path"] == f".volkeeper-dumps/postgres-{pg.container.name}.sql"
    assert job["result"]["stopped_containers"] == []
    assert pg.container.attrs["State"]["StartedAt"] == \
        pg.client.containers.get(pg.container.id).attrs["State"]["StartedAt"]

    fresh_volume = f"{pg.volume}-{fmt.replace('.', '')}"
    pg.client.volumes.create(fresh_volume)
    fresh = start_pg(pg.client, pg.image, fresh_volume, f"{fresh_volume}-db")
    restored = run(embedded_env, "restore", job["backup_id"], "--dump-into", fresh.name)
    assert restored["state"] == "succeeded", restored["error"]
    assert restored["result"]["loaded"][0]["container"] == fresh.name

    upto = int(pg.sql("SELECT max(id) FROM orders", ctr=fresh))
    assert upto >= committed  # every row committed before the dump started
    assert orders_digest(pg, fresh, upto) == orders_digest(pg, pg.container, upto)
    a, b = pg_dump(pg.container, "crm"), pg_dump(fresh, "crm")
    assert a == b and "customer 5000" in a
    # the dump is a backup like any other: it verifies
    v = run(embedded_env, "verify", job["backup_id"], *(["--read-data"] if fmt == "repo" else []))
    assert v["state"] == "succeeded", v["error"]

"""Database dumps of MariaDB and SQLite end to end (the image of
``tests/fixtures/dbimages.py``), as a user runs them (embedded ``volkeeper``): a labelled
container is dumped while a client writes the whole time, the dump backup (repository
format) is restored with ``--dump-into`` a fresh container, and the copy equals the
source at the dump's snapshot — every row committed before the dump started is there."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from common.hooks.dump_kinds import KINDS
from tests.integration.embedded.test_dumps import run

pytestmark = pytest.mark.integration

PW = "s3cret-root"  # the containers' own environment holds it; volkeeper never sees it
INSERTER = ("while :; do echo \"INSERT INTO orders(note) VALUES (MD5(RAND())); DO SLEEP(0.003);"
            "\"; done | mariadb -uroot shop >/dev/null 2>&1")
DB = "/data/app.db"
WRITER = (f"i=0; while :; do i=$((i+1)); sqlite3 -cmd '.timeout 30000' {DB} "
          "\"BEGIN; INSERT INTO ledger(batch, amount) VALUES ($i, 100); "
          "INSERT INTO ledger(batch, amount) VALUES ($i, -100); COMMIT;\" >/dev/null 2>&1; done")


@pytest.fixture
def made(docker_host_a: Any) -> Iterator[tuple[Any, list[Any]]]:
    """The client of ``docker_host_a`` and a list of what a test made (removed after)."""
    client = docker_host_a.client()
    things: list[Any] = []
    yield client, things
    for t in reversed(things):
        t.remove(force=True)


def dump_live_and_load(env: dict[str, str], volume: str, into: str, kind: str,
                       query: Callable[[str], str], table: str) -> int:
    """Once the client writes into ``table``: a backup of ``volume`` (its label asks for
    the ``kind`` dump; repository format) loaded with ``--dump-into`` the container
    ``into``. The table's highest id committed before the backup started."""
    deadline = time.monotonic() + 30
    while int(query(f"SELECT COUNT(*) FROM {table}")) < 100:
        assert time.monotonic() < deadline, "the client does not write"
        time.sleep(0.1)
    committed = int(query(f"SELECT MAX(id) FROM {table}"))
    job = run(env, "backup", volume, "--format", "repo")
    assert job["state"] == "succeeded", job["error"]
    dumps = job["result"]["dumps"]
    assert [(d["kind"], d["exit_code"]) for d in dumps] == [(kind, 0)]
    assert dumps[0]["path"].startswith(f".volkeeper-dumps/{kind}-{volume}")
    assert job["result"]["stopped_containers"] == []
    done = run(env, "restore", job["backup_id"], "--dump-into", into)
    assert done["state"] == "succeeded", done["error"]
    return committed


def my(ctr: Any, query: str) -> str:
    r = ctr.exec_run(["mariadb", "-uroot", "-N", "-B", "-e", query, "shop"],
                     environment={"MYSQL_PWD": PW})
    assert r.exit_code == 0, r.output.decode(errors="replace")
    return str(r.output.decode().strip())


def start_mariadb(client: Any, image: str, things: list[Any], name: str,
                  labels: dict[str, str] | None = None) -> Any:
    volume = client.volumes.create(name)
    things.append(volume)
    ctr = client.containers.run(
        image, ["mariadb"], detach=True, network_mode="none", name=f"{name}-db",
        labels=labels or {}, stop_signal="SIGTERM",
        environment={"MARIADB_ROOT_PASSWORD": PW, "MARIADB_DATABASE": "shop"},
        volumes={name: {"bind": "/var/lib/mysql", "mode": "rw"}})
    things.append(ctr)
    deadline = time.monotonic() + 90
    while ctr.exec_run(["mariadb", "-uroot", "-e", "SELECT 1", "shop"],
                       environment={"MYSQL_PWD": PW}).exit_code != 0:
        ctr.reload()
        assert ctr.status == "running" and time.monotonic() < deadline, ctr.logs()[-2000:]
        time.sleep(0.2)
    return ctr


def orders_digest(ctr: Any, upto: int) -> str:
    return my(ctr, "SET SESSION group_concat_max_len = 1 << 30; SELECT CONCAT(COUNT(*), ':', "
                   "MD5(GROUP_CONCAT(id, note, at ORDER BY id SEPARATOR ','))) FROM orders "
                   f"WHERE id <= {upto}")


def test_a_labelled_mariadb_is_dumped_live_and_loads_into_a_fresh_server(
        made: tuple[Any, list[Any]], db_image: str, embedded_env: dict[str, str]) -> None:
    assert "--single-transaction" in KINDS["mariadb"].dump  # one InnoDB snapshot
    client, things = made
    name = f"my-{uuid.uuid4().hex[:8]}"
    src = start_mariadb(client, db_image, things, name, {"volkeeper.dump": "mariadb"})
    fresh = start_mariadb(client, db_image, things, f"{name}-fresh")
    my(src, "CREATE TABLE orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, note CHAR(32) NOT NULL, "
            "at DATETIME(6) NOT NULL DEFAULT NOW(6)) ENGINE=InnoDB; "
            "CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(40)) ENGINE=InnoDB; "
            "INSERT INTO customers SELECT seq, CONCAT('customer ', seq) FROM seq_1_to_5000")
    src.exec_run(["sh", "-c", INSERTER], environment={"MYSQL_PWD": PW}, detach=True)
    committed = dump_live_and_load(embedded_env, name, fresh.name, "mariadb",
                                   lambda q: my(src, q), "orders")

    upto = int(my(fresh, "SELECT MAX(id) FROM orders"))
    assert upto >= committed  # every row committed before the dump started
    assert int(my(src, "SELECT MAX(id) FROM orders")) > upto  # the client went on writing
    assert orders_digest(fresh, upto) == orders_digest(src, upto)
    assert my(fresh, "CHECKSUM TABLE customers").split()[-1] == \
        my(src, "CHECKSUM TABLE customers").split()[-1]
    assert my(fresh, "SELECT name FROM customers WHERE id = 5000") == "customer 5000"


def sq(ctr: Any, query: str) -> str:
    r = ctr.exec_run(["sqlite3", "-cmd", ".timeout 30000", DB, query])
    assert r.exit_code == 0, r.output.decode(errors="replace")
    return str(r.output.decode().strip())


def test_a_labelled_sqlite_file_is_dumped_live_and_replaces_a_fresh_containers_file(
        made: tuple[Any, list[Any]], db_image: str, embedded_env: dict[str, str]) -> None:
    client, things = made
    name = f"sq-{uuid.uuid4().hex[:8]}"
    path = {"volkeeper.dump-path": DB}
    ctrs = []
    for vol, labels in ((name, {"volkeeper.dump": "sqlite", **path}), (f"{name}-fresh", path)):
        things.append(client.volumes.create(vol))
        ctrs.append(client.containers.run(db_image, ["sqlite"], detach=True,
                                          network_mode="none", name=f"{vol}-app",
                                          labels=labels,
                                          volumes={vol: {"bind": "/data", "mode": "rw"}}))
        things.append(ctrs[-1])
    src, fresh = ctrs
    sq(src, "PRAGMA journal_mode=WAL; CREATE TABLE ledger (id INTEGER PRIMARY KEY, "
            "batch INTEGER NOT NULL, amount INTEGER NOT NULL)")
    sq(fresh, "CREATE TABLE junk (x); INSERT INTO junk VALUES ('replaced by the load')")
    src.exec_run(["sh", "-c", WRITER], detach=True)
    committed = dump_live_and_load(embedded_env, name, fresh.name, "sqlite",
                                   lambda q: sq(src, q), "ledger")

    assert sq(fresh, "PRAGMA integrity_check") == "ok"
    assert sq(fresh, "SELECT name FROM sqlite_master WHERE type = 'table'") == "ledger"
    upto = int(sq(fresh, "SELECT MAX(id) FROM ledger"))
    assert upto >= committed  # every transaction committed before the dump started
    # whole transactions only: every batch has both of its rows
    assert sq(fresh, "SELECT COUNT(*) % 2, SUM(amount) FROM ledger") == "0|0"
    rows = "SELECT group_concat(id || ':' || batch || ':' || amount) FROM " \
           f"(SELECT * FROM ledger WHERE id <= {upto} ORDER BY id)"
    assert sq(fresh, rows) == sq(src, rows)
    assert int(sq(src, "SELECT MAX(id) FROM ledger")) > upto  # the writer went on writing

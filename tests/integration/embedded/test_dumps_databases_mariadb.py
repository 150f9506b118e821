"""One MariaDB database (``volkeeper.dump-database``) dumped while a client writes,
restored under a new name into a fresh server and beside itself (``--database``), an
existing database refused and replaced when asked; and a SQLite dump loaded into a new
file (``--database /path``) — as a user runs them (embedded ``volkeeper``)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from tests.integration.embedded.test_dumps import run
from tests.integration.embedded.test_dumps_mariadb_sqlite import (  # noqa: F401 - fixture
    INSERTER,
    PW,
    made,
    start_mariadb,
)

pytestmark = pytest.mark.integration


def my(ctr: Any, query: str, db: str = "shop") -> str:
    r = ctr.exec_run(["mariadb", "-uroot", "-N", "-B", "-e", query, db],
                     environment={"MYSQL_PWD": PW})
    assert r.exit_code == 0, r.output.decode(errors="replace")
    return str(r.output.decode().strip())


def digest(ctr: Any, db: str, upto: int) -> str:
    return my(ctr, "SET SESSION group_concat_max_len = 1 << 30; SELECT CONCAT(COUNT(*), ':', "
                   "MD5(GROUP_CONCAT(id, note, at ORDER BY id SEPARATOR ','))) FROM orders "
                   f"WHERE id <= {upto}", db)


def test_one_mariadb_database_dumped_live_loads_under_a_new_name(
        made: tuple[Any, list[Any]], db_image: str,  # noqa: F811
        embedded_env: dict[str, str]) -> None:
    client, things = made
    name = f"myd-{uuid.uuid4().hex[:8]}"
    src = start_mariadb(client, db_image, things, name,
                        {"volkeeper.dump": "mariadb", "volkeeper.dump-database": "shop"})
    fresh = start_mariadb(client, db_image, things, f"{name}-fresh")
    my(src, "CREATE TABLE orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, note CHAR(32) NOT NULL, "
            "at DATETIME(6) NOT NULL DEFAULT NOW(6)) ENGINE=InnoDB; "
            "CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(40)) ENGINE=InnoDB; "
            "INSERT INTO customers SELECT seq, CONCAT('customer ', seq) FROM seq_1_to_5000; "
            "CREATE VIEW big AS SELECT * FROM customers WHERE id > 4990")
    my(src, "CREATE DATABASE other; CREATE TABLE other.t (x INT); INSERT INTO other.t VALUES (1)")
    src.exec_run(["sh", "-c", INSERTER], environment={"MYSQL_PWD": PW}, detach=True)
    deadline = time.monotonic() + 30
    while int(my(src, "SELECT COUNT(*) FROM orders")) < 100:
        assert time.monotonic() < deadline, "the client does not write"
        time.sleep(0.1)
    committed = int(my(src, "SELECT MAX(id) FROM orders"))

    job = run(embedded_env, "backup", name, "--format", "repo")  # the labels ask
    assert job["state"] == "succeeded", job["error"]
    assert [(d["kind"], d["database"], d["path"]) for d in job["result"]["dumps"]] == [
        ("mariadb", "shop", f".volkeeper-dumps/mariadb-{src.name}@shop.sql")]
    backup = job["backup_id"]
    for into in (fresh, src):  # a fresh server, and beside the original
        done = run(embedded_env, "restore", backup, "--dump-into", into.name,
                   "--database", "shop_copy")
        assert done["state"] == "succeeded", done["error"]
        upto = int(my(into, "SELECT MAX(id) FROM orders", "shop_copy"))
        assert upto >= committed  # every row committed before the dump started
        assert digest(into, "shop_copy", upto) == digest(src, "shop", upto)
        assert my(into, "CHECKSUM TABLE customers", "shop_copy").split()[-1] == \
            my(src, "CHECKSUM TABLE customers").split()[-1]
        assert my(into, "SELECT COUNT(*) FROM big", "shop_copy") == "10"
    assert "other" not in my(fresh, "SHOW DATABASES").split()  # that database alone
    assert int(my(src, "SELECT MAX(id) FROM orders")) > upto  # the client went on writing

    my(fresh, "INSERT INTO customers VALUES (0, 'kept')", "shop_copy")
    again = run(embedded_env, "restore", backup, "--dump-into", fresh.name,
                "--database", "shop_copy", ok=False)
    assert "the database 'shop_copy' exists already" in again["error"], again["error"]
    assert my(fresh, "SELECT name FROM customers WHERE id = 0", "shop_copy") == "kept"
    done = run(embedded_env, "restore", backup, "--dump-into", fresh.name,
               "--database", "shop_copy", "--replace-database")
    assert done["state"] == "succeeded", done["error"]
    assert my(fresh, "SELECT COUNT(*) FROM customers WHERE id = 0", "shop_copy") == "0"
    # without --database: its own name (the fresh server made an empty "shop" at start)
    again = run(embedded_env, "restore", backup, "--dump-into", fresh.name, ok=False)
    assert "the database 'shop' exists already" in again["error"], again["error"]
    done = run(embedded_env, "restore", backup, "--dump-into", fresh.name,
               "--replace-database")
    assert done["state"] == "succeeded", done["error"]
    assert my(fresh, "CHECKSUM TABLE customers").split()[-1] == \
        my(src, "CHECKSUM TABLE customers").split()[-1]


def test_a_sqlite_dump_loads_into_a_new_file(
        made: tuple[Any, list[Any]], db_image: str,  # noqa: F811
        embedded_env: dict[str, str]) -> None:
    client, things = made
    name = f"sqd-{uuid.uuid4().hex[:8]}"
    things.append(client.volumes.create(name))
    app = client.containers.run(db_image, ["sqlite"], detach=True, network_mode="none",
                                name=f"{name}-app", volumes={name: {"bind": "/data",
                                                                    "mode": "rw"}},
                                labels={"volkeeper.dump": "sqlite",
                                        "volkeeper.dump-path": "/data/app.db"})
    things.append(app)

    def sq(path: str, query: str) -> str:
        r = app.exec_run(["sqlite3", path, query])
        assert r.exit_code == 0, r.output
        return str(r.output.decode().strip())

    sq("/data/app.db", "CREATE TABLE t (x); INSERT INTO t VALUES (1), (2), (3)")
    job = run(embedded_env, "backup", name)
    assert job["state"] == "succeeded", job["error"]
    done = run(embedded_env, "restore", job["backup_id"], "--dump-into", app.name,
               "--database", "/data/copy.db")
    assert done["state"] == "succeeded", done["error"]
    assert done["result"]["loaded"][0]["database"] == "/data/copy.db"
    assert sq("/data/copy.db", "SELECT group_concat(x) FROM t") == "1,2,3"
    sq("/data/copy.db", "INSERT INTO t VALUES (4)")
    again = run(embedded_env, "restore", job["backup_id"], "--dump-into", app.name,
                "--database", "/data/copy.db", ok=False)
    assert "the database '/data/copy.db' exists already" in again["error"], again["error"]
    done = run(embedded_env, "restore", job["backup_id"], "--dump-into", app.name,
               "--database", "/data/copy.db", "--replace-database")
    assert done["state"] == "succeeded", done["error"]
    assert sq("/data/copy.db", "SELECT group_concat(x) FROM t") == "1,2,3"
    assert sq("/data/app.db", "SELECT count(*) FROM t") == "3"  # the original untouched

"""One database per dump: the dump's file name says which database it holds, the label
``volkeeper.dump-database`` (or the request) dumps each named database alone with the
kind's one-database command, kinds that dump only a whole server refuse it, and a dump is
refused into a named database when it holds every database (or when the name is no
database name) — before anything is loaded."""

from __future__ import annotations

import pytest

from common.errors import InvalidInput
from common.hooks.dump_kinds import KINDS, DumpFile, database_names, file_name, parse_file_name
from common.hooks.dumps import DumpSet, dumps_for
from tests.unit.hooks.test_dumps import FakeDocker, FakeReader, ctr, vol


def test_a_dump_of_one_database_is_named_by_its_container_and_database() -> None:
    pg = KINDS["postgres"]
    assert file_name(pg, "/shop-db-1", "shop.v2") == "postgres-shop-db-1@shop.v2.pgdump"
    assert parse_file_name("postgres-shop-db-1@shop.v2.pgdump") == DumpFile(
        pg, "shop-db-1", "shop.v2")
    assert parse_file_name("mariadb-db@crm.sql") == DumpFile(KINDS["mariadb"], "db", "crm")
    assert parse_file_name("postgres-db.sql") == DumpFile(pg, "db", None)
    for bad in ("postgres-db@shop.sql", "postgres-db@.pgdump", "redis-db@x.rdb",
                "postgres-@shop.pgdump", "postgres-db@a;b.pgdump"):
        assert parse_file_name(bad) is None, bad


def test_database_names_are_checked_and_comma_lists_split() -> None:
    assert database_names(["shop, crm", "shop", ""]) == ["shop", "crm"]
    with pytest.raises(InvalidInput, match=r"dump_databases: 'a b' is not a database name"):
        database_names(["a b"], "dump_databases")
    with pytest.raises(InvalidInput, match="not a database name"):
        database_names(["-x"])


def test_the_label_dumps_each_named_database_alone() -> None:
    db = ctr("db", **{"volkeeper_dump": "postgres", "volkeeper_dump-database": "shop,crm"})
    sources = dumps_for(vol(db))
    assert [(s.name, s.database, s.env["VK_DATABASE"]) for s in sources] == [
        ("postgres-db@crm.pgdump", "crm", "crm"), ("postgres-db@shop.pgdump", "shop", "shop")]
    assert "pg_dump -Fc" in sources[0].command and "pg_dumpall" not in sources[0].command
    # the request names the databases instead of the label
    assert [s.database for s in dumps_for(vol(db), None, ["crm"])] == ["crm"]
    my = dumps_for(vol(ctr("m")), "mariadb", ["shop"])[0]
    assert "--databases" not in my.command and '"$VK_DATABASE"' in my.command
    docker = FakeDocker({db.id: FakeReader(b"PGDMP")})
    dumps = DumpSet(docker, dumps_for(vol(db), None, ["shop"]))  # type: ignore[arg-type]
    assert [(n, s.read()) for n, s in dumps.streams()] == [("postgres-db@shop.pgdump", b"PGDMP")]
    assert dumps.as_result()[0]["database"] == "shop"


def test_a_kind_without_databases_and_databases_without_a_kind_are_refused() -> None:
    with pytest.raises(InvalidInput, match=r"a redis dump holds the whole server.*only "
                       r"postgres, mysql and mariadb"):
        dumps_for(vol(ctr("r")), "redis", ["x"])
    with pytest.raises(InvalidInput, match=r"no container of volume 'data' is labelled "
                       r"volkeeper.dump=KIND.*--dump KIND"):
        dumps_for(vol(ctr("web")), None, ["shop"])
    with pytest.raises(InvalidInput, match=r"the label volkeeper.dump-database of db: 'x y'"):
        dumps_for(vol(ctr("db", **{"volkeeper_dump": "postgres",
                                   "volkeeper_dump-database": "x y"})))


def test_a_dump_of_every_database_is_refused_into_a_named_one() -> None:
    from common.engine.dump_restore import check_database, matches

    whole = DumpFile(KINDS["postgres"], "db")
    with pytest.raises(InvalidInput, match=r"backup b1 holds every database of container db "
                       r"in one postgres dump \(postgres-db.sql\).*--dump-database NAME"):
        check_database(whole, "postgres-db.sql", "b1", "copy")
    check_database(whole, "postgres-db.sql", "b1", None)  # loads as a whole
    with pytest.raises(InvalidInput, match="a redis dump holds the whole server"):
        check_database(DumpFile(KINDS["redis"], "r"), "redis-r.rdb", "b1", "x")
    with pytest.raises(InvalidInput, match=r"loads into a file.*--database /data/copy.db"):
        check_database(DumpFile(KINDS["sqlite"], "app"), "sqlite-app.sql", "b1", "copy")
    check_database(DumpFile(KINDS["sqlite"], "app"), "sqlite-app.sql", "b1", "/data/c.db")
    one = DumpFile(KINDS["postgres"], "db", "shop")
    check_database(one, "postgres-db@shop.pgdump", "b1", "shop_copy")
    with pytest.raises(InvalidInput, match="is a file path"):
        check_database(one, "postgres-db@shop.pgdump", "b1", "/tmp/x")
    name = "postgres-db@shop.pgdump"
    assert all(matches(name, one, s) for s in (None, name, "db", "shop", "db@shop"))
    assert not matches(name, one, "crm")


def test_restore_requests_take_a_database_name_or_a_file_path() -> None:
    from pydantic import ValidationError

    from common.jobs.inputs import BackupIn, RestoreIn

    assert RestoreIn(backup_id="b", dump_into="db", database="shop_2").database == "shop_2"
    assert RestoreIn(backup_id="b", dump_into="a", database="/data/x.db").database
    for bad in ("a b", "x;drop", "/data/../etc/passwd", "-x"):
        with pytest.raises(ValidationError, match="not a database name volkeeper takes"):
            RestoreIn(backup_id="b", dump_into="db", database=bad)
    assert BackupIn(volume="v", dump_databases=["shop,crm"]).dump_databases == ["shop", "crm"]
    with pytest.raises(ValidationError, match=r"dump_databases: 'a\$' is not"):
        BackupIn(volume="v", dump_databases=["a$"])

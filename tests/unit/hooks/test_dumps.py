"""Dumps: which containers dump what, the dump's name in the backup, a dump's stream into
a tar member and into a repository snapshot, and a failing dump failing with its stderr."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import pytest

from common.docker import ContainerRef, VolumeInfo
from common.errors import InvalidInput
from common.hooks.dump_kinds import DIRECTORY, KINDS, file_name, kind_of, parse_file_name
from common.hooks.dumps import DumpFailed, DumpSet, dumps_for, source_of
from common.repository.backup.stream_ingest import backup_streams
from common.repository.check.checker import check_repository
from common.repository.core.snapshot import list_snapshots
from common.repository.restore.restorer import restore_snapshot
from tests.unit.repository.test_backup import new_repo


def ctr(name: str, state: str = "running", **labels: str) -> ContainerRef:
    return ContainerRef(id=f"id-{name}", name=name, state=state,
                        labels={k.replace("_", "-").replace("volkeeper-", "volkeeper."): v
                                for k, v in labels.items()})


def vol(*containers: ContainerRef) -> VolumeInfo:
    return VolumeInfo(name="data", driver="local", mountpoint=None, labels={},
                      created_at=None, size_bytes=None, containers=tuple(containers))


class FakeReader(io.RawIOBase):
    """What ``DockerHost.exec_reader`` returns: stdout, then the exit code."""

    def __init__(self, data: bytes, code: int = 0, stderr: str = "") -> None:
        super().__init__()
        self.src = io.BytesIO(data)
        self.code, self.stderr_text = code, stderr
        self.bytes, self.seconds = 0, 0.1
        self.exit_code: int | None = None
        self.stderr = ""

    def readinto(self, b: Any) -> int:
        n = self.src.readinto(b)
        self.bytes += n
        if not n:
            self.exit_code, self.stderr = self.code, self.stderr_text
        return n


class FakeDocker:
    def __init__(self, outputs: dict[str, FakeReader]) -> None:
        self.outputs = outputs
        self.calls: list[tuple[str, list[str], str | None, dict[str, str] | None]] = []

    def exec_reader(self, cid: str, cmd: list[str], *, user: str | None = None,
                    env: dict[str, str] | None = None) -> FakeReader:
        self.calls.append((cid, cmd, user, env))
        return self.outputs[cid]


def test_dump_names_carry_the_kind_and_the_container() -> None:
    for kind in KINDS.values():
        name = file_name(kind, "/shop-db-1")
        assert parse_file_name(name) == (kind, "shop-db-1", None)
    assert parse_file_name("notes.txt") is None and parse_file_name("oracle-x.sql") is None
    with pytest.raises(InvalidInput, match=r"unknown dump kind 'oracle'.*mariadb, mongodb"):
        kind_of("oracle")
    assert kind_of(" Postgres ").name == "postgres" and kind_of("postgresql").name == "postgres"
    assert kind_of("mongo").name == "mongodb"


def test_labelled_containers_dump_and_a_requested_kind_needs_one_running_container() -> None:
    db = ctr("db", **{"volkeeper_dump": "postgres"})
    web = ctr("web")
    assert [s.container.name for s in dumps_for(vol(db, web))] == ["db"]
    assert dumps_for(vol(web)) == []  # a file backup
    assert [s.container.name for s in dumps_for(vol(web), "redis")] == ["web"]
    with pytest.raises(InvalidInput, match=r"2 running containers use it.*volkeeper.dump=redis"):
        dumps_for(vol(web, ctr("worker")), "redis")
    with pytest.raises(InvalidInput, match=r"container db should dump.*but it is exited"):
        dumps_for(vol(ctr("db", "exited", **{"volkeeper_dump": "postgres"})))
    with pytest.raises(InvalidInput, match=r"volkeeper.dump-path"):
        source_of(ctr("app"), "sqlite")
    lite = source_of(ctr("app", **{"volkeeper_dump-path": "/data/app.db",
                                   "volkeeper_dump-user": "app"}), "sqlite")
    assert lite.env == {"VK_DUMP_PATH": "/data/app.db"} and lite.user == "app"
    assert source_of(db, "postgres").user == "postgres"  # the kind's default user


def test_dumps_become_members_of_a_tar_stream() -> None:
    a = ctr("a", **{"volkeeper_dump": "postgres"})
    b = ctr("b", **{"volkeeper_dump": "redis"})
    sql = b"CREATE TABLE t (id int);\n" * 5000
    docker = FakeDocker({a.id: FakeReader(sql), b.id: FakeReader(b"REDIS0011" + bytes(777))})
    dumps = DumpSet(docker, dumps_for(vol(a, b)))  # type: ignore[arg-type]
    with dumps.tar_stream() as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
        got = {m.name: (m.mode, tar.extractfile(m).read() if m.isfile() else None)  # type: ignore[union-attr]
               for m in tar}
    assert got == {DIRECTORY: (0o700, None),
                   f"{DIRECTORY}/postgres-a.sql": (0o600, sql),
                   f"{DIRECTORY}/redis-b.rdb": (0o600, b"REDIS0011" + bytes(777))}
    assert [(r.container, r.bytes, r.exit_code) for r in dumps.runs] == [
        ("a", len(sql), 0), ("b", 786, 0)]
    assert docker.calls[0][1][:2] == ["sh", "-c"] and "pg_dumpall" in docker.calls[0][1][2]


def test_a_dump_streams_into_a_snapshot_and_a_failing_one_stores_none(tmp_path: Path) -> None:
    repo = new_repo()
    db = ctr("db", **{"volkeeper_dump": "postgres"})
    data = b"".join(b"INSERT INTO t VALUES (%d);\n" % i for i in range(200_000))
    ok = DumpSet(FakeDocker({db.id: FakeReader(data)}), dumps_for(vol(db)))  # type: ignore[arg-type]
    snap = backup_streams(repo, ok.streams(), directory=DIRECTORY, host="h", volume="data")
    assert snap.stats.files == 1 and snap.stats.bytes == len(data)
    assert not check_repository(repo, read_data=True).problems
    restore_snapshot(repo, snap, tmp_path / "out")
    assert (tmp_path / "out" / DIRECTORY / "postgres-db.sql").read_bytes() == data

    again = DumpSet(FakeDocker({db.id: FakeReader(data)}), dumps_for(vol(db)))  # type: ignore[arg-type]
    second = backup_streams(repo, again.streams(), directory=DIRECTORY, host="h",
                            volume="data", parent=snap)
    assert second.stats.new_bytes < len(data) // 20  # the same dump is stored once

    bad = DumpSet(FakeDocker({db.id: FakeReader(data[:1000], 1, "pg_dumpall: error: "
                                                "connection to server failed\n")}),
                  dumps_for(vol(db)))  # type: ignore[arg-type]
    with pytest.raises(DumpFailed, match=r"postgres dump in container db .*exited with code 1 "
                       r"after 1000 bytes: pg_dumpall: error: connection to server failed"):
        backup_streams(repo, bad.streams(), directory=DIRECTORY, host="h", volume="data")
    assert len(list_snapshots(repo)) == 2


def test_requests_name_a_known_dump_kind_and_a_container_to_load_into() -> None:
    from pydantic import ValidationError

    from common.jobs.inputs import BackupIn, RestoreIn

    assert BackupIn(volume="pgdata", dump="PostgreSQL").dump == "postgres"
    with pytest.raises(ValidationError, match=r"unknown dump kind 'oracle' \(use one of"):
        BackupIn(volume="pgdata", dump="oracle")
    assert RestoreIn(backup_id="b1", dump_into="shop-db").dump_into == "shop-db"
    with pytest.raises(ValidationError, match="dump_into"):
        RestoreIn(backup_id="b1", dump_into="shop db; rm -rf /")


def test_a_restore_of_several_dumps_must_choose_one_before_loading_any() -> None:
    from types import SimpleNamespace

    from common.engine.dump_restore import _choose

    class Fmt:
        def __init__(self, names: list[str]) -> None:
            self.names = names

        def read_files(self, *args: Any) -> Any:
            return ((n, io.BytesIO(b"")) for n in self.names)

    both = Fmt(["postgres-a.sql", "redis-b.rdb"])
    two = SimpleNamespace(id="b1", file_count=2)
    assert _choose(both, None, two, None, "b") == "redis-b.rdb"  # type: ignore[arg-type]
    assert _choose(both, None, two, None, "postgres-a.sql") == "postgres-a.sql"  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match=r"holds 2 dumps: postgres-a.sql, redis-b.rdb"):
        _choose(both, None, two, None, None)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match=r"no dump of 'c': it holds postgres-a.sql"):
        _choose(both, None, two, None, "c")  # type: ignore[arg-type]
    one = SimpleNamespace(id="b2", file_count=1)
    assert _choose(Fmt([]), None, one, None, None) is None  # type: ignore[arg-type]


def test_the_sqlite_dump_and_load_scripts_on_the_real_sqlite3(tmp_path: Path) -> None:
    """The scripts of the ``sqlite`` kind as the container runs them (``sh -c``, the file
    in ``VK_DUMP_PATH``): the dump is the database as SQL, a missing file is an error (not
    an empty dump), and the load replaces what the target file held."""
    import shutil
    import subprocess

    if shutil.which("sqlite3") is None:
        pytest.skip("sqlite3 is not installed")
    kind = KINDS["sqlite"]
    src, dst = tmp_path / "src.db", tmp_path / "dst.db"
    subprocess.run(["sqlite3", str(src), "PRAGMA journal_mode=WAL; CREATE TABLE t (a, b); "
                    "INSERT INTO t VALUES (1, 'x'), (2, 'y')"], check=True, capture_output=True)
    subprocess.run(["sqlite3", str(dst), "CREATE TABLE junk (x); INSERT INTO junk VALUES (1)"],
                   check=True)

    def sh(script: str, path: Path, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["sh", "-c", script], input=stdin, capture_output=True,
                              env={"PATH": "/usr/bin:/bin", "VK_DUMP_PATH": str(path)})

    dumped = sh(kind.dump, src)
    assert dumped.returncode == 0 and b"INSERT INTO t VALUES(2,'y');" in dumped.stdout
    missing = sh(kind.dump, tmp_path / "nope.db")
    assert missing.returncode == 2 and b"no SQLite database file" in missing.stderr
    assert not (tmp_path / "nope.db").exists()
    assert sh(kind.load, dst, dumped.stdout).returncode == 0
    tables = subprocess.run(["sqlite3", str(dst), "SELECT name FROM sqlite_master; "
                             "SELECT * FROM t"], capture_output=True, text=True).stdout
    assert tables.split() == ["t", "1|x", "2|y"]
    assert sorted(p.name for p in tmp_path.iterdir() if "volkeeper" in p.name) == []
    bad = sh(kind.load, dst, b"CREATE TABLE broken (;\n")
    assert bad.returncode != 0
    assert subprocess.run(["sqlite3", str(dst), "SELECT count(*) FROM t"], capture_output=True,
                          text=True).stdout.strip() == "2"  # a failed load changes nothing


def test_a_failing_dump_of_one_database_names_it_in_the_command_to_run_by_hand() -> None:
    """The hint's command is one to paste: the database is in it, not ``"$VK_DATABASE"``
    (the script's variable, empty in the user's shell)."""
    db = ctr("db", **{"volkeeper_dump": "mariadb"})
    bad = DumpSet(FakeDocker({db.id: FakeReader(b"", 2, "Unknown database 'shpo'\n")}),  # type: ignore[arg-type]
                  dumps_for(vol(db), None, ["shpo"]))
    with pytest.raises(DumpFailed) as e:
        for _, stream in bad.streams():
            stream.read()
    assert "$VK_DATABASE" not in str(e.value) + (e.value.hint or "")
    assert ("run it by hand to see why: docker exec db mariadb-dump -uroot --single-transaction"
            " --routines --events --triggers shpo") in (e.value.hint or "")


def test_the_redis_load_writes_nothing_when_the_server_does_not_say_where_its_file_is(
        tmp_path: Path) -> None:
    """A wrong ``REDIS_PASSWORD``: every ``redis-cli`` call fails AUTH and prints nothing.
    The RDB was written to ``$dir/$file.volkeeper-restore`` with both empty (the
    container's ``/``) and the error was mv's; now nothing is written and it says why."""
    import subprocess

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    cli = bin_dir / "redis-cli"
    # the directory answers (it is the test's), the file name does not
    cli.write_text(f'#!/bin/sh\necho "AUTH failed: WRONGPASS" >&2\n'
                   f'if [ "$3" = dir ]; then printf "dir\\n{tmp_path}\\n"; fi\n')
    cli.chmod(0o755)
    p = subprocess.run(["sh", "-c", KINDS["redis"].load], input=b"REDIS0011" * 1000,
                       capture_output=True, env={"PATH": f"{bin_dir}:/usr/bin:/bin",
                                                 "REDIS_PASSWORD": "wrong"})
    assert p.returncode == 4, p.stderr
    assert b"does a Redis server run in this container, and is REDIS_PASSWORD its password?" \
        in p.stderr
    assert sorted(x.name for x in tmp_path.iterdir()) == ["bin"]


def test_a_dump_label_of_an_unknown_kind_names_its_container() -> None:
    with pytest.raises(InvalidInput, match=r"container db is labelled volkeeper.dump="
                                           r"'postgress', which is not a dump kind") as e:
        dumps_for(vol(ctr("db", **{"volkeeper_dump": "postgress"})))
    assert "use one of mariadb, mongodb, mysql, postgres, redis, sqlite" in (e.value.hint or "")
    [source] = dumps_for(vol(ctr("db", **{"volkeeper_dump": "PostgreSQL"})))
    assert source.kind.name == "postgres"


def test_errors_psql_went_on_after_are_said_but_not_those_about_its_own_role(
        capsys: pytest.CaptureFixture[str]) -> None:
    """``psql`` loads a whole PostgreSQL dump with ON_ERROR_STOP=0 (its own role cannot be
    dropped and exists already); any other error was only in the result's output: a
    table space missing in the target, and the load read as a plain success."""
    from cli.render import finish
    from common.engine.dump_restore import load_errors

    output = ('ERROR:  current user cannot be dropped\nERROR:  role "postgres" already '
              'exists\n set_config \nERROR:  directory "/srv/ts" does not exist\n')
    assert load_errors("postgres", output) == ['ERROR:  directory "/srv/ts" does not exist']
    assert load_errors("mariadb", output) == []
    finish({"id": "j1", "kind": "restore", "state": "succeeded", "volume": "pgdata",
            "host": "laptop", "result": {"loaded": [
                {"container": "db2", "kind": "postgres", "bytes": 2048, "seconds": 0.1,
                 "path": ".volkeeper-dumps/postgres-db.sql", "output": output,
                 "database": None, "errors": load_errors("postgres", output)}]}},
           as_json=False)
    assert ('warning: the load reported ERROR:  directory "/srv/ts" does not exist'
            in capsys.readouterr().err)

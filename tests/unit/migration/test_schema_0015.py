"""Migration 0015 adds a policy's ``dump_databases`` and a backup's ``dumps``: backups
written before get the dumps their job recorded — a backup job's, a group member's — and a
copy (``copy``, ``migrate-target``, a copy of a copy) its source's, also when the source is
gone; a file backup and a copy of one hold none. The downgrade removes only the two
columns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import inspect

from common.db import Database
from common.db.migrate import at_head, head_revision, stored_revision, upgrade

RUN = {"container": "db", "kind": "postgres", "path": ".volkeeper-dumps/postgres-db@shop.pgdump",
       "database": "shop", "bytes": 9, "seconds": 0.1, "exit_code": 0}
HELD = [{"kind": "postgres", "container": "db", "database": "shop",
         "path": ".volkeeper-dumps/postgres-db@shop.pgdump"}]
OLD = {"container": "r", "kind": "redis", "path": ".volkeeper-dumps/redis-r.rdb"}  # pre-0015

JOBS = sa.table("jobs", *(sa.column(c) for c in ("id", "kind", "state", "host", "volume")),
                *(sa.column(c, sa.JSON) for c in ("params", "progress", "result")),
                sa.column("created_at", sa.DateTime))
BACKUPS = sa.table("backups", *(sa.column(c) for c in (
    "id", "job_id", "host", "volume", "target", "format", "key", "manifest_key",
    "stored_bytes", "logical_bytes", "file_count", "checksum", "kind", "pinned",
    "snapshot_id")), sa.column("tags", sa.JSON), sa.column("created_at", sa.DateTime))


def before_0015_with_rows(db: Database) -> None:
    upgrade(db, "0014")
    results: dict[str, tuple[str, dict[str, Any]]] = {
        "j-b": ("backup", {"backup_id": "b-dump", "dumps": [RUN]}),
        "j-f": ("backup", {"backup_id": "b-files"}),
        "j-g": ("group-backup", {"members": [
            {"volume": "redis", "backup_id": "b-member", "dumps": [OLD]},
            {"volume": "files", "backup_id": "b-member-files"}]}),
        "j-c": ("copy", {"source_backup_id": "b-dump", "copy_backup_id": "b-copy"}),
        "j-cc": ("copy", {"source_backup_id": "b-copy", "copy_backup_id": "b-copy2"}),
        "j-fc": ("copy", {"source_backup_id": "b-files", "copy_backup_id": "b-files-copy"}),
        "j-m": ("migrate-target", {"items": [  # its source deleted (delete_source)
            {"source_backup_id": "b-gone", "copy_backup_id": "b-moved", "volume": "v"}]}),
        "j-gone": ("backup", {"backup_id": "b-gone", "dumps": [RUN]}),
    }
    when = sa.func.current_timestamp()
    with db.engine.begin() as conn:
        for jid, (kind, result) in results.items():
            conn.execute(JOBS.insert().values(id=jid, kind=kind, state="succeeded", host="h",
                                              volume="v", params={}, progress={},
                                              result=result, created_at=when))
        for bid, jid in (("b-dump", "j-b"), ("b-files", "j-f"), ("b-member", "j-g"),
                         ("b-member-files", "j-g"), ("b-copy", "j-c"), ("b-copy2", "j-cc"),
                         ("b-files-copy", "j-fc"), ("b-moved", "j-m")):
            conn.execute(BACKUPS.insert().values(
                id=bid, job_id=jid, host="h", volume="v", target="local", format="repo",
                key="k", manifest_key="", stored_bytes=1, logical_bytes=1, file_count=1,
                checksum="", kind="backup", pinned=False, snapshot_id="", tags=[],
                created_at=when))


def check_0015(db: Database) -> None:
    from common.db import Backup, Policy

    upgrade(db)
    assert at_head(db) and stored_revision(db) == head_revision()
    with db.session() as s:
        dumps = {b.id: b.dumps for b in s.query(Backup)}
        assert dumps == {"b-dump": HELD, "b-copy": HELD, "b-copy2": HELD, "b-moved": HELD,
                         "b-member": [OLD | {"database": None}], "b-files": None,
                         "b-member-files": None, "b-files-copy": None}
        s.add(Policy(name="db", schedule="@daily", targets=["local"], dump="postgres",
                     dump_databases=["shop"]))
    with db.session() as s:
        assert s.query(Policy).one().dump_databases == ["shop"]


def check_downgrade_0014(db: Database) -> None:
    from alembic import command

    from common.db.migrate import alembic_config

    cfg = alembic_config(db.url)
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0014")
    insp = inspect(db.engine)
    assert "dumps" not in {c["name"] for c in insp.get_columns("backups")}
    cols = {c["name"] for c in insp.get_columns("policies")}
    assert "dump_databases" not in cols and "dump" in cols
    with db.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM backups")).scalar() == 8


def test_0015_keeps_each_backups_dumps_on_its_row_on_sqlite(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'c.db'}")
    before_0015_with_rows(db)
    check_0015(db)
    check_downgrade_0014(db)
    db.dispose()

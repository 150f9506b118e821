"""Migration 0005 gives every catalog column one meaning: a repository backup's snapshot id
moves from ``checksum`` to ``snapshot_id``, archives keep their sha256, and every row is
kept — checked on a database that holds rows of both formats before the upgrade."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import text

from common.db import Database
from common.db.migrate import upgrade

SNAP = "ab" * 32
SHA = "cd" * 32
ROWS = [  # id, format, key, manifest_key, checksum — as 0004 stored them
    ("b-tar", "tar.zst", "volkeeper/archives/h/v/1-j.tar.zst", "x.manifest.jsonl", SHA),
    ("b-repo", "repo", f"volkeeper/repo/snapshots/{SNAP}", "", SNAP),
    ("b-gz", "tar.gz", "volkeeper/safety/h/v/2-j.tar.gz", "y.manifest.jsonl", "ef" * 32),
]


def insert_rows_at_0004(db: Database) -> None:
    upgrade(db, "0004")
    with db.engine.begin() as conn:
        for bid, fmt, key, mkey, checksum in ROWS:
            conn.execute(text(
                "INSERT INTO backups (id, host, volume, target, format, key, manifest_key, "
                "stored_bytes, logical_bytes, file_count, checksum, created_at, kind, tags, "
                "pinned) VALUES (:id, 'h', 'v', 'local', :fmt, :key, :mkey, 10, 20, 3, "
                ":checksum, CURRENT_TIMESTAMP, 'backup', '[]', :pinned)"),
                {"id": bid, "fmt": fmt, "key": key, "mkey": mkey, "checksum": checksum,
                 "pinned": bid == "b-repo"})


def rows(db: Database) -> dict[str, dict[str, Any]]:
    with db.engine.connect() as conn:
        return {r["id"]: dict(r) for r in conn.execute(text(
            "SELECT id, format, key, manifest_key, checksum, snapshot_id, stored_bytes, "
            "pinned FROM backups")).mappings()}


def check_upgraded(db: Database) -> None:
    upgrade(db)
    got = rows(db)
    assert set(got) == {"b-tar", "b-repo", "b-gz"}  # every row kept
    assert (got["b-repo"]["snapshot_id"], got["b-repo"]["checksum"]) == (SNAP, "")
    assert got["b-repo"]["key"] == ROWS[1][2] and bool(got["b-repo"]["pinned"])
    assert (got["b-tar"]["checksum"], got["b-tar"]["snapshot_id"]) == (SHA, "")
    assert got["b-gz"]["checksum"] == "ef" * 32 and got["b-gz"]["snapshot_id"] == ""
    assert all(r["stored_bytes"] == 10 for r in got.values())


def test_upgrading_a_catalog_with_both_formats_moves_snapshot_ids_and_keeps_rows(
        tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'c.db'}")
    insert_rows_at_0004(db)
    check_upgraded(db)
    db.dispose()


def test_the_api_reads_snapshot_ids_from_their_column_after_the_upgrade(
        tmp_path: Path) -> None:
    from common.db import catalog
    from common.jobs.views import backup_out

    db = Database(f"sqlite:///{tmp_path / 'c.db'}")
    insert_rows_at_0004(db)
    upgrade(db)
    with db.session() as s:
        assert backup_out(catalog.get_backup(s, "b-repo")).snapshot_id == SNAP
        assert backup_out(catalog.get_backup(s, "b-tar")).snapshot_id is None
        by_snapshot = catalog.find_stored_backup(s, "local", snapshot_id=SNAP)
        by_checksum = catalog.find_stored_backup(s, "local", checksum=SHA)
        assert by_snapshot is not None and by_snapshot.id == "b-repo"
        assert by_checksum is not None and by_checksum.id == "b-tar"
        assert catalog.find_stored_backup(s, "local", checksum="") is None
        assert catalog.snapshot_backup_ids(s, "local") == {SNAP: "b-repo"}
    db.dispose()

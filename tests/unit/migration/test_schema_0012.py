"""Migration 0012 adds indexes on ``backups.created_at`` and ``jobs.created_at`` (the
console's newest-first pages) after 0013: rows written before stay and are still read
newest first, the downgrade removes only the two indexes, the chain ends at the head."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, text

from common.db import Database
from common.db.migrate import at_head, head_revision, stored_revision, upgrade

NEW = {"backups": "ix_backups_created_at", "jobs": "ix_jobs_created_at"}


def _indexes(db: Database, table: str) -> dict[str, list[str]]:
    return {str(ix["name"]): [str(c) for c in ix["column_names"]]
            for ix in inspect(db.engine).get_indexes(table)}


def before_0012_with_rows(db: Database) -> None:
    upgrade(db, "0013")
    with db.engine.begin() as conn:
        for i in (1, 2):
            conn.execute(text(
                "INSERT INTO backups (id, host, volume, target, format, key, manifest_key, "
                "stored_bytes, logical_bytes, file_count, checksum, created_at, kind, tags, "
                f"pinned, snapshot_id) VALUES ('b{i}', 'h', 'v', 'local', 'tar', 'k', '', 1, "
                f"2, 3, '', '2026-12-0{i} 10:00:00', 'backup', '[]', false, '')"))
    assert "ix_backups_created_at" not in _indexes(db, "backups")


def check_0012(db: Database) -> None:
    upgrade(db)
    assert at_head(db) and stored_revision(db) == head_revision()
    for table, name in NEW.items():
        assert _indexes(db, table)[name] == ["created_at"], table
    with db.engine.connect() as conn:
        ids = conn.execute(text("SELECT id FROM backups ORDER BY created_at DESC")).scalars()
        assert list(ids) == ["b2", "b1"]


def check_downgrade_0013(db: Database) -> None:
    from alembic import command

    from common.db.migrate import alembic_config

    cfg = alembic_config(db.url)
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0013")
    for table, name in NEW.items():
        left = _indexes(db, table)
        assert name not in left, table
    assert "ix_backups_volume" in _indexes(db, "backups")
    assert "ix_jobs_state_created" in _indexes(db, "jobs")
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM backups")).scalar() == 2


def test_0012_adds_the_created_at_indexes_beside_existing_rows_on_sqlite(tmp_path: Path
                                                                         ) -> None:
    db = Database(f"sqlite:///{tmp_path / 'c.db'}")
    before_0012_with_rows(db)
    check_0012(db)
    check_downgrade_0013(db)
    db.dispose()

"""Migration 0009 adds the ``policies`` and ``leases`` tables to a catalog that already
holds backups, tokens and notification state (it comes after 0008, merged first): rows
written before stay, a policy with every field round-trips, names are unique, and the
downgrade removes only the new tables."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from common.db import Database
from common.db.migrate import upgrade


def before_0009_with_rows(db: Database) -> None:
    upgrade(db, "0008")
    with db.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO backups (id, host, volume, target, format, key, manifest_key, "
            "stored_bytes, logical_bytes, file_count, checksum, created_at, kind, tags, "
            "pinned, snapshot_id) VALUES ('b1', 'h', 'v', 'local', 'repo', 'k', '', 1, 2, 3, "
            "'', CURRENT_TIMESTAMP, 'backup', '[]', false, 'ab')"))


def check_0009(db: Database) -> None:
    """Upgrade, write a policy, read it back; a second policy of that name is refused."""
    from common.db import Policy

    upgrade(db)
    assert {"policies", "leases"} <= set(inspect(db.engine).get_table_names())
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM backups")).scalar() == 1
    with db.session() as s:
        s.add(Policy(name="nightly", selection={"selector": "volkeeper.policy=nightly"},
                     schedule="0 2 * * *", tz="Europe/Berlin", jitter_seconds=60,
                     targets=["local", "s3main"], format="repo",
                     retention={"keep_daily": 7, "keep_tag": ["release"]},
                     rpo_seconds=26 * 3600, verify_subset_percent=5.0,
                     verify_schedule="@weekly", drill_schedule="@monthly"))
    with db.session() as s:
        p = s.query(Policy).filter_by(name="nightly").one()
        assert p.targets == ["local", "s3main"] and p.retention["keep_tag"] == ["release"]
        assert p.rpo_seconds == 93600 and p.enabled is True and p.verify_subset_percent == 5.0
        assert p.created_at.tzinfo is not None
    with pytest.raises(IntegrityError), db.session() as s:
        s.add(Policy(name="nightly", selection={}, schedule="@daily", targets=["local"],
                     retention={"keep_last": 1}))


def check_downgrade(db: Database) -> None:
    from alembic import command

    from common.db.migrate import alembic_config

    cfg = alembic_config(db.url)
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0008")
    names = inspect(db.engine).get_table_names()
    assert "policies" not in names and "leases" not in names
    assert {"backups", "audit_log", "notify_state"} <= set(names)


def test_0009_adds_policies_beside_existing_rows_on_sqlite(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'c.db'}")
    before_0009_with_rows(db)
    check_0009(db)
    check_downgrade(db)
    db.dispose()

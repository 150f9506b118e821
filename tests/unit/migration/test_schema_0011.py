"""Migration 0011 adds the ``migrations`` table after 0010 (policy cadences): rows written
before stay, a migration with every field round-trips, the downgrade removes only it."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, text

from common.db import Database
from common.db.migrate import upgrade


def before_0011_with_rows(db: Database) -> None:
    upgrade(db, "0010")
    with db.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO backups (id, host, volume, target, format, key, manifest_key, "
            "stored_bytes, logical_bytes, file_count, checksum, created_at, kind, tags, "
            "pinned, snapshot_id) VALUES ('b1', 'h', 'v', 'local', 'repo', 'k', '', 1, 2, 3, "
            "'', CURRENT_TIMESTAMP, 'backup', '[]', false, 'ab')"))


def check_0011(db: Database) -> None:
    from common.db import Migration

    upgrade(db)
    assert "migrations" in inspect(db.engine).get_table_names()
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM backups")).scalar() == 1
    with db.session() as s:
        s.add(Migration(id="m1", source_host="a", source_volume="pg", dest_host="b",
                        dest_volume="pg2", driver="local",
                        driver_opts={"type": "none", "o": "bind", "device": "/srv/pg"},
                        via="s3", cutover="stop", remove_source=True,
                        steps={"precopy.backup": "j1"},
                        phases=[{"name": "validate", "state": "succeeded"}],
                        downtime_seconds=1.5, verify_outcome="passed",
                        report={"checks": []}, requested_by="alice"))
    with db.session() as s:
        m = s.get(Migration, "m1")
        assert m is not None and m.state == "queued" and m.driver_opts["o"] == "bind"
        assert m.steps == {"precopy.backup": "j1"} and m.phases[0]["name"] == "validate"
        assert m.remove_source is True and m.downtime_seconds == 1.5
        assert m.created_at.tzinfo is not None


def check_downgrade(db: Database) -> None:
    from alembic import command

    from common.db.migrate import alembic_config

    cfg = alembic_config(db.url)
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0010")
    names = inspect(db.engine).get_table_names()
    assert "migrations" not in names
    assert {"backups", "policies", "leases"} <= set(names)


def test_0011_adds_migrations_beside_existing_rows_on_sqlite(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'c.db'}")
    before_0011_with_rows(db)
    check_0011(db)
    check_downgrade(db)
    db.dispose()

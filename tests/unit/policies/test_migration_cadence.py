"""Migration 0010 adds when a policy's scheduled verify and drill last ran, beside the
policies written under 0009 (they keep every field, the new columns start empty); the
downgrade removes only the new columns; the chain stays linear (``at_head``)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import inspect, text

from common.db import Database
from common.db.migrate import at_head, head_revision, stored_revision, upgrade

WHEN = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def before_0010_with_a_policy(db: Database) -> None:
    upgrade(db, "0009")
    with db.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO policies (id, name, selection, schedule, tz, jitter_seconds, "
            "targets, retention, verify_subset_percent, verify_schedule, drill_schedule, "
            "enabled, created_at, updated_at) VALUES ('p1', 'nightly', '{}', '@daily', "
            "'UTC', 0, '[\"local\"]', '{}', 5.0, '@weekly', '@monthly', true, "
            "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))


def check_0010(db: Database) -> None:
    from common.db import Policy

    upgrade(db)  # to the head: later migrations keep what 0010 added
    assert at_head(db) and stored_revision(db) == head_revision()
    with db.session() as s:
        p = s.query(Policy).filter_by(name="nightly").one()
        assert p.verify_schedule == "@weekly" and p.verify_subset_percent == 5.0
        assert p.verify_last_run_at is None and p.drill_last_run_at is None
        p.verify_last_run_at, p.drill_last_run_at = WHEN, WHEN
    with db.session() as s:
        p = s.query(Policy).filter_by(name="nightly").one()
        assert p.verify_last_run_at == WHEN and p.drill_last_run_at == WHEN


def check_downgrade_0009(db: Database) -> None:
    from alembic import command

    from common.db.migrate import alembic_config

    cfg = alembic_config(db.url)
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0009")
    cols = {c["name"] for c in inspect(db.engine).get_columns("policies")}
    assert "verify_last_run_at" not in cols and "drill_last_run_at" not in cols
    assert {"verify_schedule", "drill_schedule", "last_run_at"} <= cols
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT name FROM policies")).scalar() == "nightly"


def test_0010_adds_the_cadence_columns_beside_a_policy_on_sqlite(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'c.db'}")
    before_0010_with_a_policy(db)
    check_0010(db)
    check_downgrade_0009(db)
    db.dispose()

"""Migration 0014 adds how a policy's backups are made consistent (stop, excludes,
snapshot, dump) beside the policies written before it: they keep every field and get the
defaults of a plain backup; the downgrade removes only the new columns."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, text

from common.db import Database
from common.db.migrate import at_head, head_revision, stored_revision, upgrade

NEW = {"stop_containers", "excludes", "snapshot", "dump"}


def before_0014_with_a_policy(db: Database) -> None:
    upgrade(db, "0012")
    with db.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO policies (id, name, selection, schedule, tz, jitter_seconds, "
            "targets, retention, enabled, created_at, updated_at) VALUES ('p1', 'nightly', "
            "'{}', '@daily', 'UTC', 0, '[\"local\"]', '{\"keep_last\": 3}', true, "
            "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))


def check_0014(db: Database) -> None:
    from common.db import Policy

    upgrade(db)
    assert at_head(db) and stored_revision(db) == head_revision()
    with db.session() as s:
        p = s.query(Policy).filter_by(name="nightly").one()
        assert p.retention == {"keep_last": 3} and p.targets == ["local"]
        assert p.stop_containers is False and not p.excludes
        assert p.snapshot is None and p.dump is None
        p.stop_containers, p.excludes, p.snapshot = True, ["cache/**", "*.tmp"], "auto"
    with db.session() as s:
        p = s.query(Policy).filter_by(name="nightly").one()
        assert (p.stop_containers, p.excludes, p.snapshot) == (
            True, ["cache/**", "*.tmp"], "auto")


def check_downgrade_0012(db: Database) -> None:
    from alembic import command

    from common.db.migrate import alembic_config

    cfg = alembic_config(db.url)
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0012")
    cols = {c["name"] for c in inspect(db.engine).get_columns("policies")}
    assert not NEW & cols
    assert {"verify_last_run_at", "retention", "last_run_at"} <= cols
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT name FROM policies")).scalar() == "nightly"


def test_0014_adds_the_consistency_columns_beside_a_policy_on_sqlite(tmp_path: Path
                                                                     ) -> None:
    db = Database(f"sqlite:///{tmp_path / 'c.db'}")
    before_0014_with_a_policy(db)
    check_0014(db)
    check_downgrade_0012(db)
    db.dispose()

"""The embedded SQLite database is created private: job history, audit log and sealed
credentials are for the installation's owner only."""

from __future__ import annotations

import multiprocessing
import stat
from pathlib import Path

from sqlalchemy import text

from common.db import Database


def test_a_new_sqlite_database_and_its_directory_are_owner_only(tmp_path: Path) -> None:
    home = tmp_path / "home"
    db = Database(f"sqlite:///{home / 'volkeeper.db'}")
    with db.session() as s:
        s.execute(text("CREATE TABLE t (x INTEGER)"))
        s.commit()
    db.dispose()
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "volkeeper.db").stat().st_mode) == 0o600


def test_an_existing_database_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    path.touch(mode=0o640)
    path.chmod(0o640)
    Database(f"sqlite:///{path}").dispose()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def _upgrade_in_child(url: str) -> None:
    from common.db.migrate import upgrade

    db = Database(url)
    upgrade(db, quiet=True)
    db.dispose()


def test_processes_starting_at_once_on_a_new_home_create_one_schema(tmp_path: Path) -> None:
    """Two embedded commands started together on a fresh home both bring the SQLite schema
    up; without the migration lock the second failed ('alembic_version already exists')."""
    from common.db.migrate import at_head

    ctx = multiprocessing.get_context("spawn")
    for i in range(3):
        url = f"sqlite:///{tmp_path / f'home{i}' / 'volkeeper.db'}"
        procs = [ctx.Process(target=_upgrade_in_child, args=(url,)) for _ in range(3)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
        assert [p.exitcode for p in procs] == [0, 0, 0]
        db = Database(url)
        assert at_head(db)
        db.dispose()

"""The embedded SQLite database is created private: job history, audit log and sealed
credentials are for the installation's owner only."""

from __future__ import annotations

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

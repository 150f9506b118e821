"""`volkeeper backups --group ID` lists that group's backups without a group column
(every row would repeat the id the user typed, squeezing the other columns at 80
columns); the plain listing keeps it, so group ids can be found there."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.config import Settings
from common.db import Database, catalog
from common.db.migrate import upgrade
from tests.unit.cli.test_release import _cli

GROUP = "0123456789abcdef"


def _rows(home: Path) -> None:
    db = Database(Settings(home=home).effective_database_url)
    upgrade(db, quiet=True)
    with db.session() as s:
        catalog.ensure_target(s, "local", (home / "backups").as_uri())
        for volume, group in (("shopdb", GROUP), ("shopfiles", GROUP), ("other", None)):
            catalog.add_backup(s, host="laptop", volume=volume, target="local",
                               format="tar.zst", key=f"k-{volume}", manifest_key="m",
                               checksum="0" * 64, group_id=group)
    db.dispose()


def test_the_group_column_is_left_out_when_listing_one_group(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "120")  # headers on one line
    _rows(tmp_path)
    one = _cli(tmp_path, "backups", "--group", GROUP)
    assert one.returncode == 0, one.stderr
    assert "shopfiles" in one.stdout and "other" not in one.stdout
    assert "group" not in one.stdout.splitlines()[1] and GROUP not in one.stdout
    every = _cli(tmp_path, "backups")
    assert "group" in every.stdout.splitlines()[1] and GROUP in every.stdout


def test_one_volume_s_backups_name_it_in_the_title_not_in_a_column(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    _rows(tmp_path)
    p = _cli(tmp_path, "backups", "--volume", "shopdb")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].strip() == "Backups of shopdb"
    assert "volume" not in lines[1] and "shopfiles" not in p.stdout

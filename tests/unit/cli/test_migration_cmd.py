"""`volkeeper migration`: the --md report a file can keep (its lines are not wrapped at
the terminal's width: a wrapped table row is no row any more); a missing id said so."""

from __future__ import annotations

from pathlib import Path

from common.config import Settings
from common.db import Database
from common.db.migrate import upgrade
from common.db.migration_rows import Migration
from common.jobs import migration_views
from tests.unit.cli.test_release import _cli


def test_the_markdown_report_is_printed_unwrapped(tmp_path: Path) -> None:
    db = Database(Settings(home=tmp_path).effective_database_url)
    upgrade(db, quiet=True)
    long = "a-volume-with-a-rather-long-name-" * 3
    with db.session() as s:
        m = Migration(id="m1", source_host="laptop", source_volume=long, dest_host="laptop",
                      dest_volume=long + "-new", driver="local",
                      driver_opts={"type": "none", "o": "bind", "device": "/srv/" + long},
                      via="local", cutover="stop", steps={}, phases=[],
                      report={"checks": [], "validated_at": "now"}, remove_source=False)
        s.add(m)
        s.flush()
        expected = migration_views.markdown(migration_views.view(s, m))
    db.dispose()
    p = _cli(tmp_path, "migration", "m1", "--md")
    assert p.returncode == 0, p.stderr
    assert p.stdout.rstrip("\n") == expected.rstrip("\n")
    assert any(len(line) > 120 for line in p.stdout.splitlines())


def test_rollback_or_cancel_without_an_id_says_the_id_is_missing(tmp_path: Path) -> None:
    for action in ("rollback", "cancel"):
        p = _cli(tmp_path, "migration", action)
        assert p.returncode == 1, p.stderr
        assert f"no migration id given: volkeeper migration {action} ID" in p.stderr
        assert "not found" not in p.stderr and "Traceback" not in p.stderr

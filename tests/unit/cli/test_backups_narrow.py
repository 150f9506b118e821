"""`volkeeper backups` at 80 columns with every optional column (hosts, targets, group,
verified, tags): the table fits by leaving out what `backups ID` and --json show (the
verified age, format, stored size, group id, tags) instead of squeezing the host and
volume columns to nothing; a wide terminal shows everything, --json is unchanged."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from common.db import catalog
from tests.unit.cli.test_release import _cli
from tests.unit.cli.test_release import catalog as open_catalog

GROUP = "0123456789abcdef"


def _rows(home: Path) -> None:
    now = datetime.now(UTC)
    with open_catalog(home) as s:
        for t in ("local", "offsite"):
            catalog.ensure_target(s, t, (home / t).as_uri())
        for i, (host, volume, target, group, status, tags) in enumerate([
                ("laptop", "shopdb", "local", GROUP, "ok", ["nightly", "pre-upgrade"]),
                ("builder", "gitea", "offsite", None, "damaged", []),
                ("laptop", "media", "local", None, None, ["keep"])]):
            catalog.add_backup(s, host=host, volume=volume, target=target, format="tar.zst",
                               key=f"k{i}", manifest_key="m", checksum="0" * 64,
                               group_id=group, verify_status=status,
                               verified_at=now - timedelta(hours=3) if status else None,
                               tags=tags, pinned=i == 0, logical_bytes=123456789,
                               stored_bytes=23456789)


def _run(home: Path, columns: int, *args: str) -> str:
    with pytest.MonkeyPatch.context() as m:
        m.setenv("COLUMNS", str(columns))
        p = _cli(home, "backups", *args)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_the_backups_table_fits_80_columns(tmp_path: Path) -> None:
    _rows(tmp_path)
    text = _run(tmp_path, 80)
    lines = text.splitlines()
    assert all(len(line.rstrip()) <= 80 for line in lines), text
    header = lines[1].split()
    assert header == ["id", "host", "volume", "target", "size", "created", "verified"], text
    for word in ("laptop", "builder", "shopdb", "gitea", "offsite", "damaged"):
        assert word in text, (word, text)


def test_a_wide_terminal_shows_every_column_and_json_is_whole(tmp_path: Path) -> None:
    _rows(tmp_path)
    text = _run(tmp_path, 200)
    assert text.splitlines()[1].split() == [
        "id", "host", "volume", "target", "format", "size", "stored", "created", "verified",
        "tags", "group"], text
    assert "pinned nightly,pre-upgrade" in text and GROUP in text and "3h ago" in text
    rows = json.loads(_run(tmp_path, 80, "--json"))
    assert {r["format"] for r in rows} == {"tar.zst"} and GROUP in {r["group_id"] for r in rows}
    assert ["nightly", "pre-upgrade"] in [r["tags"] for r in rows]

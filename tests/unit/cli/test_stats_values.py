"""`volkeeper stats TARGET` shows sizes in units, ratios as 1.7x and counts grouped; the
names read as words (--json keeps the raw numbers)."""

from __future__ import annotations

from cli.repo_cmds import _stat_value


def test_statistics_read_as_people_write_them() -> None:
    assert _stat_value("stored_bytes", 641_216_512) == "611.5 MiB"
    assert _stat_value("dedup_ratio", 37.9705) == "38.0x"
    assert _stat_value("compression_ratio", 1.6736) == "1.7x"
    assert _stat_value("files", 813_254) == "813,254"
    assert _stat_value("snapshots", 35) == "35"
    assert _stat_value("repository_id", "ab12") == "ab12"
    assert _stat_value("complete", True) == "True"

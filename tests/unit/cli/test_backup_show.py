"""`volkeeper backups ID` shows one backup in full — what the 80-column list leaves out
(format, stored size, checksum or snapshot, tags, group) — and `--limit` bounds the list,
saying so when it cut it (the list stopped at 200 without a word)."""

from __future__ import annotations

import json
from pathlib import Path

from common.db import catalog
from tests.unit.cli.test_release import _cli
from tests.unit.cli.test_release import catalog as open_catalog


def _backups(home: Path, n: int) -> list[str]:
    with open_catalog(home) as s:
        catalog.ensure_target(s, "local", (home / "local").as_uri())
        ids = [catalog.add_backup(
            s, host="laptop", volume=f"v{i}", target="local", format="tar.zst",
            key=f"volkeeper/archives/laptop/v{i}/k.tar.zst", manifest_key=f"m{i}",
            checksum="blake3:" + "ab" * 32, tags=["nightly"], pinned=i == 0,
            group_id="0123456789abcdef" if i == 0 else None, logical_bytes=3 << 20,
            stored_bytes=1 << 20, file_count=1234).id for i in range(n)]
    return ids


def test_one_backup_in_full(tmp_path: Path) -> None:
    first = _backups(tmp_path, 2)[0]
    p = _cli(tmp_path, "backups", first)
    assert p.returncode == 0, p.stderr
    text = " ".join(p.stdout.split())
    for part in (f"id: {first}", "volume: v0 on host laptop", "format: tar.zst",
                 "size: 3.0 MiB in 1,234 files, 1.0 MiB stored", "tags: pinned, nightly",
                 "group: 0123456789abcdef", "checksum: blake3:" + "ab" * 32,
                 "key: volkeeper/archives/laptop/v0/k.tar.zst", "manifest: m0"):
        assert part in text, (part, text)
    data = json.loads(_cli(tmp_path, "backups", first, "--json").stdout)
    assert data["id"] == first and data["stored_bytes"] == 1 << 20


def test_a_missing_backup_and_a_mix_with_filters_are_refused(tmp_path: Path) -> None:
    first = _backups(tmp_path, 1)[0]
    p = _cli(tmp_path, "backups", "0000000000000000")
    assert p.returncode == 1 and "backup '0000000000000000' not found" in p.stderr
    p = _cli(tmp_path, "backups", first, "--volume", "v0")
    assert p.returncode == 1 and "leave out the list's filters" in p.stderr


def test_limit_bounds_the_list_and_says_so(tmp_path: Path) -> None:
    _backups(tmp_path, 5)
    p = _cli(tmp_path, "backups", "--limit", "3", "--json")
    assert p.returncode == 0 and len(json.loads(p.stdout)) == 3
    p = _cli(tmp_path, "backups", "--limit", "3")
    assert p.returncode == 0 and "the newest 3 backups: --limit N shows more" in p.stderr
    p = _cli(tmp_path, "backups", "--limit", "10")
    assert p.returncode == 0 and "--limit" not in p.stderr
    assert sum("v" in line.split()[1] for line in p.stdout.splitlines()[3:] if line.strip()) == 5

"""A restore of an archive backup whose manifest is damaged (not missing) is refused, even
when the archive's own checksum passes: the manifest is part of the backup's proof (what
it holds, each file's digest). The check (``archive_objects.check_manifest``, part of a
restore's validation and of its dry run) says what is wrong and what to do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.archive import manifest as manifest_module
from common.engine.formats import archive_objects
from common.engine.records import StoredBackup
from common.storage.memory import MemoryBackend
from tests.unit.archive.test_helpers import Stored, backup


@pytest.fixture
def stored(tmp_path: Path) -> Stored:
    root = tmp_path / "volume"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("hello")
    (root / "sub" / "b.txt").write_text("world!")
    return backup(root, "tar.zst")


def _row(stored: Stored) -> StoredBackup:
    return StoredBackup(id="b1", key=stored.key, manifest_key=stored.key + ".manifest.jsonl",
                        format="tar.zst", checksum=stored.stats.archive_sha256,
                        logical_bytes=stored.stats.file_bytes, file_count=stored.stats.files,
                        volume="vol", host="host")


def _checks(stored: Stored, manifest: str | bytes) -> dict[str, tuple[bool, str]]:
    backend: MemoryBackend = stored.backend
    data = manifest.encode() if isinstance(manifest, str) else manifest
    backend.put_bytes(stored.key + ".manifest.jsonl", data)
    return {c.name: (c.ok, c.detail)
            for c in archive_objects.check_stored(backend, _row(stored), None)}


def test_an_intact_manifest_of_this_archive_passes(stored: Stored) -> None:
    ok, detail = _checks(stored, stored.manifest_text)["manifest intact"]
    assert ok and "2 files" in detail


def _lines(stored: Stored) -> list[str]:
    return stored.manifest_text.splitlines(keepends=True)


def _damaged(stored: Stored) -> dict[str, str]:
    lines = _lines(stored)
    entry = next(i for i, line in enumerate(lines) if '"./a.txt"' in line)
    changed = lines.copy()
    changed[entry] = changed[entry].replace('"uid":', '"uid":1')  # still valid JSON
    header = json.loads(lines[0]) | {"archive_key": "volkeeper/archives/other.tar.zst"}
    other = [json.dumps(header, separators=(",", ":")) + "\n", *lines[1:]]
    return {"garbage": '{"kind":"volkeeper-manifest"\x00\x01 not json',
            "an entry changed": "".join(changed),
            "truncated": "".join(lines[:-1]),
            "another archive's": "".join(other),
            "not text": b"\xff\xfe" * 50}


@pytest.mark.parametrize("case", ["garbage", "an entry changed", "truncated",
                                  "another archive's", "not text"])
def test_a_damaged_manifest_refuses_the_restore_saying_what_to_do(
        stored: Stored, case: str) -> None:
    checks = _checks(stored, _damaged(stored)[case])
    assert checks["archive present"][0] and checks["manifest present"][0]
    ok, detail = checks["manifest intact"]
    assert not ok, case
    assert "manifest of backup b1 cannot be trusted" in detail
    assert "volkeeper verify b1" in detail and "volkeeper backups --volume vol" in detail
    assert "\n" not in detail


def test_a_manifest_whose_totals_are_not_the_catalogs_is_refused(stored: Stored) -> None:
    backend = stored.backend
    backend.put_bytes(stored.key + ".manifest.jsonl", stored.manifest_text.encode())
    row = _row(stored)
    wrong = StoredBackup(**{**row.__dict__, "file_count": row.file_count + 1})
    check = archive_objects.check_manifest(backend, wrong)
    assert not check.ok and "the catalog 3 of" in check.detail


def test_an_older_manifest_without_a_lines_checksum_is_read_entry_by_entry(
        stored: Stored) -> None:
    lines = _lines(stored)
    summary = json.loads(lines[-1])
    del summary["lines_sha256"]
    older = [*lines[:-1], json.dumps(summary, separators=(",", ":")) + "\n"]
    assert _checks(stored, "".join(older))["manifest intact"][0]
    entry = next(i for i, line in enumerate(older) if '"./a.txt"' in line)
    older[entry] = '{"path":"./a.txt"}\n'  # what only parsing the entry finds
    assert not _checks(stored, "".join(older))["manifest intact"][0]


def test_checking_a_manifest_hashes_its_lines_instead_of_parsing_each_entry(
        stored: Stored, monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[object] = []
    original = manifest_module.entry_from_dict
    monkeypatch.setattr(manifest_module, "entry_from_dict",
                        lambda *a: parsed.append(a) or original(*a))
    assert _checks(stored, stored.manifest_text)["manifest intact"][0]
    assert parsed == []

"""A selective restore of an archive (``restore --path``): a selected hard link whose
target is left out is refused before anything is written (tar would fail on it half-way),
naming the target to add; what the restore reports is what the selection holds, not the
whole backup."""

from __future__ import annotations

import io
from pathlib import Path

from common.archive.manifest import ManifestWriter
from common.archive.tarmember import TarEntry
from common.engine.formats import archive_objects
from common.engine.records import StoredBackup
from common.storage.local import LocalBackend

KEY = "volkeeper/archives/h/v/20260101T000000Z-j.tar"
# tar stores the first name of a hard-linked file as the file, later ones as links to it
MEMBERS = [("./", "dir", 0, None), ("./hard", "file", 6, None),
           ("./sub", "dir", 0, None), ("./sub/big.bin", "file", 100, None),
           ("./a.txt", "hardlink", 0, "./hard"), ("./sub/also", "hardlink", 0, "./sub/big.bin")]


def _archive(tmp_path: Path) -> tuple[LocalBackend, StoredBackup]:
    backend = LocalBackend(tmp_path / "t")
    text = io.StringIO()
    writer = ManifestWriter(text, {"volume": "v"})
    for path, kind, size, link in MEMBERS:
        writer.entry(TarEntry(path=path, type=kind, size=size, mode=0o644, uid=0, gid=0,
                              mtime=1700000000.0, link=link))
    writer.summary("0" * 64, 1)
    backend.put_bytes(KEY, b"x")
    backend.put_bytes(KEY + ".manifest.jsonl", text.getvalue().encode())
    return backend, StoredBackup(id="b1", key=KEY, manifest_key=KEY + ".manifest.jsonl",
                                 format="tar", checksum="0" * 64, logical_bytes=106,
                                 file_count=2, volume="v", host="h")


def _paths_check(tmp_path: Path, paths: list[str]) -> tuple[bool, str]:
    backend, backup = _archive(tmp_path)
    check = archive_objects.check_stored(backend, backup, paths)[-1]
    assert check.name == "selected paths"
    return check.ok, check.detail


def test_a_hard_link_without_its_target_is_refused_naming_it(tmp_path: Path) -> None:
    ok, detail = _paths_check(tmp_path, ["a.txt"])
    assert not ok
    assert "a.txt (a hard link to hard)" in detail and "--path" in detail


def test_a_hard_link_with_its_target_selected_passes(tmp_path: Path) -> None:
    assert _paths_check(tmp_path, ["a.txt", "hard"])[0]
    assert _paths_check(tmp_path, ["sub"])[0]  # link and target both below it
    assert _paths_check(tmp_path, ["/sub/also/", "sub/big.bin"])[0]


def test_missing_paths_are_still_named(tmp_path: Path) -> None:
    ok, detail = _paths_check(tmp_path, ["nope", "hard"])
    assert not ok and detail == "not in the backup: nope"


def test_selected_totals_count_the_selection(tmp_path: Path) -> None:
    backend, backup = _archive(tmp_path)
    assert archive_objects.selected_totals(backend, backup, ["sub"]) == (1, 100)
    assert archive_objects.selected_totals(backend, backup, ["hard", "a.txt"]) == (1, 6)
    assert archive_objects.selected_totals(backend, backup, ["hard", "sub/"]) == (2, 106)

"""Backup → restore round trips of the three archive formats, through GNU tar."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import blake3
import pytest

from common.archive import FORMATS, Format, read_manifest
from tests.fixtures.util import require_binary
from tests.treecmp import compare_trees, is_sparse
from tests.unit.archive.test_helpers import (
    ODD_NAMES,
    SPARSE_SIZE,
    Stored,
    backup,
    build_tree,
    restore,
    xattr_capable_dir,
)


@pytest.fixture(scope="module")
def source(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Path, dict[str, bool]]]:
    base = xattr_capable_dir(tmp_path_factory.mktemp("archive-src"))
    root = base / "volume"
    made = build_tree(root)
    yield root, made
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def stored(source: tuple[Path, dict[str, bool]]) -> dict[Format, Stored]:
    return {fmt: backup(source[0], fmt) for fmt in FORMATS}


@pytest.mark.parametrize("fmt", FORMATS)
def test_restore_reproduces_every_file_attribute(
    fmt: Format, source: tuple[Path, dict[str, bool]], stored: dict[Format, Stored],
    tmp_path: Path,
) -> None:
    root, made = source
    dest = xattr_capable_dir(tmp_path) / f"restored-{fmt}"
    stats = restore(stored[fmt], dest)
    assert compare_trees(root, dest) == []
    assert stats.archive_sha256 == stored[fmt].stats.archive_sha256
    assert stats.stored_bytes == len(stored[fmt].data)
    assert is_sparse(os.lstat(dest / "sparse.img"))
    for name in ODD_NAMES:
        assert (dest / name).read_text() == name
    assert os.stat(dest / "plain.txt").st_ino == os.stat(dest / "sticky" / "hardlink").st_ino
    if made["xattrs"]:
        assert os.getxattr(dest / "plain.txt", "user.comment") == b"bin\x00ary\xff"
    shutil.rmtree(dest, ignore_errors=True)


@pytest.mark.parametrize(
    ("fmt", "decompress"),
    [("tar.zst", "zstd -dc"), ("tar.gz", "gzip -dc"), ("tar", "cat")],
)
def test_a_stored_archive_restores_with_plain_gnu_tar(
    fmt: Format, decompress: str, source: tuple[Path, dict[str, bool]],
    stored: dict[Format, Stored], tmp_path: Path,
) -> None:
    require_binary(decompress.split()[0])
    base = xattr_capable_dir(tmp_path)
    archive = base / ("x" + {"tar": ".tar", "tar.gz": ".tar.gz", "tar.zst": ".tar.zst"}[fmt])
    archive.write_bytes(stored[fmt].data)
    dest = base / "plain-restore"
    dest.mkdir()
    subprocess.run(
        f"{decompress} {archive} | tar -xpf - --xattrs --xattrs-include='*' --numeric-owner "
        f"-C {dest}",
        shell=True, check=True, capture_output=True,
    )
    assert compare_trees(source[0], dest) == []
    shutil.rmtree(dest, ignore_errors=True)


def test_the_manifest_lists_every_member_with_its_blake3_and_totals(
    source: tuple[Path, dict[str, bool]], stored: dict[Format, Stored],
) -> None:
    root, _ = source
    s = stored["tar.zst"]
    manifest = read_manifest(io.StringIO(s.manifest_text))
    assert manifest.header["kind"] == "volkeeper-manifest"
    assert manifest.header["archive_key"] == s.key
    entries = {e.path: e for e in manifest.entries()}
    on_disk = {"."} | {"./" + str(p.relative_to(root)) for p in root.rglob("*")}
    assert set(entries) == on_disk
    files = 0
    total = 0
    for path, entry in entries.items():
        full = root / path
        st = os.lstat(full)
        assert entry.uid == st.st_uid and entry.gid == st.st_gid
        assert entry.mode == st.st_mode & 0o7777
        assert abs(entry.mtime * 1e9 - st.st_mtime_ns) < 1000
        if entry.type == "file":
            files += 1
            total += st.st_size
            assert entry.blake3 == blake3.blake3(full.read_bytes()).hexdigest(), path
            assert entry.sha256 is None
            assert entry.size == st.st_size
    assert entries["./sparse.img"].sparse and entries["./sparse.img"].size == SPARSE_SIZE
    assert entries["./link-to-plain"].type == "symlink"
    assert entries["./link-to-plain"].link == "plain.txt"
    kinds = {entries["./plain.txt"].type, entries["./sticky/hardlink"].type}
    assert kinds == {"file", "hardlink"}
    assert entries["./fifo"].type == "fifo"
    assert entries["./empty-dir"].type == "dir"
    if source[1]["xattrs"]:
        stored_copy = next(e for e in entries.values()
                           if e.type == "file" and e.path in ("./plain.txt", "./sticky/hardlink"))
        assert stored_copy.xattrs == {"user.comment": b"bin\x00ary\xff"}
    summary = manifest.summary
    assert summary.files == files
    assert summary.bytes == total
    assert summary.entries == len(entries)
    assert summary.archive_sha256 == "blake3:" + blake3.blake3(s.data).hexdigest()
    assert summary.archive_size == len(s.data)


def test_all_formats_describe_the_same_members(stored: dict[Format, Stored]) -> None:
    views = []
    for fmt in FORMATS:
        lines = stored[fmt].manifest_text.splitlines()
        views.append(lines[1:-1])
    assert views[0] == views[1] == views[2]

"""An archive backup's and restore's progress counts what a user counts, as a repository
backup does: regular files and their content bytes — not the volume's root directory or
any other directory, link or tar header — so the totals shown while it runs are the ones
its result gives (a 3-file volume read "4 of 4 files", a 1-file restore "2 of 2")."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from common.archive import (
    FORMATS,
    ArchiveStats,
    Format,
    ManifestWriter,
    extract_archive,
    gnutar,
    write_archive,
)
from common.archive.counting import STREAMED
from common.progress import NullTracker
from common.storage.memory import MemoryBackend


class Counting(NullTracker):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def add(self, nbytes: int = 0, files: int = 0) -> None:
        self.calls += 1
        super().add(nbytes, files)


def _volume(root: Path) -> None:
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "a.txt").write_bytes(b"aaa")
    (root / "sub" / "b.txt").write_bytes(b"bb")
    (root / "sub" / "deeper" / "big.bin").write_bytes(os.urandom(STREAMED + 12345))
    os.symlink("a.txt", root / "link")
    os.link(root / "a.txt", root / "sub" / "hard")  # its content is stored once


def _backup(root: Path, fmt: Format, tracker: NullTracker) -> tuple[bytes, ArchiveStats]:
    backend = MemoryBackend()
    manifest = ManifestWriter(io.StringIO(), {"volume": "vol", "format": fmt}, digest="blake3")
    with backend.open_writer("k") as writer, gnutar.create_stream(root) as stream:
        stats = write_archive(stream, writer, fmt, tracker, manifest=manifest)
        writer.commit()
    return backend.get_bytes("k"), stats


def _restore(data: bytes, stats: ArchiveStats, fmt: Format, dest: Path,
             paths: list[str] | None = None) -> Counting:
    dest.mkdir()
    tracker = Counting()
    with gnutar.extract_stream(dest, paths) as sink:
        extract_archive(io.BytesIO(data), fmt, sink, tracker,
                        expected_sha256=stats.archive_sha256, name="k", paths=paths)
    return tracker


@pytest.mark.parametrize("fmt", FORMATS)
def test_backup_and_restore_count_regular_files_and_their_content(
        tmp_path: Path, fmt: Format) -> None:
    root = tmp_path / "volume"
    root.mkdir()
    _volume(root)
    content = 3 + 2 + STREAMED + 12345
    tracker = Counting()
    data, stats = _backup(root, fmt, tracker)
    assert (stats.files, stats.file_bytes) == (3, content)  # what the result says
    assert (tracker.files_done, tracker.bytes_done) == (3, content)
    assert tracker.calls > 3  # the large file's bytes came as they streamed by

    restored = _restore(data, stats, fmt, tmp_path / "restored")
    assert (restored.files_done, restored.bytes_done) == (3, content)
    # a selective restore counts what it writes
    some = _restore(data, stats, fmt, tmp_path / "some", ["./sub/b.txt"])
    assert (some.files_done, some.bytes_done) == (1, 2)


def test_an_empty_volume_has_no_files(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    tracker = Counting()
    data, stats = _backup(tmp_path / "empty", "tar", tracker)
    assert (tracker.files_done, tracker.bytes_done) == (0, 0)
    restored = _restore(data, stats, "tar", tmp_path / "restored")
    assert (restored.files_done, restored.bytes_done) == (0, 0)


def test_a_drills_comparison_counts_as_the_backup_did(tmp_path: Path) -> None:
    """A drill compares a fresh tar of the restored volume with the manifest: its progress
    counts regular files and their content (it read "1.0 MiB of 1.0 MiB, 2 of 2 files" for
    a 1-file, 1-byte volume), while a stored archive's verify counts members and bytes."""
    from common.archive import read_manifest, verify_archive

    root = tmp_path / "volume"
    root.mkdir()
    _volume(root)
    content = 3 + 2 + STREAMED + 12345
    backend = MemoryBackend()
    text = io.StringIO()
    manifest = ManifestWriter(text, {"volume": "vol", "format": "tar"}, digest="blake3")
    with backend.open_writer("k") as writer, gnutar.create_stream(root) as stream:
        write_archive(stream, writer, "tar", NullTracker(), manifest=manifest)
        writer.commit()
    for content_progress, want in ((True, (3, content)), (False, None)):
        tracker = Counting()
        with gnutar.create_stream(root) as stream:
            m = read_manifest(io.StringIO(text.getvalue()))
            report = verify_archive(stream, "tar", m.entries(), tracker, name="volume vol",
                                    digest=m.digest, content_progress=content_progress)
        assert report.ok, report.problems
        if want is not None:
            assert (tracker.files_done, tracker.bytes_done) == want
        else:  # the regular files, and the stream's bytes (a stored object's progress)
            assert tracker.files_done == 3 < report.entries_checked
            assert tracker.bytes_done > content

"""Damage is detected: corrupt or truncated archives, failing tar, bad tar streams, and
archives that disagree with their manifests."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest

from common.archive import (
    FORMATS,
    Format,
    ManifestWriter,
    extract_archive,
    gnutar,
    read_manifest,
    verify_archive,
    write_archive,
)
from common.archive.gnutar import TarError
from common.errors import IntegrityError
from common.progress import NullTracker
from common.storage.memory import MemoryBackend
from tests.unit.archive.test_helpers import Stored, backup, restore


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> dict[Format, Stored]:
    root = tmp_path_factory.mktemp("integrity-src")
    (root / "a.txt").write_bytes(b"some text to compress\n" * 5000)
    (root / "rand.bin").write_bytes(os.urandom(300_000))
    (root / "sub").mkdir()
    (root / "sub" / "b.txt").write_text("b")
    return {fmt: backup(root, fmt) for fmt in FORMATS}


def _flip(data: bytes, at: int) -> bytes:
    out = bytearray(data)
    out[at] ^= 0x40
    return bytes(out)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_flipped_byte_fails_the_restore_with_an_integrity_error_naming_the_archive(
    fmt: Format, stored: dict[Format, Stored], tmp_path: Path,
) -> None:
    s = stored[fmt]
    damaged = _flip(s.data, len(s.data) // 2)
    with pytest.raises(IntegrityError) as info:
        restore(s, tmp_path / "dest", data=damaged)
    assert s.key in str(info.value)


@pytest.mark.parametrize("fmt", ["tar.zst", "tar.gz"])
def test_a_flipped_byte_is_caught_by_decompression_even_without_a_checksum(
    fmt: Format, stored: dict[Format, Stored],
) -> None:
    s = stored[fmt]
    damaged = _flip(s.data, len(s.data) // 2)
    with pytest.raises(IntegrityError, match=r"corrupt|truncated"):
        extract_archive(io.BytesIO(damaged), fmt, io.BytesIO(), NullTracker(), name=s.key)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("expected", [True, False])
def test_a_truncated_archive_fails_with_an_integrity_error(
    fmt: Format, expected: bool, stored: dict[Format, Stored],
) -> None:
    s = stored[fmt]
    cut = s.data[: len(s.data) * 2 // 3]
    with pytest.raises(IntegrityError, match=r"truncated|checksum|corrupt"):
        extract_archive(io.BytesIO(cut), fmt, io.BytesIO(), NullTracker(), name=s.key,
                        expected_sha256=s.stats.archive_sha256 if expected else None)


def test_an_intact_archive_streams_the_exact_tar_bytes(stored: dict[Format, Stored]) -> None:
    outs = []
    for fmt in FORMATS:
        sink = io.BytesIO()
        stats = extract_archive(io.BytesIO(stored[fmt].data), fmt, sink, NullTracker(),
                                expected_sha256=stored[fmt].stats.archive_sha256)
        assert stats.entries == 5
        outs.append(sink.getvalue())
    assert outs[0] == outs[1] == outs[2] == stored["tar"].data


def test_a_volume_deleted_mid_backup_fails_the_backup_with_tars_message(tmp_path: Path) -> None:
    src = tmp_path / "vol"
    (src / "d").mkdir(parents=True)
    for name in ("one", "two", "three"):
        (src / "d" / name).write_bytes(os.urandom(8 << 20))
    backend = MemoryBackend()
    with pytest.raises(TarError, match=r"tar could not read .*(changed|No such file|removed)"), \
            backend.open_writer("k.tar") as writer, gnutar.create_stream(src) as stream:
        first = stream.read(1 << 20)
        shutil.rmtree(src)
        writer.write(first + stream.read())
    assert list(backend.list()) == []


def test_a_missing_source_directory_is_reported_as_not_found(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="not found"), gnutar.create_stream(tmp_path / "nope"):
        pass


def test_tar_refusing_the_input_fails_the_restore_with_tars_message(tmp_path: Path) -> None:
    with pytest.raises(TarError, match="does not look like a tar archive"), \
            gnutar.extract_stream(tmp_path) as sink:
        sink.write(b"definitely not a tar archive " * 1000)


def test_write_archive_rejects_a_stream_that_is_not_tar() -> None:
    backend = MemoryBackend()
    with backend.open_writer("x.tar.zst") as writer, pytest.raises(IntegrityError):
        write_archive(io.BytesIO(b"x" * 5000), writer, "tar.zst", NullTracker(),
                      manifest=ManifestWriter(io.StringIO()))


def test_write_archive_rejects_a_tar_stream_that_stops_early(
    stored: dict[Format, Stored],
) -> None:
    tar = stored["tar"].data
    backend = MemoryBackend()
    with backend.open_writer("x.tar.zst") as writer, pytest.raises(IntegrityError,
                                                                    match="end-of-archive"):
        write_archive(io.BytesIO(tar[:20480]), writer, "tar.zst", NullTracker(),
                      manifest=ManifestWriter(io.StringIO()))


@pytest.mark.parametrize("fmt", FORMATS)
def test_verify_accepts_an_intact_archive(fmt: Format, stored: dict[Format, Stored]) -> None:
    s = stored[fmt]
    report = verify_archive(io.BytesIO(s.data), fmt, read_manifest(io.StringIO(s.manifest_text)),
                            NullTracker(), name=s.key)
    assert report.problems == []
    assert report.ok and report.entries_checked == 5


def test_verify_lists_members_that_differ_from_the_manifest(stored: dict[Format, Stored]) -> None:
    s = stored["tar.zst"]
    lines = s.manifest_text.splitlines()
    changed = [
        line.replace('"blake3":"', '"blake3":"00', 1) if '"./a.txt"' in line else line
        for line in lines if '"./sub/b.txt"' not in line
    ]
    report = verify_archive(io.BytesIO(s.data), "tar.zst", read_manifest(changed),
                            NullTracker(), name=s.key)
    assert not report.ok
    text = "\n".join(report.problems)
    assert "./a.txt: blake3" in text
    assert "./sub/b.txt: in the archive but not in the manifest" in text
    assert "./rand.bin" not in text


def test_a_backup_with_a_version_1_sha256_manifest_still_verifies_and_finds_changes(
    tmp_path: Path,
) -> None:
    root = tmp_path / "src"
    root.mkdir()
    (root / "a.txt").write_bytes(b"old manifests hash with sha256\n" * 1000)
    (root / "b.txt").write_text("b")
    s = backup(root, "tar.zst", digest="sha256")
    manifest = read_manifest(io.StringIO(s.manifest_text))
    assert manifest.digest == "sha256" and manifest.header["version"] == 1
    report = verify_archive(io.BytesIO(s.data), "tar.zst", manifest, NullTracker(),
                            expected_sha256=s.stats.archive_sha256, name=s.key)
    assert report.ok and report.problems == [] and report.entries_checked == 3
    changed = [line.replace('"sha256":"', '"sha256":"00', 1) if '"./a.txt"' in line else line
               for line in s.manifest_text.splitlines()]
    report = verify_archive(io.BytesIO(s.data), "tar.zst", read_manifest(changed),
                            NullTracker(), name=s.key)
    assert "./a.txt: sha256" in "\n".join(report.problems)
    assert len(s.stats.archive_sha256) == 64  # a bare sha256 hex, as the catalog held it
    assert restore(s, tmp_path / "dest").entries == 3
    assert (tmp_path / "dest" / "a.txt").read_bytes() == (root / "a.txt").read_bytes()
    with pytest.raises(IntegrityError, match="does not match its checksum"):
        extract_archive(io.BytesIO(s.data), "tar.zst", io.BytesIO(), NullTracker(),
                        expected_sha256="00" * 32, name=s.key)


def test_verify_reports_a_corrupt_archive_instead_of_raising(
    stored: dict[Format, Stored],
) -> None:
    s = stored["tar.zst"]
    report = verify_archive(io.BytesIO(_flip(s.data, 100)), "tar.zst",
                            read_manifest(io.StringIO(s.manifest_text)), NullTracker(),
                            expected_sha256=s.stats.archive_sha256, name=s.key)
    assert not report.ok
    assert any(s.key in p for p in report.problems)


def test_tar_archives_symlinks_as_links_and_never_reads_through_them(tmp_path: Path) -> None:
    assert not {"-h", "--dereference", "--hard-dereference"} & set(gnutar.CREATE_ARGS)
    src, outside = tmp_path / "vol", tmp_path / "outside"
    src.mkdir()
    outside.mkdir()
    (outside / "secret").write_bytes(b"outside the volume")
    os.symlink(outside, src / "dir-link")
    os.symlink(outside / "secret", src / "file-link")
    with gnutar.create_stream(src) as stream:
        data = stream.read()
    assert b"outside the volume" not in data

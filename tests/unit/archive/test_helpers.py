"""Shared helpers of the archive tests: a source tree with every fidelity item, and
backup / restore through the archive layer and an in-memory backend."""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from common.archive import (
    EXTENSIONS,
    ArchiveStats,
    Format,
    ManifestWriter,
    extract_archive,
    gnutar,
    write_archive,
)
from common.archive.reader import ExtractStats
from common.archive.tarscan import Digest
from common.progress import NullTracker
from common.storage.memory import MemoryBackend
from tests.treecmp import ODD_NAMES, SPARSE_SIZE
from tests.treecmp import build_fidelity_tree as build_tree

__all__ = ["ODD_NAMES", "SPARSE_SIZE", "build_tree"]


def xattr_capable_dir(base: Path) -> Path:
    """``base`` if it supports user.* xattrs, else a directory in /var/tmp or /dev/shm."""
    for candidate in (base, Path("/var/tmp"), Path("/dev/shm")):
        probe = candidate / ".xattr-probe"
        try:
            probe.write_bytes(b"")
            os.setxattr(probe, "user.probe", b"1")
            return candidate if candidate == base else Path(tempfile.mkdtemp(dir=candidate))
        except OSError:
            continue
        finally:
            with contextlib.suppress(OSError):
                probe.unlink()
    return base


@dataclass
class Stored:
    """A backup held in a MemoryBackend."""

    backend: MemoryBackend
    key: str
    fmt: Format
    stats: ArchiveStats
    manifest_text: str

    @property
    def data(self) -> bytes:
        return self.backend.get_bytes(self.key)


def backup(src: Path, fmt: Format, backend: MemoryBackend | None = None,
           digest: Digest = "blake3") -> Stored:
    """Back ``src`` up through GNU tar and write_archive into a memory backend
    (``digest="sha256"``: with a version 1 manifest, as older volkeeper wrote them)."""
    backend = backend or MemoryBackend()
    key = "volkeeper/archives/host/vol/20240101T000000Z" + EXTENSIONS[fmt]
    sink = io.StringIO()
    manifest = ManifestWriter(sink, {"volume": "vol", "format": fmt, "archive_key": key},
                              digest=digest)
    with backend.open_writer(key) as writer, gnutar.create_stream(src) as stream:
        stats = write_archive(stream, writer, fmt, NullTracker(), manifest=manifest)
        writer.commit()
    return Stored(backend, key, fmt, stats, sink.getvalue())


def restore(stored: Stored, dest: Path, data: bytes | None = None) -> ExtractStats:
    """Restore a backup into ``dest`` through extract_archive and GNU tar."""
    dest.mkdir(parents=True, exist_ok=True)
    reader = io.BytesIO(stored.data if data is None else data)
    with gnutar.extract_stream(dest) as sink:
        return extract_archive(reader, stored.fmt, sink, NullTracker(),
                               expected_sha256=stored.stats.archive_sha256, name=stored.key)


def iter_files(root: Path) -> Iterator[Path]:
    """Every regular file under ``root`` (not following symlinks)."""
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            yield p


# --- the helpers' own tests --------------------------------------------------------------
def test_compare_trees_finds_no_difference_between_a_tree_and_its_copy(tmp_path: Path) -> None:
    from tests.treecmp import compare_trees

    build_tree(tmp_path / "a")
    import subprocess

    subprocess.run(["cp", "-a", str(tmp_path / "a"), str(tmp_path / "b")], check=True)
    assert compare_trees(tmp_path / "a", tmp_path / "b") == []


def test_compare_trees_reports_content_mode_owner_and_missing_files(tmp_path: Path) -> None:
    from tests.treecmp import compare_trees

    for side in ("a", "b"):
        (tmp_path / side).mkdir()
        (tmp_path / side / "f").write_text("same")
        (tmp_path / side / "g").write_text("one")
        os.utime(tmp_path / side / "f", ns=(1, 1))
        os.utime(tmp_path / side / "g", ns=(1, 1))
        os.utime(tmp_path / side, ns=(1, 1))
    (tmp_path / "a" / "only-a").write_text("x")
    (tmp_path / "b" / "g").write_text("two")
    os.utime(tmp_path / "b" / "g", ns=(1, 1))
    os.chmod(tmp_path / "b" / "f", 0o600)
    os.chown(tmp_path / "b" / "f", 7, 7)
    os.utime(tmp_path / "a", ns=(1, 1))
    os.utime(tmp_path / "b", ns=(1, 1))
    diffs = "\n".join(compare_trees(tmp_path / "a", tmp_path / "b"))
    assert "'./only-a': missing" in diffs
    assert "'./g': content differs" in diffs
    assert "'./f': mode" in diffs
    assert "'./f': owner 0:0 became 7:7" in diffs

"""Local directory specifics beyond the shared contract: file layout, permissions, and
listing that never leaves the root."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from common.errors import NotFound, StorageError
from common.storage.local import LocalBackend, is_partial_name


def test_objects_are_plain_files_at_their_key_path(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path)
    backend.put_bytes("volkeeper/archives/h1/vol/x.tar.zst", b"payload")
    assert (tmp_path / "volkeeper/archives/h1/vol/x.tar.zst").read_bytes() == b"payload"
    assert backend.display == tmp_path.as_uri()


def test_objects_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path)
    backend.put_bytes("secret", b"volume data")
    assert stat.S_IMODE((tmp_path / "secret").stat().st_mode) == 0o600


def test_listing_never_walks_outside_the_root(tmp_path: Path) -> None:
    (tmp_path / "outside").write_bytes(b"x")
    backend = LocalBackend(tmp_path / "root")
    backend.put_bytes("inside", b"y")
    assert list(backend.list("../")) == []
    assert list(backend.list("/")) == []
    assert [i.key for i in backend.list("in")] == ["inside"]


def test_stray_partial_files_from_a_crash_are_not_listed(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path)
    backend.put_bytes("d/real", b"1")
    stray = tmp_path / "d" / f".real.partial-{'0' * 32}"
    stray.write_bytes(b"half")
    assert is_partial_name(stray.name)
    assert [i.key for i in backend.list()] == ["d/real"]


def test_a_dead_upload_s_partial_file_is_discarded_by_its_marker_only(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path)
    backend.put_bytes("a/v/t-job1.tar", b"done")
    mine = tmp_path / "a" / "v" / f".t2-job1.tar.partial-{'1' * 32}"
    other = tmp_path / "a" / "v" / f".t3-job2.tar.partial-{'2' * 32}"
    outside = tmp_path / "b" / f".t4-job1.tar.partial-{'3' * 32}"
    for f in (mine, other, outside):
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"half")
    assert backend.discard_partials("a/", "-job1.") == (f"a/v/{mine.name}",)
    assert not mine.exists() and other.exists() and outside.exists()
    assert backend.get_bytes("a/v/t-job1.tar") == b"done"  # finished objects stay
    assert backend.discard_partials("../", "-job1.") == ()  # never outside the root
    assert outside.exists()


def test_a_dotfile_key_that_is_not_a_partial_is_listed(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path)
    backend.put_bytes("d/.hidden", b"1")
    assert [i.key for i in backend.list("d/")] == ["d/.hidden"]


def test_a_directory_is_not_an_object(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path)
    backend.put_bytes("dir/file", b"1")
    with pytest.raises(NotFound):
        backend.stat("dir")
    with pytest.raises(NotFound):
        backend.open_reader("dir")
    backend.delete("dir")  # not an object: nothing to delete
    assert backend.get_bytes("dir/file") == b"1"


def test_a_writer_whose_buffered_bytes_cannot_be_written_reports_the_commit(
        tmp_path: Path) -> None:
    """Small writes wait in the writer's buffer; a failure writing them out at the commit
    is the commit's error (naming the object), and nothing is left behind."""
    backend = LocalBackend(str(tmp_path))
    w = backend.open_writer("a/b")
    w.write(b"x" * 1000)  # buffered: not in the file yet
    assert os.path.getsize(w._partial) == 0  # type: ignore[attr-defined]
    w._f.close()  # type: ignore[attr-defined]
    w._f = open("/dev/full", "wb", buffering=1 << 20)  # type: ignore[attr-defined]  # noqa: SIM115
    w._f.write(b"x" * 1000)  # type: ignore[attr-defined]
    with pytest.raises(StorageError, match="no space left"):
        w.commit()
    w.abort()
    assert os.listdir(tmp_path / "a") == []
    assert not list(backend.list("a/"))

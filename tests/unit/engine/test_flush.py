"""``flush_filesystems``: each file system flushed once; what cannot be opened skipped."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from common.engine.flush import flush_filesystems


def test_each_file_system_is_flushed_once_and_missing_paths_are_skipped(tmp_path: Path
                                                                        ) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f").write_bytes(b"x" * 4096)
    assert flush_filesystems([tmp_path, tmp_path / "a", None, tmp_path / "missing"]) == 1


def test_a_file_is_not_a_directory_to_flush(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")
    assert flush_filesystems([tmp_path / "f"]) == 0
    assert flush_filesystems([]) == 0


def test_flushing_runs_beside_the_block_and_waits_for_the_flush(tmp_path: Path) -> None:
    from common.engine.flush import flushing

    with flushing([tmp_path, None]):
        (tmp_path / "g").write_bytes(b"y" * 4096)
    assert (tmp_path / "g").read_bytes() == b"y" * 4096


def test_a_flush_behind_returns_before_the_flush_is_done(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    from common.engine import flush

    started, release, flushed = threading.Event(), threading.Event(), []

    def slow(paths: list[Path | None]) -> int:  # a writeback that takes its time
        started.set()
        release.wait(10)
        flushed.extend(paths)
        return 1

    monkeypatch.setattr(flush, "flush_filesystems", slow)
    thread = flush.flush_behind([tmp_path])
    assert started.wait(10) and thread.is_alive() and flushed == []  # nobody waited
    release.set()
    thread.join(10)
    assert flushed == [tmp_path] and thread.daemon


def test_write_out_syncs_and_reports_what_cannot_be_flushed(tmp_path: Path) -> None:
    from common.engine.flush import write_out

    (tmp_path / "f").write_bytes(b"z" * 4096)
    write_out([tmp_path])  # on disk, no error
    with pytest.raises(FileNotFoundError):
        write_out([tmp_path, tmp_path / "gone"])  # a verify must not pass on a guess

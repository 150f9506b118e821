"""A container racing a restore: a directory of the tree swapped for a symlink to outside
the volume between the directory's creation and what the restore puts in it."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from common.errors import Conflict
from common.repository.backup.archiver import backup_directory
from common.repository.restore import restorer
from common.repository.restore.restorer import restore_snapshot
from tests.unit.repository.test_backup import new_repo


def _source(root: Path) -> Path:
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "f").write_bytes(b"inside")
    (root / "a" / "b" / "g").write_bytes(b"deeper")
    os.symlink("f", root / "a" / "link")
    os.mkfifo(root / "a" / "fifo")
    os.link(root / "a" / "f", root / "a" / "hard")
    os.chmod(root / "a", 0o751)
    return root


def _swap(dest: Path, rel: str, outside: Path) -> None:
    """What a container writing into the volume can do: replace a directory by a symlink."""
    os.rename(dest / rel, dest.parent / "moved-away")
    os.symlink(outside, dest / rel)


def _outside(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    (outside / "b").mkdir(parents=True)
    os.chmod(outside, 0o700)
    return outside


@pytest.mark.parametrize("processes", [0, 2])
def test_a_directory_swapped_for_a_symlink_before_its_files_are_written_writes_nothing_outside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, processes: int
) -> None:
    repo = new_repo()
    snap = backup_directory(repo, _source(tmp_path / "src"), host="h", volume="v")
    dest, outside = tmp_path / "vol" / "dest", _outside(tmp_path)
    dest.parent.mkdir()
    flush: Callable[[Any], None] = restorer._Restorer.flush

    def racing_flush(self: Any) -> None:  # the directories exist, the files do not yet
        if self.batch.files and not (dest / "a").is_symlink():
            _swap(dest, "a", outside)
        flush(self)

    monkeypatch.setattr(restorer._Restorer, "flush", racing_flush)
    with pytest.raises(Conflict) as err:
        restore_snapshot(repo, snap, dest, processes=processes)
    assert "'a" in err.value.message and "stop the containers" in (err.value.hint or "")
    assert sorted(os.listdir(outside)) == ["b"]
    assert os.listdir(outside / "b") == []
    assert os.stat(outside).st_mode & 0o777 == 0o700


def test_a_directory_swapped_before_its_metadata_is_applied_leaves_the_outside_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = new_repo()
    snap = backup_directory(repo, _source(tmp_path / "src"), host="h", volume="v")
    dest, outside = tmp_path / "vol" / "dest", _outside(tmp_path)
    dest.parent.mkdir()
    finish = restorer._Restorer.finish

    def racing_finish(self: Any, root: Any) -> None:
        self.fds._drop()  # descriptors opened before the swap would still be safe
        _swap(dest, "a", outside)
        finish(self, root)

    monkeypatch.setattr(restorer._Restorer, "finish", racing_finish)
    with pytest.raises(Conflict):
        restore_snapshot(repo, snap, dest, processes=0)
    assert os.stat(outside).st_mode & 0o777 == 0o700
    assert os.stat(outside / "b").st_mode & 0o777 != 0o751


def test_a_symlink_swapped_in_before_a_hardlink_is_made_links_nothing_outside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = new_repo()
    snap = backup_directory(repo, _source(tmp_path / "src"), host="h", volume="v")
    dest, outside = tmp_path / "vol" / "dest", _outside(tmp_path)
    dest.parent.mkdir()
    (outside / "f").write_bytes(b"secret")
    drain = restorer._Restorer.drain
    calls = []

    def racing_drain(self: Any) -> None:
        drain(self)
        calls.append(1)
        if len(calls) == 2:  # every file is written, the hardlinks are next
            self.fds._drop()
            _swap(dest, "a", outside)

    monkeypatch.setattr(restorer._Restorer, "drain", racing_drain)
    with pytest.raises(Conflict):
        restore_snapshot(repo, snap, dest, processes=0)
    assert sorted(os.listdir(outside)) == ["b", "f"]
    assert os.stat(outside / "f").st_nlink == 1


def test_a_restore_applies_metadata_to_symlinks_and_nodes_without_following_them(
    tmp_path: Path,
) -> None:
    repo = new_repo()
    src = _source(tmp_path / "src")
    snap = backup_directory(repo, src, host="h", volume="v")
    dest = tmp_path / "dest"
    restore_snapshot(repo, snap, dest, processes=0)
    assert os.readlink(dest / "a" / "link") == "f"
    assert (dest / "a" / "hard").read_bytes() == b"inside"
    assert os.stat(dest / "a" / "hard").st_ino == os.stat(dest / "a" / "f").st_ino
    assert os.stat(dest / "a").st_mode & 0o777 == 0o751
    assert os.stat(dest / "a" / "fifo").st_mtime_ns == os.stat(src / "a" / "fifo").st_mtime_ns

"""A migration's apply trusting that the destination holds the base snapshot
(``sync_snapshot(trust_base=True)``, ``sync_base``): what the base already has is not
looked at, yet the destination ends equal to the snapshot — deletions, metadata and
content changes inside changed directories, directory metadata, hardlinks into skipped
directories — and without the option every entry is walked as before."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from common.engine.tree_compare import Seen, compare_tree
from common.errors import Refused
from common.progress import NullTracker
from common.repository.backup.archiver import backup_directory
from common.repository.core.ids import BlobType
from common.repository.core.repository import Repository
from common.repository.core.snapshot import Snapshot
from common.repository.restore import sync_base
from common.repository.restore.restorer import restore_snapshot
from common.repository.restore.sync import sync_snapshot
from tests.treecmp import compare_trees
from tests.unit.archive.test_helpers import xattr_capable_dir
from tests.unit.repository.test_backup import new_repo

Snaps = tuple[Repository, Snapshot, Snapshot, Path]


def _volume(root: Path) -> None:
    """S1: unchanged subtrees beside the directories S2 changes."""
    for d in ("keep/deep", "keep/other", "modedir", "chg/sub"):
        (root / d).mkdir(parents=True)
    for i in range(4):
        (root / "keep" / "deep" / f"k{i}").write_bytes(os.urandom(3000 + i))
        (root / "chg" / f"same{i}").write_bytes(os.urandom(2000 + i))
    (root / "keep" / "other" / "o").write_text("other")
    (root / "modedir" / "m").write_text("in a directory whose mode changes")
    for name in ("rewrite", "gone", "mode-only", "xattr-added", "xattr-dropped"):
        (root / "chg" / name).write_bytes(name.encode() * 300)
    os.setxattr(root / "chg" / "xattr-dropped", "user.v", b"one")
    (root / "chg" / "sub" / "s").write_text("sub")
    (root / "a-keep").mkdir()  # a hardlink's first path in a directory that stays
    (root / "a-keep" / "first").write_text("linked")
    (root / "b-chg").mkdir()
    os.link(root / "a-keep" / "first", root / "b-chg" / "link")
    (root / "top").write_text("top")


def _change(root: Path) -> None:
    (root / "chg" / "rewrite").write_bytes(os.urandom(900))
    (root / "chg" / "gone").unlink()
    os.chmod(root / "chg" / "mode-only", 0o600)
    os.setxattr(root / "chg" / "xattr-added", "user.v", b"two")
    os.removexattr(root / "chg" / "xattr-dropped", "user.v")
    (root / "chg" / "new").write_text("new")
    (root / "chg" / "newdir").mkdir()
    (root / "chg" / "newdir" / "n").write_text("n")
    shutil.rmtree(root / "chg" / "sub")
    os.chmod(root / "modedir", 0o750)
    (root / "b-chg" / "added").write_text("the link's directory changes, not its target's")


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snaps]:
    base = xattr_capable_dir(tmp_path_factory.mktemp("trust"))
    src = base / "volume"
    src.mkdir()
    _volume(src)
    repo = new_repo()
    s1 = backup_directory(repo, src, host="h", volume="v")
    _change(src)
    s2 = backup_directory(repo, src, host="h", volume="v", parent=s1)
    yield repo, s1, s2, src
    shutil.rmtree(base, ignore_errors=True)


def _precopy(repo: Repository, snap: Snapshot, dest: Path) -> Seen:
    """``snap`` restored into ``dest`` and recorded, as a migration's pre-copy does."""
    restore_snapshot(repo, snap, dest)
    seen: Seen = {}
    assert compare_tree(repo, snap, dest, NullTracker(), seen=seen, written=True).ok
    return seen


def _listed(monkeypatch: pytest.MonkeyPatch, dest: Path) -> list[str]:
    """The directories below ``dest`` listed from now on (relative paths)."""
    out: list[str] = []
    real = os.listdir

    def listing(path: Any = ".") -> list[str]:
        where = os.readlink(f"/proc/self/fd/{path}") if isinstance(path, int) else str(path)
        if where.startswith(str(dest)):
            out.append(os.path.relpath(where, dest))
        return real(path)

    monkeypatch.setattr(os, "listdir", listing)
    return out


@pytest.mark.parametrize("in_place", [True, False], ids=["in-place", "atomic"])
def test_a_trusting_sync_skips_what_the_base_holds_and_ends_equal_to_the_snapshot(
        snapshots: Snaps, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        in_place: bool) -> None:
    repo, s1, s2, src = snapshots
    dest = xattr_capable_dir(tmp_path) / "dest"
    seen = _precopy(repo, s1, dest)
    listed = _listed(monkeypatch, dest)
    stats = sync_snapshot(repo, s2, dest, in_place=in_place, record=seen, base=s1.id,
                          trust_base=True, devices=False)
    monkeypatch.undo()
    assert compare_trees(src, dest) == []  # bytes, modes, mtimes, user xattrs, links
    assert compare_tree(repo, s2, dest, NullTracker()).ok  # and the verify agrees
    assert stats.warnings == []
    # entered: the root and the changed directories (chg/sub: to delete it), nothing
    # below an unchanged one
    assert sorted(listed) == [".", "b-chg", "chg", "chg/newdir", "chg/sub"]
    assert stats.subtrees_skipped == 3  # keep, modedir (its mode fixed), a-keep
    assert stats.files_held == 5  # chg/same0..3 and top: not even a stat
    assert set(stats.removed) == {"chg/gone", "chg/sub"}
    assert stats.metadata_fixed >= 4  # mode-only, both xattrs, modedir
    assert {"chg/rewrite", "chg/new", "chg/newdir/n"} <= set(stats.wrote)
    # the link in a changed directory still shares the inode of its skipped first path
    assert os.lstat(dest / "b-chg" / "link").st_ino == os.lstat(dest / "a-keep" / "first").st_ino


@pytest.mark.parametrize("trust", [True, False], ids=["trusting", "walking"])
def test_without_the_option_every_entry_is_walked_with_it_the_verify_is_the_check(
        snapshots: Snaps, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        trust: bool) -> None:
    """Something changed the destination behind the trust's back, inside a subtree
    that did not change between S1 and S2: the trusting sync does not see it (it did not
    walk there), the verify that follows does; a plain sync walks it and repairs it."""
    repo, s1, s2, src = snapshots
    dest = xattr_capable_dir(tmp_path) / "dest"
    seen = _precopy(repo, s1, dest)
    os.chmod(dest / "keep" / "deep" / "k1", 0o600)
    (dest / "keep" / "stray").write_text("not in any snapshot")
    listed = _listed(monkeypatch, dest)
    stats = sync_snapshot(repo, s2, dest, in_place=True, record=seen, base=s1.id,
                          trust_base=trust)
    monkeypatch.undo()
    report = compare_tree(repo, s2, dest, NullTracker())
    if trust:
        assert "keep" not in listed and not report.ok
        assert any("keep/deep/k1: mode" in p for p in report.problems)
        assert any("keep/stray" in p for p in report.problems)
    else:
        assert {"keep", "keep/deep", "keep/other", "a-keep", "modedir"} <= set(listed)
        assert (stats.subtrees_skipped, stats.files_held) == (0, 0)
        assert report.ok and compare_trees(src, dest) == []


def test_nothing_changed_is_one_skipped_tree_and_no_directory_listed(
        snapshots: Snaps, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo, _s1, s2, src = snapshots
    again = backup_directory(repo, src, host="h", volume="v", parent=s2)
    assert again.tree == s2.tree
    dest = xattr_capable_dir(tmp_path) / "dest"
    seen = _precopy(repo, s2, dest)
    listed = _listed(monkeypatch, dest)
    stats = sync_snapshot(repo, again, dest, record=seen, base=s2.id, trust_base=True,
                          devices=False)
    monkeypatch.undo()
    assert listed == [] and stats.subtrees_skipped == 1
    assert (stats.files_written, stats.entries_written, stats.deleted) == (0, 0, 0)
    assert compare_trees(src, dest) == []


def test_a_base_that_cannot_be_loaded_is_not_trusted(
        snapshots: Snaps, tmp_path: Path) -> None:
    repo, s1, s2, src = snapshots
    dest = xattr_capable_dir(tmp_path) / "dest"
    seen = _precopy(repo, s1, dest)
    stats = sync_snapshot(repo, s2, dest, record=seen, base=bytes(32), trust_base=True)
    assert (stats.subtrees_skipped, stats.files_held) == (0, 0)
    assert compare_trees(src, dest) == []


def test_a_file_the_base_had_as_a_link_is_separated_even_when_its_first_path_is_held(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """S1: x/f and its link y/g; S2: y/g a file of its own (same bytes, same mtime).
    Breaking the link moves x/f's ctime, so x is walked and claims the inode; a snapshot
    taken while the source ran could still list x/f as in the base (held, not claimed):
    simulated here. y/g, a link in the base, is rewritten all the same."""
    src = tmp_path / "v"
    (src / "x").mkdir(parents=True)
    (src / "y").mkdir()
    (src / "x" / "f").write_text("shared")
    os.link(src / "x" / "f", src / "y" / "g")
    repo = new_repo()
    s1 = backup_directory(repo, src, host="h", volume="v")
    (src / "y" / "g").unlink()
    shutil.copy2(src / "x" / "f", src / "y" / "g")
    s2 = backup_directory(repo, src, host="h", volume="v", parent=s1)
    dest = tmp_path / "dest"
    seen = _precopy(repo, s1, dest)
    real: Callable[[sync_base.BaseChunks, bytes], Any] = sync_base.BaseChunks.plain
    x1, x2 = _subtree(repo, s1, "x"), _subtree(repo, s2, "x")

    def as_if_unchanged(self: sync_base.BaseChunks, tree_id: bytes) -> Any:
        return real(self, x2 if tree_id == x1 else tree_id)  # the base's x/f as S2's

    monkeypatch.setattr(sync_base.BaseChunks, "plain", as_if_unchanged)
    stats = sync_snapshot(repo, s2, dest, record=seen, base=s1.id, trust_base=True)
    monkeypatch.undo()
    assert stats.files_held == 1  # x/f
    assert os.lstat(dest / "y" / "g").st_ino != os.lstat(dest / "x" / "f").st_ino
    assert compare_trees(src, dest) == []


def _subtree(repo: Repository, snap: Snapshot, name: str) -> bytes:
    """The tree id of the directory ``name`` (below the root) of ``snap``."""
    root = json.loads(repo.read_blob(snap.tree, BlobType.TREE))["nodes"]
    return bytes.fromhex(next(d["subtree"] for d in root if d["name"] == name))


def _mknod(path: Path) -> None:
    try:
        os.mknod(path, 0o600 | 0o020000, os.makedev(1, 3))  # a char device: /dev/null's
    except PermissionError:
        pytest.skip("device nodes cannot be made here")


def test_device_nodes_are_looked_for_only_where_the_trusting_walk_goes(
        tmp_path: Path) -> None:
    """devices=False: a device in a subtree the base already has is not the sync's to
    refuse (it is there); one in a directory the walk enters is refused before anything
    changes."""
    src = tmp_path / "v"
    (src / "devs").mkdir(parents=True)
    _mknod(src / "devs" / "null")
    (src / "work").mkdir()
    (src / "work" / "a").write_text("a")
    repo = new_repo()
    s1 = backup_directory(repo, src, host="h", volume="v")
    (src / "work" / "a").write_text("changed")
    s2 = backup_directory(repo, src, host="h", volume="v", parent=s1)
    dest = tmp_path / "dest"
    seen = _precopy(repo, s1, dest)
    with pytest.raises(Refused):  # without the trust: every tree is looked through
        sync_snapshot(repo, s2, dest, record=seen, base=s1.id, devices=False)
    stats = sync_snapshot(repo, s2, dest, record=seen, base=s1.id, trust_base=True,
                          devices=False)
    assert stats.subtrees_skipped == 1 and compare_trees(src, dest) == []
    _mknod(src / "work" / "dev")
    s3 = backup_directory(repo, src, host="h", volume="v", parent=s2)
    before = compare_trees(src, dest)
    with pytest.raises(Refused):
        sync_snapshot(repo, s3, dest, record=seen, base=s2.id, trust_base=True,
                      devices=False)
    assert compare_trees(src, dest) == before  # nothing changed

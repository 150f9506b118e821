"""Sync restores: a directory holding a restore of S1 made equal to S2, writing only what
differs, with full fidelity, and never following a symlink planted in the destination."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.errors import Conflict, IntegrityError
from common.progress import NullTracker
from common.repository.backup.archiver import backup_directory
from common.repository.core.repository import Repository
from common.repository.core.snapshot import Snapshot
from common.repository.restore import restorer, sync_files
from common.repository.restore.restorer import restore_snapshot
from common.repository.restore.sync import sync_snapshot
from tests.treecmp import build_fidelity_tree, compare_trees
from tests.unit.archive.test_helpers import xattr_capable_dir
from tests.unit.repository.test_backup import make_volume, new_repo

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="owners and devices need root")


def _extras(root: Path) -> None:
    """Entries of S1 that the changes to S2 work on."""
    for name in ("to-delete", "to-dir", "to-symlink", "to-fifo", "append", "truncate",
                 "mode-only", "owner-only", "xattr-changed", "xattr-removed"):
        (root / name).write_bytes(name.encode() * 500)
    (root / "gone-dir" / "sub").mkdir(parents=True)
    (root / "gone-dir" / "sub" / "f").write_text("bye")
    (root / "dir-to-file").mkdir()
    (root / "dir-to-file" / "inner").write_text("inner")
    (root / "dir-to-link").mkdir()
    os.symlink("plain.txt", root / "link-to-file")
    os.symlink("empty-dir", root / "link-to-dir")
    os.mkfifo(root / "fifo-to-file")
    os.setxattr(root / "xattr-changed", "user.v", b"one")
    os.setxattr(root / "xattr-removed", "user.v", b"one")
    (root / "random.bin").write_bytes(os.urandom(1 << 20))
    (root / "pair-a").write_text("pair")
    os.link(root / "pair-a", root / "pair-b")


def _change(root: Path) -> None:
    """Every kind of change between S1 and S2."""
    big = root / "big.bin"  # one region in the middle: the other chunks are reused
    with open(big, "r+b") as f:
        f.seek(1 << 20)
        f.write(os.urandom(4096))
    with open(root / "append", "ab") as f:
        f.write(b"more")
    os.truncate(root / "truncate", 100)
    (root / "to-delete").unlink()
    shutil.rmtree(root / "gone-dir")
    (root / "new-dir" / "deeper").mkdir(parents=True)
    (root / "new-dir" / "deeper" / "n").write_text("new")
    (root / "to-dir").unlink()
    (root / "to-dir").mkdir()
    (root / "to-dir" / "x").write_text("x")
    (root / "to-symlink").unlink()
    os.symlink("big.bin", root / "to-symlink")
    (root / "to-fifo").unlink()
    os.mkfifo(root / "to-fifo")
    shutil.rmtree(root / "dir-to-file")
    (root / "dir-to-file").write_text("now a file")
    (root / "dir-to-link").rmdir()
    os.symlink("sticky", root / "dir-to-link")
    (root / "link-to-file").unlink()
    (root / "link-to-file").write_text("was a link")
    (root / "link-to-dir").unlink()
    (root / "link-to-dir").mkdir()
    (root / "fifo-to-file").unlink()
    (root / "fifo-to-file").write_text("was a fifo")
    os.chmod(root / "mode-only", 0o600)
    os.chown(root / "owner-only", 777, 778)
    os.chown(root / "setuid", 1000, 1000)  # clears the setuid bit: set again
    os.chmod(root / "setuid", 0o4755)
    os.setxattr(root / "xattr-changed", "user.v", b"two")
    os.removexattr(root / "xattr-removed", "user.v")
    os.chmod(root / "locked", 0o700)
    (root / "locked" / "added").write_text("y")
    os.chmod(root / "locked", 0o500)
    # hardlink groups: plain.txt leaves its group, pair-b joins big.bin's
    (root / "sticky" / "hardlink").unlink()
    shutil.copy2(root / "plain.txt", root / "sticky" / "hardlink")
    (root / "pair-b").unlink()
    os.link(root / "big.bin", root / "pair-b")
    with open(root / "sparse.img", "r+b") as f:  # data into a hole
        f.seek(20 << 20)
        f.write(b"filled")


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[tuple[Repository, Snapshot, Snapshot, Path]]:
    """One repository with S1 and S2 of the same tree, and the tree as of S2."""
    base = xattr_capable_dir(tmp_path_factory.mktemp("sync"))
    src = base / "volume"
    build_fidelity_tree(src)
    _extras(src)
    repo = new_repo()
    s1 = backup_directory(repo, src, host="h", volume="v")
    _change(src)
    s2 = backup_directory(repo, src, host="h", volume="v")
    yield repo, s1, s2, src
    shutil.rmtree(base, ignore_errors=True)


@needs_root
@pytest.mark.parametrize(("in_place", "batch_bytes"), [
    (False, 0), (True, 0), (False, 64 << 10), (True, 64 << 10)],
    ids=["atomic", "in-place", "atomic-in-parts", "in-place-in-parts"])
def test_a_sync_of_s2_over_a_restore_of_s1_equals_a_fresh_restore_of_s2(
        snapshots: tuple[Repository, Snapshot, Snapshot, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, in_place: bool, batch_bytes: int) -> None:
    """(in parts: batches so small that changed files are written by several of them)"""
    repo, s1, s2, src = snapshots
    if batch_bytes:
        monkeypatch.setattr(restorer, "BATCH_BYTES", batch_bytes)
        monkeypatch.setattr(sync_files, "BATCH_BYTES", batch_bytes)
    base = xattr_capable_dir(tmp_path)
    dest = base / "dest"
    restore_snapshot(repo, s1, dest)
    assert compare_trees(src, dest) != []
    big = os.lstat(dest / "big.bin").st_ino
    stats = sync_snapshot(repo, s2.id, dest, in_place=in_place)
    fresh = base / "fresh"
    restore_snapshot(repo, s2, fresh)
    assert compare_trees(fresh, dest) == []
    assert compare_trees(src, dest) == []
    assert stats.warnings == []
    assert stats.deleted >= 5  # to-delete, gone-dir (3 entries), dir-to-file/inner, ...
    assert stats.metadata_fixed >= 5  # mode-only, owner-only, xattr changes, dirs
    assert stats.unchanged > 10
    # big.bin changed in one region: most of it came from the old file, not the repository
    assert stats.bytes_reused > 2 << 20
    assert stats.bytes_fetched < (1 << 20)
    assert not [p for p in dest.rglob(".vksync-*")]
    # rebuilt under a temporary name and renamed over, or patched in place
    assert (os.lstat(dest / "big.bin").st_ino == big) == in_place


@needs_root
def test_a_second_sync_finds_everything_unchanged(
        snapshots: tuple[Repository, Snapshot, Snapshot, Path], tmp_path: Path) -> None:
    repo, _s1, s2, src = snapshots
    dest = xattr_capable_dir(tmp_path) / "dest"
    restore_snapshot(repo, s2, dest)
    stats = sync_snapshot(repo, s2, dest)
    assert (stats.files_written, stats.entries_written, stats.metadata_fixed,
            stats.deleted, stats.bytes) == (0, 0, 0, 0, 0)
    assert stats.unchanged == sum(1 for _ in dest.rglob("*")) + 1  # and the root
    assert compare_trees(src, dest) == []


@needs_root
@pytest.mark.parametrize("in_place", [False, True], ids=["atomic", "in-place"])
def test_an_edit_keeping_size_and_mtime_is_trusted_unless_content_is_verified(
        snapshots: tuple[Repository, Snapshot, Snapshot, Path], tmp_path: Path,
        in_place: bool) -> None:
    repo, _s1, s2, src = snapshots
    dest = xattr_capable_dir(tmp_path) / "dest"
    restore_snapshot(repo, s2, dest)
    victim = dest / "random.bin"
    before = os.lstat(victim)
    with open(victim, "r+b") as f:
        f.seek(500_000)
        f.write(b"X" * 100)
    os.utime(victim, ns=(before.st_atime_ns, before.st_mtime_ns))
    sparse = dest / "sparse.img"  # same content, but dense: the holes must come back
    st = os.lstat(sparse)
    dense = dest / "dense"
    with open(sparse, "rb") as f, open(dense, "wb") as g:
        while block := f.read(1 << 20):
            g.write(block)
    os.chmod(dense, st.st_mode)
    os.utime(dense, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.rename(dense, sparse)
    quick = sync_snapshot(repo, s2, dest)
    assert quick.files_written == 0
    diffs = compare_trees(src, dest)
    assert any("content differs" in d for d in diffs)
    assert any("restored dense" in d for d in diffs)
    os.setxattr(victim, "user.stray", b"x")  # only on the old file: must go
    checked = sync_snapshot(repo, s2, dest, verify_content=True, in_place=in_place)
    assert checked.files_written == 2
    assert checked.bytes_fetched <= 256 << 10 and checked.bytes_reused > 700 << 10
    assert compare_trees(src, dest) == []
    assert (os.lstat(victim).st_ino == before.st_ino) == in_place
    assert os.lstat(dest / "pair-b").st_ino == os.lstat(dest / "big.bin").st_ino


@needs_root
def test_a_symlink_planted_in_the_destination_is_replaced_never_followed(
        snapshots: tuple[Repository, Snapshot, Snapshot, Path], tmp_path: Path) -> None:
    repo, s1, s2, src = snapshots
    base = xattr_capable_dir(tmp_path)
    dest, outside = base / "dest", base / "outside"
    restore_snapshot(repo, s1, dest)
    # the outside directory looks like what the snapshot has at those places
    shutil.copytree(dest / "sticky", outside / "sticky", symlinks=True)
    (outside / "append").write_bytes(b"outside")
    snapshot_of_outside = sorted((str(p), p.read_bytes() if p.is_file() else b"",
                                  os.lstat(p).st_mode, os.lstat(p).st_mtime_ns)
                                 for p in outside.rglob("*"))
    shutil.rmtree(dest / "sticky")
    os.symlink(outside / "sticky", dest / "sticky")  # where a directory should be
    (dest / "append").unlink()
    os.symlink(outside / "append", dest / "append")  # where a changed file should be
    sync_snapshot(repo, s2, dest)
    assert compare_trees(src, dest) == []
    assert sorted((str(p), p.read_bytes() if p.is_file() else b"",
                   os.lstat(p).st_mode, os.lstat(p).st_mtime_ns)
                  for p in outside.rglob("*")) == snapshot_of_outside


def test_without_delete_extra_entries_are_kept(tmp_path: Path) -> None:
    repo = new_repo()
    src = make_volume(tmp_path / "v")
    snap = backup_directory(repo, src, host="h", volume="v")
    dest = tmp_path / "d"
    restore_snapshot(repo, snap, dest)
    (dest / "extra").write_text("mine")
    (dest / "dir0" / "extra-dir").mkdir()
    kept = sync_snapshot(repo, snap, dest, delete=False)
    assert (dest / "extra").read_text() == "mine" and kept.deleted == 0
    gone = sync_snapshot(repo, snap, dest)
    assert gone.deleted == 2
    assert compare_trees(src, dest) == []


def test_a_sync_into_an_empty_directory_is_a_full_restore(tmp_path: Path) -> None:
    repo = new_repo()
    src = make_volume(tmp_path / "v")
    snap = backup_directory(repo, src, host="h", volume="v")
    dest = tmp_path / "d"
    dest.mkdir()
    stats = sync_snapshot(repo, snap, dest)
    assert compare_trees(src, dest) == []
    assert stats.files_written == snap.stats.files and stats.unchanged == 0


def test_a_sync_target_that_is_not_a_directory_is_refused(tmp_path: Path) -> None:
    repo = new_repo()
    src = make_volume(tmp_path / "v")
    snap = backup_directory(repo, src, host="h", volume="v")
    os.symlink(src, tmp_path / "link")
    with pytest.raises(Conflict):
        sync_snapshot(repo, snap, tmp_path / "link")


def test_a_damaged_blob_keeps_the_old_version_of_its_file_and_names_it(
        tmp_path: Path) -> None:
    from tests.unit.repository.test_restore import _flip_in_blob_of

    repo = new_repo()
    src = make_volume(tmp_path / "v")
    s1 = backup_directory(repo, src, host="h", volume="v")
    old_log = (src / "text.log").read_bytes()
    (src / "text.log").write_bytes(b"a new first line\n" + old_log)
    (src / "dir1" / "nested" / "small3.txt").write_bytes(b"changed too")
    s2 = backup_directory(repo, src, host="h", volume="v", parent=s1)
    dest = tmp_path / "d"
    restore_snapshot(repo, s1, dest)
    blob = _flip_in_blob_of(repo, s2, "text.log")
    with pytest.raises(IntegrityError) as exc:
        sync_snapshot(repo, s2, dest)
    assert f"blob {blob.hex()}" in exc.value.message
    assert "previous version was kept): text.log" in exc.value.message
    assert (dest / "text.log").read_bytes() == old_log
    assert (dest / "dir1" / "nested" / "small3.txt").read_bytes() == b"changed too"
    assert not list(dest.rglob(".vksync-*"))


@pytest.mark.parametrize("name", ["..", "../escape", "a/../../b"])
def test_a_tree_with_a_hostile_name_is_refused_before_anything_is_changed(
        tmp_path: Path, name: str) -> None:
    from common.repository.core.ids import BlobType
    from common.repository.core.pack import PackWriter
    from common.repository.core.snapshot import save_snapshot
    from common.repository.core.tree import Node, Tree

    repo = new_repo()
    src = make_volume(tmp_path / "v")
    snap = backup_directory(repo, src, host="h", volume="v")
    hostile = Tree([Node(name="PLACEHOLDER", type="file")]).encode().replace(
        b"PLACEHOLDER", name.encode())
    blob = repo.codec.encode(BlobType.TREE, hostile)
    with PackWriter(repo.backend, repo.cipher) as pack:
        pack.add(blob)
        repo.write_index_file(pack.finish())
    root = Node(name="root", type="dir", mode=0o755, subtree=blob.blob_id)
    bad = save_snapshot(repo, Snapshot(tree=blob.blob_id, root=root, host="h", volume="v"))
    dest = tmp_path / "inner" / "d"
    restore_snapshot(repo, snap, dest)
    with pytest.raises(IntegrityError, match="hostile or invalid name"):
        sync_snapshot(repo, bad, dest)
    assert compare_trees(src, dest) == []  # nothing deleted, nothing written
    assert sorted(p.name for p in (tmp_path / "inner").iterdir()) == ["d"]


def test_a_directory_swapped_for_a_symlink_during_the_sync_stops_it_with_nothing_written_outside(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from common.repository.restore.syncer import Syncer

    repo = new_repo()
    src = make_volume(tmp_path / "v")
    s1 = backup_directory(repo, src, host="h", volume="v")
    for f in (src / "dir2" / "nested").iterdir():
        f.write_bytes(b"changed " + f.read_bytes())
    s2 = backup_directory(repo, src, host="h", volume="v", parent=s1)
    dest, outside = tmp_path / "d", tmp_path / "outside"
    restore_snapshot(repo, s1, dest)
    shutil.copytree(dest / "dir2" / "nested", outside)
    before = {p.name: p.read_bytes() for p in outside.iterdir()}
    original = Syncer.sync_tree

    def swapping(self: Syncer, tree_id: bytes, rel: str, held: bytes | None = None) -> None:
        if rel == "dir2/nested":  # a container swaps the directory as the sync enters it
            shutil.rmtree(dest / rel)
            os.symlink(outside, dest / rel)
        original(self, tree_id, rel, held)

    monkeypatch.setattr(Syncer, "sync_tree", swapping)
    with pytest.raises(Conflict, match="dir2/nested"):
        sync_snapshot(repo, s2, dest)
    assert {p.name: p.read_bytes() for p in outside.iterdir()} == before


class _Counting(NullTracker):
    def __init__(self) -> None:
        super().__init__()
        self.totals: tuple[int | None, int | None] = (None, None)
        self.done = [0, 0]

    def set_phase(self, phase: str, bytes_total: int | None = None,
                  files_total: int | None = None, *, estimated: bool = False) -> None:
        self.totals = (bytes_total, files_total)

    def add(self, nbytes: int = 0, files: int = 0) -> None:
        self.done[0] += nbytes
        self.done[1] += files


@pytest.mark.parametrize("in_place", [False, True], ids=["atomic", "in-place"])
def test_progress_counts_every_file_and_byte_of_the_snapshot_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_place: bool) -> None:
    monkeypatch.setattr(restorer, "BATCH_BYTES", 256 << 10)  # random.bin in parts
    monkeypatch.setattr(sync_files, "BATCH_BYTES", 256 << 10)
    repo = new_repo()
    src = make_volume(tmp_path / "v")
    s1 = backup_directory(repo, src, host="h", volume="v")
    with open(src / "random.bin", "r+b") as f:
        f.seek(1 << 20)
        f.write(os.urandom(300_000))
    (src / "text.log").write_bytes(b"shorter")
    (src / "dir0" / "nested" / "small1.txt").unlink()
    (src / "dir0" / "nested" / "new.txt").write_bytes(b"new" * 999)
    s2 = backup_directory(repo, src, host="h", volume="v", parent=s1)
    dest = tmp_path / "d"
    restore_snapshot(repo, s1, dest)
    tracker = _Counting()
    stats = sync_snapshot(repo, s2, dest, tracker=tracker, in_place=in_place)
    assert compare_trees(src, dest) == []
    assert tracker.totals == (s2.stats.bytes, s2.stats.files)
    assert tracker.done == [s2.stats.bytes, s2.stats.files]
    assert stats.files_written == 3 and stats.bytes_reused > 1 << 20

"""Trees kept in the process for the next backup (``backup.kept``): the next backup of the
volume compares with them instead of reading its parent's trees, and writes exactly the
snapshot it would have written otherwise."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from common.repository.backup import kept
from common.repository.backup.archiver import BackupOptions, backup_directory, iter_nodes
from common.repository.core.damage import Damage, write_damage
from common.repository.core.index import Index
from common.repository.core.repository import Repository
from common.repository.core.snapshot import Snapshot
from common.repository.restore.restorer import restore_snapshot
from tests.treecmp import compare_trees
from tests.unit.repository.test_backup import make_volume, new_repo


@pytest.fixture(autouse=True)
def _nothing_kept() -> None:
    kept.drop()


def _change(root: Path, seed: int) -> None:
    rnd = random.Random(seed)
    (root / "dir1" / "nested" / "f3").write_bytes(rnd.randbytes(3000))
    (root / "dir2" / "added.txt").write_bytes(b"new file\n")
    (root / "text.log").write_bytes(b"rewritten\n" * 9000)


def _tree_reads(repo: Repository, monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    reads: list[bytes] = []
    real = repo.read_blob

    def counting(blob_id: bytes, *args: object, **kw: object) -> bytes:
        reads.append(blob_id)
        return real(blob_id, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(repo, "read_blob", counting)
    return reads


def index_reads(repo: Repository, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The keys of the index files ``repo`` reads from now on, in order."""
    from common.repository import ids

    reads: list[str] = []
    real = repo.backend.get_bytes

    def counting(key: str) -> bytes:
        if key.startswith(ids.INDEX_PREFIX):
            reads.append(key)
        return real(key)

    monkeypatch.setattr(repo.backend, "get_bytes", counting)
    return reads


def _backups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keep: bool
             ) -> tuple[Repository, Snapshot, list[bytes]]:
    src = tmp_path / ("kept" if keep else "plain")
    make_volume(src)
    repo = new_repo()
    first = backup_directory(repo, src, host="h", volume="v")
    with kept.keeping() if keep else _null():
        catchup = backup_directory(repo, src, host="h", volume="v", parent=first)
    _change(src, 1)
    reads = _tree_reads(repo, monkeypatch)
    cutover = backup_directory(repo, src, host="h", volume="v", parent=catchup)
    reads = list(reads)  # the backup's, not the restore's
    out = tmp_path / f"restored-{keep}"
    restore_snapshot(repo, cutover, out)
    assert compare_trees(src, out) == []
    monkeypatch.undo()
    return repo, cutover, reads


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None



def kept_backup(tmp_path: Path) -> tuple[Path, Repository, Snapshot]:
    """A volume, a repository and that volume's first backup, which kept its trees."""
    src = make_volume(tmp_path / "v")
    repo = new_repo()
    return src, repo, backup_directory(repo, src, host="h", volume="v",
                                       options=BackupOptions(keep_trees=True))

def test_the_next_backup_compares_with_the_kept_trees_and_writes_the_same_snapshot(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _r1, plain, plain_reads = _backups(tmp_path, monkeypatch, keep=False)
    _r2, fast, fast_reads = _backups(tmp_path, monkeypatch, keep=True)
    assert len(plain_reads) >= 5  # every parent directory's tree read
    assert fast_reads == []  # none: all kept by the catch-up
    # the same volume content and metadata (two copies: compare what is not per-copy)
    assert (fast.stats.files, fast.stats.dirs, fast.stats.bytes, fast.stats.files_read,
            fast.stats.bytes_read) == (plain.stats.files, plain.stats.dirs,
                                       plain.stats.bytes, plain.stats.files_read,
                                       plain.stats.bytes_read)
    assert kept._kept is None  # taken by the cut-over's backup, which kept nothing


def test_kept_trees_give_the_same_tree_ids_as_reading_them(tmp_path: Path) -> None:
    src, repo, first = kept_backup(tmp_path)
    _change(src, 2)
    with_kept = backup_directory(repo, src, host="h", volume="v", parent=first)
    read = backup_directory(repo, src, host="h", volume="v", parent=first)  # nothing kept
    assert with_kept.tree == read.tree and with_kept.root == read.root


def test_trees_are_kept_only_for_a_backup_of_that_parent_and_within_bounds(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src, repo, first = kept_backup(tmp_path)
    other = new_repo()
    backup_directory(other, src, host="h", volume="v")  # another parent: not taken
    assert kept._kept is not None and first.tree in kept._kept[1]
    assert kept.take(other.config.repository_id, first.tree) == ({}, None)  # another repo
    monkeypatch.setattr(kept, "MAX_NODES", 5)
    kept.drop()
    backup_directory(repo, src, host="h", volume="v", options=BackupOptions(keep_trees=True))
    assert kept._kept is None  # too many nodes: nothing kept


def test_a_damage_mark_since_the_kept_trees_means_index_lookups_again(tmp_path: Path) -> None:
    """Kept trees spare unchanged files their index lookups only while the index is read
    from the files the keeping backup knew, with no damage mark: a chunk marked damaged
    since is not reused, its file is read again."""
    src, repo, first = kept_backup(tmp_path)
    nodes = dict(iter_nodes(repo, first.tree))
    chunk = nodes["random.bin"].content[0]
    entry = repo.load_index().index.lookup(chunk)
    assert entry is not None
    damage = Damage()
    damage.add_blob(chunk, entry.pack_id)
    write_damage(repo.backend, repo.cipher, damage, "test")
    again = backup_directory(repo, src, host="h", volume="v", parent=first)
    assert again.stats.files_read == 1  # random.bin, whose chunk is marked
    index = repo.load_index().index
    assert all(c in index for _p, n in iter_nodes(repo, again.tree) for c in n.content)
    out = tmp_path / "restored"
    restore_snapshot(repo, again, out)
    assert compare_trees(src, out) == []


def test_without_a_mark_the_kept_trees_reuse_every_unchanged_file_unread(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src, repo, first = kept_backup(tmp_path)
    asked: list[int] = []
    real = Index.missing
    monkeypatch.setattr(Index, "missing",
                        lambda self, ids: asked.append(len(list(ids))) or real(self, []))
    again = backup_directory(repo, src, host="h", volume="v", parent=first)
    assert again.tree == first.tree and again.stats.files_read == 0
    assert sum(asked) == 0  # no chunk looked up


def test_keeping_pauses_the_cyclic_collector_and_gives_it_back() -> None:
    import gc

    from common.repository.backup import kept

    assert gc.isenabled()
    with kept.keeping():
        assert not gc.isenabled() and kept.wanted()
    assert gc.isenabled() and not kept.wanted()
    gc.disable()  # a caller that had it off gets it back off
    try:
        with kept.keeping():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_first_backup_kept_serves_the_next_without_reading_trees_or_index(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a migration's pre-copy keeps its trees and index, collector left on: its first
    # catch-up round (the next backup of the volume here) reads neither
    import gc

    from common.repository.core import repository as repomod

    repomod._LOADED.clear()
    for keep in (False, True):
        src = make_volume(tmp_path / f"v-{keep}")
        repo = new_repo()
        with kept.keeping(pause_gc=False) if keep else _null():
            assert gc.isenabled()
            first = backup_directory(repo, src, host="h", volume="v")
        indexes = index_reads(repo, monkeypatch)
        trees = _tree_reads(repo, monkeypatch)
        again = backup_directory(repo, src, host="h", volume="v", parent=first)
        monkeypatch.undo()
        assert again.tree == first.tree and again.stats.files_read == 0
        if keep:
            assert trees == [] and indexes == []
        else:  # what keeping saves: the parent's trees and the whole index read again
            assert trees and indexes
        kept.drop()


def test_trees_kept_from_a_kept_parent_serve_the_next_backup_the_same(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # pre-copy (kept) -> catch-up (kept, from the pre-copy's) -> cut-over: the catch-up's
    # kept trees hold every plain file with its stat and chunks, so the cut-over reads
    # only what changed and no parent tree, and restores to the volume
    src = make_volume(tmp_path / "v")
    plain = sum(1 for p in src.rglob("*") if p.is_file() and not p.is_symlink()
                and p.stat().st_nlink == 1)
    repo = new_repo()
    with kept.keeping(pause_gc=False):
        first = backup_directory(repo, src, host="h", volume="v")
    parsed: list[str] = []
    real_loads = kept.json.loads
    monkeypatch.setattr(kept.json, "loads", lambda t: parsed.append(t) or real_loads(t))
    with kept.keeping():
        second = backup_directory(repo, src, host="h", volume="v", parent=first)
    monkeypatch.undo()
    assert second.tree == first.tree and second.stats.files_read == 0
    assert not any('"type":"file"' in t for t in parsed)  # no unchanged file parsed again
    rid = repo.config.repository_id
    trees, files = kept.take(rid, second.tree)
    assert sum(len(t.files) for t in trees.values()) == plain
    assert all(d is None for t in trees.values() for n, (d, _t) in t.old.items()
               if n in t.files)  # a file's object is not kept, its stat key is
    kept.keep(rid, trees, files)
    _change(src, 3)
    reads = _tree_reads(repo, monkeypatch)
    third = backup_directory(repo, src, host="h", volume="v", parent=second)
    reads = list(reads)
    monkeypatch.undo()
    assert reads == [] and third.stats.files_read == 3  # f3, added.txt, text.log
    out = tmp_path / "restored"
    restore_snapshot(repo, third, out)
    assert compare_trees(src, out) == []

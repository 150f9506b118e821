"""The trees of a trusting sync read before anything is written (``Trees.fetch``,
``BaseChunks.prefetch``): the trees of one pack read together and kept verified, only the
trees the walk enters (and the base's at the same paths), none read again while the walk
writes — and the sync still ends equal to the snapshot, deletions included, with or
without room to keep them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.engine.tree_compare import Seen, compare_tree
from common.errors import IntegrityError
from common.progress import NullTracker
from common.repository.backup.archiver import backup_directory
from common.repository.core import ids
from common.repository.core.ids import BlobType
from common.repository.core.repository import Repository
from common.repository.core.snapshot import Snapshot
from common.repository.restore import restorer, sync, trees
from common.repository.restore.restorer import restore_snapshot
from common.repository.restore.sync import sync_snapshot
from common.repository.restore.sync_base import BaseChunks
from common.repository.restore.trees import Trees
from tests.treecmp import compare_trees
from tests.unit.repository.test_backup import new_repo

Snaps = tuple[Repository, Snapshot, Snapshot, Path]
#: the directories a trusting walk from S1 to S2 enters
ENTERED = ["", "b", "b/c", "b/c/d"]


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snaps]:
    src = tmp_path_factory.mktemp("prefetch") / "volume"
    for d in ("a/x", "b/c/d", "b/old/deeper", "b/same"):
        (src / d).mkdir(parents=True)
    for d in ("a", "a/x", "b", "b/c", "b/c/d", "b/old", "b/old/deeper", "b/same"):
        for i in range(3):
            (src / d / f"f{i}").write_bytes(os.urandom(500 + i))
    repo = new_repo()
    s1 = backup_directory(repo, src, host="h", volume="v")
    (src / "b" / "f0").write_bytes(os.urandom(700))  # changed beside a deletion
    (src / "b" / "f1").unlink()
    (src / "b" / "c" / "d" / "f2").unlink()  # only a deletion, two levels down
    (src / "b" / "c" / "d" / "new").write_text("new")
    for p in sorted((src / "b" / "old").rglob("*"), reverse=True):
        p.rmdir() if p.is_dir() else p.unlink()
    (src / "b" / "old").rmdir()
    s2 = backup_directory(repo, src, host="h", volume="v", parent=s1)
    yield repo, s1, s2, src


def _precopy(repo: Repository, snap: Snapshot, dest: Path) -> Seen:
    restore_snapshot(repo, snap, dest)
    seen: Seen = {}
    assert compare_tree(repo, snap, dest, NullTracker(), seen=seen, written=True).ok
    return seen


def _dir_trees(repo: Repository, snap: Snapshot) -> dict[str, bytes]:
    """The tree id of each directory of ``snap`` ("" the root)."""
    out = {"": snap.tree}
    for rel, node in Trees(repo, 0).walk(snap.tree, [[]], set()):
        if node.type == "dir" and node.subtree is not None:
            out[rel] = node.subtree
    return out


def _count_reads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """The range reads of tree blobs from now on: (pack key, length)."""
    reads: list[tuple[str, int]] = []
    real = trees.read_range

    def counting(backend: object, key: str, offset: int, length: int) -> bytes:
        reads.append((key, length))
        return real(backend, key, offset, length)  # type: ignore[arg-type]

    monkeypatch.setattr(trees, "read_range", counting)
    return reads


def test_fetch_keeps_each_trees_verified_plaintext_reading_a_pack_once(
        snapshots: Snaps, monkeypatch: pytest.MonkeyPatch) -> None:
    repo, s1, _s2, _src = snapshots
    repo.load_index()
    wanted = list(_dir_trees(repo, s1).values())
    packs = {repo.index.lookup(t).pack_id for t in wanted}  # type: ignore[union-attr]
    assert len(packs) < len(wanted)
    expected = {t: Trees(repo, 0).plain(t) for t in wanted}
    reads = _count_reads(monkeypatch)
    cache = Trees(repo, 1 << 20)
    cache.fetch(wanted)
    assert len(reads) == len(packs)  # neighbours in one read
    for t in wanted:
        assert cache.plain(t, keep=True) == expected[t]  # kept: the same again
        assert cache.plain(t) == expected[t]
    assert len(reads) == len(packs)  # nothing read again
    assert cache._kept_bytes == 0  # each dropped once used
    cache.plain(wanted[0])
    assert len(reads) == len(packs) + 1  # used up: read again

    monkeypatch.setattr(trees, "SPAN_GAP", -1)  # no two blobs in one read
    reads.clear()
    Trees(repo, 1 << 20).fetch(wanted)
    assert len(reads) == len(wanted)


def test_fetch_keeps_nothing_beyond_its_budget_and_no_tree_it_cannot_verify(
        snapshots: Snaps) -> None:
    repo, s1, _s2, _src = snapshots
    repo.load_index()
    wanted = list(_dir_trees(repo, s1).values())
    sizes = [repo.index.lookup(t).raw_length for t in wanted]  # type: ignore[union-attr]
    small = Trees(repo, sizes[0] + sizes[1])
    small.fetch(wanted)
    assert set(small._plain) == set(wanted[:2]) and small._kept_bytes == sizes[0] + sizes[1]

    victim = wanted[-1]
    entry = repo.index.lookup(victim)
    assert entry is not None
    key = ids.pack_key(entry.pack_id)
    good = repo.backend.get_bytes(key)
    bad = bytearray(good)
    bad[entry.offset + entry.length // 2] ^= 0xFF
    repo.backend.put_bytes(key, bytes(bad))
    try:
        damaged = Trees(repo, 1 << 20)
        damaged.fetch([*wanted, b"\x01" * 32])  # a damaged tree and an unindexed one
        assert set(damaged._plain) == set(wanted) - {victim}
        with pytest.raises(IntegrityError, match=victim.hex()):
            damaged.plain(victim)
        with pytest.raises(IntegrityError, match="not in the index"):
            damaged.plain(b"\x01" * 32)
        repo.backend.delete(key)
        gone = Trees(repo, 1 << 20)
        gone.fetch(wanted)
        assert victim not in gone._plain
        with pytest.raises(IntegrityError, match="is missing"):
            gone.plain(victim)
    finally:
        repo.backend.put_bytes(key, good)


def test_prefetch_keeps_the_entered_trees_and_the_bases_at_the_same_paths(
        snapshots: Snaps) -> None:
    repo, s1, s2, _src = snapshots
    repo.load_index()
    t1, t2 = _dir_trees(repo, s1), _dir_trees(repo, s2)
    cache = Trees(repo, 1 << 20)
    base = BaseChunks(cache, repo.index, {}, s1.tree)
    assert base.prefetch(s2.tree, devices=True) is False
    assert set(cache._plain) == {t2[r] for r in ENTERED} | {t1[r] for r in ENTERED}
    assert base.dirs.keys() == {"", "b", "b/c"}  # the base's dirs with subdirectories
    assert base.dirs["b"] is not None and "old" in base.dirs["b"]
    cache2 = Trees(repo, 1 << 20)  # nothing to enter: the base's own tree
    assert BaseChunks(cache2, repo.index, {}, s2.tree).prefetch(s2.tree, True) is False
    assert cache2._plain == {}


@pytest.mark.parametrize("budget", [restorer.TREE_CACHE_BYTES, 0], ids=["kept", "no-room"])
def test_a_trusting_sync_reads_no_tree_while_it_writes_and_applies_every_deletion(
        snapshots: Snaps, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        budget: int) -> None:
    repo, s1, s2, src = snapshots
    dest = tmp_path / "dest"
    seen = _precopy(repo, s1, dest)
    monkeypatch.setattr(restorer, "TREE_CACHE_BYTES", budget)
    reads = _count_reads(monkeypatch)
    walking: list[int] = []  # the reads before the walk began
    real_run = sync._run

    def run(*args: object) -> None:
        walking.append(len(reads))
        real_run(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(sync, "_run", run)
    stats = sync_snapshot(repo, s2, dest, in_place=True, record=seen, base=s1.id,
                          trust_base=True, devices=False)
    monkeypatch.undo()
    assert compare_trees(src, dest) == []
    assert compare_tree(repo, s2, dest, NullTracker()).ok
    assert set(stats.removed) == {"b/f1", "b/c/d/f2", "b/old"}
    assert stats.subtrees_skipped == 2  # a, b/same
    if budget:
        assert walking == [len(reads)]  # every tree read before the walk
        assert len(reads) <= 2 * len(ENTERED)  # per level at most a read per pack
    else:
        assert len(reads) > walking[0]  # no room: the walk reads them itself


def test_fetch_reads_trees_of_an_unencrypted_repository(tmp_path: Path) -> None:
    from common.repository import init_repository
    from common.repository.core.keys import KdfParams
    from common.storage.memory import MemoryBackend

    src = tmp_path / "v"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f").write_text("f")
    repo = init_repository(MemoryBackend(), None, unencrypted=True, kdf=KdfParams(2**10, 8, 1))
    snap = backup_directory(repo, src, host="h", volume="v")
    repo.load_index()
    wanted = list(_dir_trees(repo, snap).values())
    cache = Trees(repo, 1 << 20)
    cache.fetch(wanted)
    for t in wanted:
        assert cache.plain(t) == repo.read_blob(t, BlobType.TREE)

"""Forget and prune: space is reclaimed, nothing a remaining snapshot needs is lost, prune
refuses beside a live backup and on damage, and a prune killed at any step leaves a
readable repository."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest

from common.errors import Conflict, IntegrityError, InvalidInput, NotFound, StorageError
from common.progress import NullTracker
from common.repository import ids
from common.repository.backup.archiver import backup_directory
from common.repository.check.checker import check_repository
from common.repository.core.locks import backup_lock, list_locks
from common.repository.core.pack import PackWriter
from common.repository.core.repository import Repository
from common.repository.core.snapshot import Snapshot, load_snapshot, pin_snapshot, snapshot_ids
from common.repository.maintenance.prune import forget_snapshots, prune
from common.repository.maintenance.prune_plan import referenced_blobs
from common.repository.restore.restorer import restore_snapshot
from common.storage.base import ObjectInfo
from common.storage.memory import MemoryBackend
from tests.treecmp import compare_trees
from tests.unit.repository.test_backup import flip_last, make_volume, new_repo


def listing(repo: Repository) -> dict[str, int]:
    return {o.key: o.size for o in repo.backend.list()}


def stored(repo: Repository) -> int:
    return sum(o.size for o in repo.backend.list(ids.PACKS_PREFIX))


def restores(repo: Repository, snap: Snapshot, src: Path, dest: Path) -> None:
    restore_snapshot(repo, snap, dest)
    assert compare_trees(src, dest) == []
    shutil.rmtree(dest)


def garbage(repo: Repository) -> set[bytes]:
    """Indexed blobs no snapshot references."""
    index = repo.load_index().index
    _, used = referenced_blobs(repo, NullTracker())
    return {e.blob_id for e in index} - used


def two_volumes(tmp_path: Path) -> tuple[Repository, Snapshot, Snapshot, Path, Path]:
    repo = new_repo()
    a, b = make_volume(tmp_path / "a", seed=1), make_volume(tmp_path / "b", seed=2)
    return (repo, backup_directory(repo, a, host="h", volume="a"),
            backup_directory(repo, b, host="h", volume="b"), a, b)


def test_forget_then_prune_reclaims_the_forgotten_data_and_keeps_the_rest(tmp_path: Path) -> None:
    repo, snap_a, snap_b, _, b = two_volumes(tmp_path)
    before = stored(repo)
    assert forget_snapshots(repo, [snap_a.id]) == [snap_a.id]
    assert snapshot_ids(repo) == [snap_b.id]
    assert stored(repo) == before  # forget alone deletes only the snapshot object
    report = prune(repo, max_repack_ratio=0.0)
    assert report.snapshots == 1 and not report.dry_run
    assert report.packs_deleted > 0 and report.blobs_removed > 0
    assert report.bytes_reclaimed == before - stored(repo) > 2 << 20  # a's random.bin
    assert garbage(repo) == set()
    check = check_repository(repo, read_data=True)
    assert check.ok, check.problems
    assert check.unreferenced_packs == 0
    restores(repo, snap_b, b, tmp_path / "restored")
    assert list_locks(repo) == []


def test_prune_is_refused_while_a_backup_holds_its_lock_and_is_safe_afterwards(
    tmp_path: Path,
) -> None:
    repo, snap_a, _, _, b = two_volumes(tmp_path)
    forget_snapshots(repo, [snap_a.id])
    c = make_volume(tmp_path / "c", seed=3)
    with backup_lock(repo, "backup job 5"):
        snap_c = backup_directory(repo, c, host="h", volume="c")
        before = listing(repo)
        with pytest.raises(Conflict, match="backup job 5"):
            prune(repo)
        with pytest.raises(Conflict):
            forget_snapshots(repo, [snap_c.id])
        assert listing(repo) == before
    prune(repo, max_repack_ratio=0.0)
    restores(repo, load_snapshot(repo, snap_c.id), c, tmp_path / "r")
    remaining = {s: load_snapshot(repo, s) for s in snapshot_ids(repo)}
    assert {s.volume for s in remaining.values()} == {"b", "c"}
    restores(repo, next(s for s in remaining.values() if s.volume == "b"), b, tmp_path / "r")
    assert check_repository(repo, read_data=True).ok


def test_a_dry_run_changes_nothing_and_predicts_the_real_run(tmp_path: Path) -> None:
    repo, snap_a, _, _, _ = two_volumes(tmp_path)
    forget_snapshots(repo, [snap_a.id])
    before = listing(repo)
    dry = prune(repo, dry_run=True, max_repack_ratio=0.0)
    assert listing(repo) == before
    assert dry.dry_run and dry.packs_deleted > 0
    assert sum(a.startswith("delete pack ") for a in dry.actions) == dry.packs_deleted
    real = prune(repo, max_repack_ratio=0.0)
    for field in ("packs_deleted", "packs_repacked", "blobs_removed", "bytes_deleted",
                  "blobs_live"):
        assert getattr(dry, field) == getattr(real, field), field


def test_partly_used_packs_are_repacked_with_only_their_live_blobs(tmp_path: Path) -> None:
    repo = new_repo()
    src = make_volume(tmp_path / "v")
    first = backup_directory(repo, src, host="h", volume="v")
    for d in range(3):  # half the small files go away
        for i in range(0, 20, 2):
            (src / f"dir{d}" / "nested" / f"small{i}.txt").unlink()
    second = backup_directory(repo, src, host="h", volume="v", parent=first)
    forget_snapshots(repo, [first.id])
    assert garbage(repo)
    report = prune(repo, max_repack_ratio=0.0)
    assert report.packs_repacked > 0 and report.packs_written > 0
    assert report.bytes_written > 0 and report.bytes_reclaimed > 0
    assert garbage(repo) == set()
    assert check_repository(repo, read_data=True).ok
    restores(repo, second, src, tmp_path / "restored")
    again = prune(repo, max_repack_ratio=0.0)  # nothing left to do
    assert (again.packs_deleted, again.packs_repacked, again.index_files_written) == (0, 0, 0)


def test_a_high_repack_ratio_keeps_partly_used_packs(tmp_path: Path) -> None:
    repo = new_repo()
    src = make_volume(tmp_path / "v")
    first = backup_directory(repo, src, host="h", volume="v")
    (src / "text.log").write_bytes(b"changed")
    second = backup_directory(repo, src, host="h", volume="v", parent=first)
    forget_snapshots(repo, [first.id])
    report = prune(repo, max_repack_ratio=1.0)
    assert report.packs_repacked == 0
    assert check_repository(repo, read_data=True).ok
    restores(repo, second, src, tmp_path / "restored")
    with pytest.raises(InvalidInput):
        prune(repo, max_repack_ratio=1.5)


def test_prune_refuses_when_a_snapshot_cannot_be_read(tmp_path: Path) -> None:
    repo, snap_a, snap_b, _, _ = two_volumes(tmp_path)
    forget_snapshots(repo, [snap_a.id])
    key = ids.snapshot_key(snap_b.id)
    repo.backend.put_bytes(key, flip_last(repo.backend.get_bytes(key)))
    before = listing(repo)
    with pytest.raises(IntegrityError, match=f"snapshot {snap_b.id.hex()} cannot be read"):
        prune(repo)
    assert listing(repo) == before
    forget_snapshots(repo, [snap_b.id])  # a damaged snapshot can always be forgotten
    assert snapshot_ids(repo) == []


def test_prune_refuses_when_a_tree_or_blob_a_snapshot_needs_is_missing(tmp_path: Path) -> None:
    repo, snap_a, snap_b, _, _ = two_volumes(tmp_path)
    forget_snapshots(repo, [snap_a.id])
    entry = repo.load_index().index.lookup(snap_b.tree)
    assert entry is not None
    repo.backend.delete(ids.pack_key(entry.pack_id))
    before = listing(repo)
    with pytest.raises(IntegrityError, match=f"tree {snap_b.tree.hex()} of snapshot"):
        prune(repo)
    assert listing(repo) == before


def test_prune_refuses_when_an_index_file_is_damaged(tmp_path: Path) -> None:
    repo, snap_a, _, _, _ = two_volumes(tmp_path)
    forget_snapshots(repo, [snap_a.id])
    key = next(iter(repo.backend.list(ids.INDEX_PREFIX))).key
    repo.backend.put_bytes(key, b"\x01garbage" * 10)
    before = listing(repo)
    with pytest.raises(IntegrityError, match=r"index file .* cannot be read"):
        prune(repo)
    assert listing(repo) == before


def test_forget_refuses_pinned_and_missing_snapshots_unless_forced(tmp_path: Path) -> None:
    repo, snap_a, snap_b, _, _ = two_volumes(tmp_path)
    pin_snapshot(repo, snap_a)
    with pytest.raises(InvalidInput, match="pinned") as exc:
        forget_snapshots(repo, [snap_b.id, snap_a.id])
    assert exc.value.hint and "unpin" in exc.value.hint
    with pytest.raises(NotFound):
        forget_snapshots(repo, [snap_b.id, ids.random_id()])
    assert sorted(snapshot_ids(repo)) == sorted([snap_a.id, snap_b.id])  # nothing deleted
    assert forget_snapshots(repo, [snap_a.id], force_pinned=True) == [snap_a.id]
    assert snapshot_ids(repo) == [snap_b.id]


def test_packs_left_by_a_killed_backup_are_deleted_once_old_enough(tmp_path: Path) -> None:
    repo, _, snap_b, _, b = two_volumes(tmp_path)
    with PackWriter(repo.backend, repo.cipher) as w:  # committed, never indexed
        w.add(repo.codec.encode(ids.BlobType.DATA, b"orphan" * 1000))
        w.finish()
    orphan = w.pack_id
    prune(repo)  # younger than the grace period: kept
    assert ids.pack_key(orphan) in listing(repo)
    report = prune(repo, unindexed_grace=0.0)
    assert report.packs_unindexed_deleted == 1
    assert ids.pack_key(orphan) not in listing(repo)
    restores(repo, snap_b, b, tmp_path / "restored")


class Dying(MemoryBackend):
    """A copy of a repository's objects whose deletes / index writes fail after a while."""

    def __init__(self, source: MemoryBackend, deletes_allowed: int, fail_index_write: bool
                 ) -> None:
        super().__init__("dying")
        for o in source.list():
            self.put_bytes(o.key, source.get_bytes(o.key))
        self.deletes_allowed = deletes_allowed
        self.fail_index_write = fail_index_write
        self.armed = True

    def delete(self, key: str) -> None:
        if self.armed and not key.startswith(ids.LOCKS_PREFIX):
            if self.deletes_allowed <= 0:
                raise StorageError(f"killed before deleting {key}")
            self.deletes_allowed -= 1
        super().delete(key)

    def put_bytes(self, key: str, data: bytes) -> ObjectInfo:
        if getattr(self, "armed", False) and self.fail_index_write \
                and key.startswith(ids.INDEX_PREFIX):
            raise StorageError(f"killed while writing {key}")
        return super().put_bytes(key, data)


def test_a_prune_killed_at_any_step_leaves_a_readable_repository(tmp_path: Path) -> None:
    repo, snap_a, snap_b, _, b = two_volumes(tmp_path)
    src = make_volume(tmp_path / "c", seed=5)
    snap_c = backup_directory(repo, src, host="h", volume="c")
    for d in range(3):
        shutil.rmtree(src / f"dir{d}")
    snap_d = backup_directory(repo, src, host="h", volume="c", parent=snap_c)
    forget_snapshots(repo, [snap_a.id, snap_c.id])
    assert isinstance(repo.backend, MemoryBackend)
    dry = prune(repo, dry_run=True, max_repack_ratio=0.0)
    steps = dry.packs_deleted + dry.packs_repacked + len(list(repo.backend.list(ids.INDEX_PREFIX)))
    assert steps > 3
    trials = [(n, False) for n in sorted({0, 1, steps // 2, steps - 1})] + [(0, True)]
    for allowed, fail_index in trials:
        backend = Dying(repo.backend, allowed, fail_index)
        crashed = Repository(backend, repo.config, repo.key)
        with pytest.raises(StorageError, match="killed"):
            prune(crashed, max_repack_ratio=0.0)
        backend.armed = False
        report = check_repository(crashed)
        assert report.ok, (allowed, fail_index, report.problems)
        restores(crashed, snap_b, b, tmp_path / "r")
        restores(crashed, snap_d, src, tmp_path / "r")
        prune(crashed, max_repack_ratio=0.0)  # the next prune finishes the job
        assert garbage(crashed) == set()
        assert check_repository(crashed, read_data=True).ok


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_random_snapshots_forget_and_prune_keep_every_remaining_snapshot_intact(
    seed: int, tmp_path: Path
) -> None:
    rnd = random.Random(seed)
    repo = new_repo()
    pool = [rnd.randbytes(rnd.choice([0, 100, 5000, 40_000, 300_000])) for _ in range(12)]
    sources: dict[bytes, Path] = {}
    parent: Snapshot | None = None
    for n in range(6):
        src = tmp_path / f"v{n}"
        for i in rnd.sample(range(len(pool)), rnd.randint(2, 8)):
            path = src / rnd.choice(["", "sub", "sub/deep"]) / f"f{i}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(pool[i] + (rnd.randbytes(10) if rnd.random() < 0.3 else b""))
        src.mkdir(exist_ok=True)
        parent = backup_directory(repo, src, host="h", volume=f"v{n % 2}",
                                  parent=parent if n % 2 else None)
        sources[parent.id] = src
    gone = rnd.sample(sorted(sources), 3)
    forget_snapshots(repo, gone)
    prune(repo, max_repack_ratio=rnd.choice([0.0, 0.3, 0.7]))
    report = check_repository(repo, read_data=True)
    assert report.ok, report.problems
    assert sorted(snapshot_ids(repo)) == sorted(set(sources) - set(gone))
    for sid in snapshot_ids(repo):
        restores(repo, load_snapshot(repo, sid), sources[sid], tmp_path / "restored")

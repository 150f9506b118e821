"""Damage marks: what a check finds damaged is recorded in the repository, so the next
backup stores those chunks again instead of deduplicating against the damaged copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.errors import IntegrityError, StorageError
from common.repository import ids
from common.repository.backup.archiver import backup_directory, iter_nodes
from common.repository.check.checker import check_repository, check_snapshot
from common.repository.core.damage import DAMAGED_PREFIX, read_damage
from common.repository.core.repository import Repository, open_repository
from common.repository.core.snapshot import Snapshot
from common.repository.maintenance.prune import prune
from common.repository.restore.restorer import restore_snapshot
from tests.treecmp import compare_trees
from tests.unit.repository.test_backup import flip_last, make_volume, new_repo


def first_chunk(repo: Repository, snap: Snapshot, rel: str) -> tuple[bytes, bytes]:
    """(pack id, blob id) of the first chunk of ``rel`` in ``snap``."""
    node = dict(iter_nodes(repo, snap.tree))[rel]
    entry = repo.load_index().index.lookup(node.content[0])
    assert entry is not None
    return entry.pack_id, entry.blob_id


def flip(repo: Repository, pack_id: bytes, blob_id: bytes) -> None:
    """Flip one byte inside the blob's ciphertext (header and sizes stay intact)."""
    entry = repo.load_index().index.lookup(blob_id)
    assert entry is not None and entry.pack_id == pack_id
    key = ids.pack_key(pack_id)
    data = bytearray(repo.backend.get_bytes(key))
    data[entry.offset + entry.length // 2] ^= 1
    repo.backend.put_bytes(key, bytes(data))


def a_small_file(src: Path) -> str:
    """A non-empty small file of ``make_volume`` (one chunk)."""
    for path in sorted((src / "dir0" / "nested").iterdir()):
        if path.stat().st_size > 100:
            return str(path.relative_to(src))
    raise AssertionError("no small file with content")


def damaged_volume(tmp_path: Path) -> tuple[Repository, Path, Snapshot, dict[str, bytes]]:
    """A backed-up volume, then one chunk of random.bin and of a small file flipped;
    returns the blob ids flipped by path."""
    repo = new_repo()
    src = make_volume(tmp_path / "v")
    old = backup_directory(repo, src, host="h", volume="v")
    small = a_small_file(src)
    flipped = {}
    for rel in ("random.bin", small):
        pack_id, blob_id = first_chunk(repo, old, rel)
        flip(repo, pack_id, blob_id)
        flipped[rel] = blob_id
    return repo, src, old, flipped


def test_verify_records_damage_and_the_next_backup_stores_the_chunks_again(
        tmp_path: Path) -> None:
    repo, src, old, flipped = damaged_volume(tmp_path)
    small = next(r for r in flipped if r != "random.bin")
    found = check_snapshot(repo, old, read_data=True)
    assert {p.object_id for p in found.problems} >= {b.hex() for b in flipped.values()}
    assert found.damage_mark is not None
    # Another host opens the repository: the mark is in the repository itself.
    other = open_repository(repo.backend, "pw")
    damage, unreadable = read_damage(other.backend, other.cipher)
    assert not unreadable and set(damage.blobs) == set(flipped.values())

    (src / small).unlink()  # gone from the volume: only the old snapshot needs it
    new = backup_directory(other, src, host="h", volume="v", parent=old)
    assert new.stats.new_blobs >= 1  # random.bin's damaged chunk was stored again
    entry = other.load_index().index.lookup(flipped["random.bin"])
    assert entry is not None and entry.pack_id not in damage.affected_packs()
    restored = tmp_path / "restored"
    restore_snapshot(other, new, restored)
    assert compare_trees(str(src), str(restored)) == []
    assert check_snapshot(other, new, read_data=True).ok

    again = check_snapshot(other, old, read_data=True)
    bad = {p.object_id: p for p in again.problems}
    # random.bin now reads its healthy copy; the file the volume lost stays damaged.
    assert flipped["random.bin"].hex() not in bad
    assert bad[flipped[small].hex()].paths == [f"/{small}"]
    assert again.damage_mark is None  # nothing new: no second mark
    # Even a structure check (which reads no blob) reports the blob a mark names.
    structure = check_snapshot(other, old)
    [problem] = structure.problems
    assert problem.object_id == flipped[small].hex() and "found damaged" in problem.message
    assert problem.paths == [f"/{small}"]
    # A restore of the old snapshot writes everything else and says why the file is not.
    with pytest.raises(IntegrityError) as caught:
        restore_snapshot(other, old, tmp_path / "old")
    assert "found damaged" in str(caught.value) and small in str(caught.value)
    assert (tmp_path / "old" / "random.bin").read_bytes() == (src / "random.bin").read_bytes()
    assert len(list(other.backend.list(DAMAGED_PREFIX))) == 1


def test_a_repository_check_records_damage_and_keeps_reporting_it(tmp_path: Path) -> None:
    repo, src, old, flipped = damaged_volume(tmp_path)
    first = check_repository(repo, read_data=True)
    assert first.damage_mark is not None
    second = check_repository(repo, read_data=True)
    assert {p.object_id for p in second.problems} == {p.object_id for p in first.problems}
    assert second.damage_mark is None
    new = backup_directory(repo, src, host="h", volume="v", parent=old)
    assert new.stats.new_blobs >= len(flipped)
    assert check_snapshot(repo, new, read_data=True).ok


def test_an_unreadable_damage_mark_is_reported_by_the_repository_check(
        tmp_path: Path) -> None:
    repo, _, old, _ = damaged_volume(tmp_path)
    mark = check_snapshot(repo, old, read_data=True).damage_mark
    assert mark is not None
    key = DAMAGED_PREFIX + mark
    repo.backend.put_bytes(key, flip_last(repo.backend.get_bytes(key)))
    report = check_repository(repo)
    [problem] = [p for p in report.problems if p.object_id == mark]
    assert "damage mark" in problem.message and "check --read-data" in problem.message


def test_a_storage_error_is_not_recorded_as_damage(tmp_path: Path) -> None:
    repo, _, old, _ = damaged_volume(tmp_path)

    real = repo.backend.read_range

    def failing(key: str, offset: int, length: int | None = None) -> bytes:
        raise StorageError("connection reset", "retry")

    repo.backend.read_range = failing  # type: ignore[method-assign]
    try:
        report = check_snapshot(repo, old, read_data=True)
    finally:
        repo.backend.read_range = real  # type: ignore[method-assign]
    assert not report.ok and report.damage_mark is None


def test_prune_keeps_the_healthy_copy_of_a_blob_stored_twice(tmp_path: Path) -> None:
    repo, src, old, _ = damaged_volume(tmp_path)
    check_snapshot(repo, old, read_data=True)
    new = backup_directory(repo, src, host="h", volume="v", parent=old)
    prune(repo, max_repack_ratio=0.0, unindexed_grace=0)
    restored = tmp_path / "restored"
    restore_snapshot(repo, new, restored)
    assert compare_trees(str(src), str(restored)) == []
    assert check_snapshot(repo, new, read_data=True).ok


def test_a_target_that_refuses_the_mark_still_gets_the_checks_report(tmp_path: Path) -> None:
    repo, _, old, flipped = damaged_volume(tmp_path)
    real = repo.backend.put_bytes

    def refuse(key: str, data: bytes):  # type: ignore[no-untyped-def]
        if key.startswith(DAMAGED_PREFIX):
            raise StorageError("access denied", "grant write access")
        return real(key, data)

    repo.backend.put_bytes = refuse  # type: ignore[method-assign]
    report = check_snapshot(repo, old, read_data=True)
    assert {p.object_id for p in report.problems} >= {b.hex() for b in flipped.values()}
    assert report.damage_mark is None


def test_a_damaged_parent_tree_is_backed_up_again_in_full(tmp_path: Path) -> None:
    repo = new_repo()
    src = make_volume(tmp_path / "v")
    old = backup_directory(repo, src, host="h", volume="v")
    entry = repo.load_index().index.lookup(old.tree)
    assert entry is not None
    flip(repo, entry.pack_id, old.tree)
    assert not check_snapshot(repo, old).ok  # the tree walk finds it and marks it
    new = backup_directory(repo, src, host="h", volume="v", parent=old)
    assert new.tree == old.tree  # the same content, stored again
    assert check_snapshot(repo, new, read_data=True).ok
    restored = tmp_path / "restored"
    restore_snapshot(repo, new, restored)
    assert compare_trees(str(src), str(restored)) == []

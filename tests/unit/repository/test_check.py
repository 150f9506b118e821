"""Repository check: clean repositories pass; damage is found and named with its files."""

from __future__ import annotations

import tempfile
from pathlib import Path

from common.repository import ids
from common.repository.backup.archiver import backup_directory, iter_nodes
from common.repository.check.checker import check_repository
from common.repository.core.repository import Repository
from common.repository.core.snapshot import Snapshot
from tests.unit.repository.test_backup import flip_last, make_volume, new_repo


def _backed_up(tmp_path: Path) -> tuple[Repository, Snapshot]:
    repo = new_repo()
    return repo, backup_directory(repo, make_volume(tmp_path / "v"), host="h", volume="v")


def _pack_of(repo: Repository, snap: Snapshot, rel: str) -> tuple[bytes, bytes]:
    """(pack id, blob id) of the first chunk of ``rel``."""
    index = repo.load_index().index
    node = dict(iter_nodes(repo, snap.tree))[rel]
    entry = index.lookup(node.content[0])
    assert entry is not None
    return entry.pack_id, entry.blob_id


def test_a_healthy_repository_passes_the_structure_and_read_data_checks(tmp_path: Path) -> None:
    repo, _ = _backed_up(tmp_path)
    report = check_repository(repo, read_data=True)
    assert report.ok, report.problems
    assert report.snapshots == 1 and report.packs == report.packs_read > 1
    assert report.blobs_read == report.blobs > 1


def test_a_flipped_byte_is_found_by_read_data_naming_the_pack_blob_and_files(
    tmp_path: Path,
) -> None:
    repo, snap = _backed_up(tmp_path)
    pack_id, blob_id = _pack_of(repo, snap, "random.bin")
    key = ids.pack_key(pack_id)
    data = bytearray(repo.backend.get_bytes(key))
    entry = repo.load_index().index.lookup(blob_id)
    assert entry is not None
    data[entry.offset + 100] ^= 1
    repo.backend.put_bytes(key, bytes(data))

    assert check_repository(repo).ok  # structure alone cannot see inside blobs
    report = check_repository(repo, read_data=True)
    assert not report.ok
    by_id = {p.object_id: p for p in report.problems}
    assert by_id[blob_id.hex()].kind == "blob"
    assert "failed to authenticate" in by_id[blob_id.hex()].message
    assert by_id[blob_id.hex()].paths == [f"{snap.id.hex()[:8]}:/random.bin"]
    assert by_id[pack_id.hex()].kind == "pack"
    assert f"{snap.id.hex()[:8]}:/random.bin" in by_id[pack_id.hex()].paths


def test_a_missing_pack_is_named_with_the_files_that_depend_on_it(tmp_path: Path) -> None:
    repo, snap = _backed_up(tmp_path)
    pack_id, _ = _pack_of(repo, snap, "text.log")
    repo.backend.delete(ids.pack_key(pack_id))
    report = check_repository(repo)
    assert [p.kind for p in report.problems] == ["pack"]
    problem = report.problems[0]
    assert problem.object_id == pack_id.hex() and "is missing" in problem.message
    assert f"{snap.id.hex()[:8]}:/text.log" in problem.paths


def test_a_truncated_pack_is_found_by_the_structure_check(tmp_path: Path) -> None:
    repo, snap = _backed_up(tmp_path)
    pack_id, _ = _pack_of(repo, snap, "random.bin")
    key = ids.pack_key(pack_id)
    repo.backend.put_bytes(key, repo.backend.get_bytes(key)[:-10])
    report = check_repository(repo)
    assert not report.ok
    assert report.problems[0].object_id == pack_id.hex()
    assert f"{snap.id.hex()[:8]}:/random.bin" in report.problems[0].paths


def test_a_damaged_tree_names_the_directory_whose_listing_is_lost(tmp_path: Path) -> None:
    repo, snap = _backed_up(tmp_path)
    index = repo.load_index().index
    sub = dict(iter_nodes(repo, snap.tree))["dir1"].subtree
    assert sub is not None
    entry = index.lookup(sub)
    assert entry is not None
    key = ids.pack_key(entry.pack_id)
    data = bytearray(repo.backend.get_bytes(key))
    data[entry.offset + 20] ^= 1
    repo.backend.put_bytes(key, bytes(data))
    report = check_repository(repo)
    tree_problem = next(p for p in report.problems if p.object_id == sub.hex())
    assert tree_problem.kind == "tree"
    assert tree_problem.paths == [f"{snap.id.hex()[:8]}:/dir1/ (whole directory)"]


def test_damaged_index_files_and_snapshots_are_named(tmp_path: Path) -> None:
    repo, snap = _backed_up(tmp_path)
    index_key = next(iter(repo.backend.list(ids.INDEX_PREFIX))).key
    repo.backend.put_bytes(index_key, b"\x01garbage" * 10)
    snap_key = ids.snapshot_key(snap.id)
    repo.backend.put_bytes(snap_key, flip_last(repo.backend.get_bytes(snap_key)))
    report = check_repository(repo)
    kinds = {p.kind: p for p in report.problems}
    assert kinds["index"].object_id == ids.id_from_key(index_key).hex()
    assert kinds["snapshot"].object_id == snap.id.hex()


def test_a_read_data_subset_reads_about_that_fraction_of_the_packs(tmp_path: Path) -> None:
    repo, _ = _backed_up(tmp_path)
    report = check_repository(repo, read_data_subset=0.25)
    assert report.ok
    assert report.packs_read == -(-report.packs // 4)


def test_damage_in_a_subtree_shared_by_two_snapshots_names_the_files_of_both(
    tmp_path: Path,
) -> None:
    repo = new_repo()
    src = make_volume(tmp_path / "v")
    first = backup_directory(repo, src, host="h", volume="v")
    (src / "dir2" / "new.txt").write_bytes(b"only in the second snapshot")
    second = backup_directory(repo, src, host="h", volume="v", parent=first)
    pack_id, blob_id = _pack_of(repo, first, "dir0/nested/small2.txt")
    key = ids.pack_key(pack_id)
    entry = repo.load_index().index.lookup(blob_id)
    assert entry is not None
    data = bytearray(repo.backend.get_bytes(key))
    data[entry.offset + entry.length // 2] ^= 1
    repo.backend.put_bytes(key, bytes(data))

    report = check_repository(repo, read_data=True)
    paths = {p.object_id: p.paths for p in report.problems}[blob_id.hex()]
    assert sorted(paths) == sorted(f"{s.id.hex()[:8]}:/dir0/nested/small2.txt"
                                   for s in (first, second))
    assert report.snapshots == 2 and report.blobs_read == report.blobs


def test_worker_processes_find_a_flipped_byte_and_name_its_files_like_threads(
    tmp_path: Path,
) -> None:
    """Packs of small blobs are decoded in worker processes (spawned; the bytes go through
    a spool file): the same report as in threads, and no spool file is left behind."""
    repo, snap = _backed_up(tmp_path)
    pack_id, blob_id = _pack_of(repo, snap, "dir0/nested/small2.txt")
    entry = repo.load_index().index.lookup(blob_id)
    assert entry is not None
    key = ids.pack_key(pack_id)
    data = bytearray(repo.backend.get_bytes(key))
    data[entry.offset + entry.length // 2] ^= 1
    repo.backend.put_bytes(key, bytes(data))
    spools = set(Path(tempfile.gettempdir()).glob("volkeeper-check-*"))

    in_processes = check_repository(repo, read_data=True, processes=2)
    in_threads = check_repository(repo, read_data=True, processes=0)
    assert [p.to_dict() for p in in_processes.problems] == \
        [p.to_dict() for p in in_threads.problems]
    by_id = {p.object_id: p for p in in_processes.problems}
    assert by_id[blob_id.hex()].paths == [f"{snap.id.hex()[:8]}:/dir0/nested/small2.txt"]
    assert by_id[pack_id.hex()].kind == "pack"
    assert in_processes.blobs_read == in_threads.blobs_read == in_processes.blobs
    assert set(Path(tempfile.gettempdir()).glob("volkeeper-check-*")) == spools


def test_a_tree_decoded_by_read_data_still_reports_blobs_missing_from_the_index(
    tmp_path: Path,
) -> None:
    """The walk takes trees from the pack checks; a chunk whose index entry is gone is
    still named, with its file."""
    repo, snap = _backed_up(tmp_path)
    index = repo.load_index().index
    node = dict(iter_nodes(repo, snap.tree))["text.log"]
    gone = node.content[0]
    for info in list(repo.backend.list(ids.INDEX_PREFIX)):
        repo.backend.delete(info.key)
    repo.write_index_file([e for e in index if e.blob_id != gone])
    report = check_repository(repo, read_data=True)
    [problem] = [p for p in report.problems if p.object_id == gone.hex()]
    assert problem.kind == "blob" and "not indexed" in problem.message
    assert problem.paths == [f"{snap.id.hex()[:8]}:/text.log"]

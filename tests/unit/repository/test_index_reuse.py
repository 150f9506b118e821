"""A backup's index load reuses the index a backup of the repository kept in this process
(``Repository.load_index(reuse=True)``, ``remember_index``: a migration's catch-up): only
index files added since are read, and the result is what reading every file gives; a
file gone, a damage mark or a plain load reads storage again."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.repository import ids
from common.repository.backup import kept
from common.repository.backup.archiver import BackupOptions, backup_directory, iter_nodes
from common.repository.core import repository as repomod
from common.repository.core.damage import Damage, write_damage
from common.repository.core.index import Index
from common.repository.core.repository import Repository, open_repository
from common.repository.restore.restorer import restore_snapshot
from tests.treecmp import compare_trees
from tests.unit.repository.test_backup import make_volume, new_repo
from tests.unit.repository.test_backup_kept import index_reads, kept_backup


def _entries(index: Index, repo: Repository) -> dict[bytes, object]:
    blob_ids = {c for s in _snapshots(repo) for _p, n in iter_nodes(repo, s) for c in n.content}
    return {b: index.lookup(b) for b in blob_ids}


def _snapshots(repo: Repository) -> list[bytes]:
    from common.repository.core.snapshot import list_snapshots
    return [s.tree for s in list_snapshots(repo)]


def _full(repo: Repository) -> Index:
    other = open_repository(repo.backend, "pw")
    return other.load_index().index


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    repomod._LOADED.clear()
    kept.drop()


def test_a_second_backup_reads_only_the_index_files_added_since(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a backup that another follows (a migration's catch-up) keeps its index
    src, repo, first = kept_backup(tmp_path)
    (src / "text.log").write_bytes(b"changed\n" * 50_000)
    (src / "new.bin").write_bytes(b"n" * 300_000)
    reads = index_reads(repo, monkeypatch)
    second = backup_directory(repo, src, host="h", volume="v", parent=first)
    assert reads == []  # the first backup's load plus the files it wrote: nothing to read
    out = tmp_path / "restored"
    restore_snapshot(repo, second, out)
    assert compare_trees(src, out) == []
    # another process adds index files: the next load reads those it has not read
    cache = dict(repomod._LOADED)
    known = next(iter(cache.values()))[0]
    other = open_repository(repo.backend, "pw")
    (src / "third.bin").write_bytes(b"t" * 200_000)
    backup_directory(other, src, host="h2", volume="v")
    repomod._LOADED.clear()
    repomod._LOADED.update(cache)  # what this process knew before
    reads.clear()
    loaded = repo.load_index(reuse=True)
    added = set(loaded.files) - known
    assert added and sorted(reads) == sorted(ids.index_key(f) for f in added)
    full = _full(repo)
    assert len(loaded.index) == len(full)
    assert _entries(loaded.index, repo) == _entries(full, repo)


def test_an_index_file_gone_or_a_damage_mark_means_a_full_read(tmp_path: Path) -> None:
    src = make_volume(tmp_path / "v")
    repo = new_repo()
    backup_directory(repo, src, host="h", volume="v", options=BackupOptions(keep_trees=True))
    assert repomod._LOADED
    files = repo.load_index(reuse=True).files
    # a prune rewrote the index: one file gone (its entries with it)
    gone = files[0]
    repo.backend.delete(ids.index_key(gone))
    loaded = repo.load_index(reuse=True)
    assert gone not in loaded.files and len(loaded.index) == len(_full(repo))
    # a damage mark: the marked pack's entries are left out, as a plain load does
    pack = next(iter(loaded.index._packs))
    write_damage(repo.backend, repo.cipher, Damage(packs={pack}), "test")
    marked = repo.load_index(reuse=True)
    assert len(marked.index) == len(_full(repo)) < len(loaded.index)
    assert marked.quarantined


def test_a_plain_load_reads_storage_even_after_a_reused_one(tmp_path: Path) -> None:
    src = make_volume(tmp_path / "v")
    repo = new_repo()
    backup_directory(repo, src, host="h", volume="v", options=BackupOptions(keep_trees=True))
    files = repo.load_index(reuse=True).files
    key = ids.index_key(files[0])
    data = bytearray(repo.backend.get_bytes(key))
    data[-1] ^= 1
    repo.backend.put_bytes(key, bytes(data))
    assert repo.load_index().damaged.keys() == {files[0]}  # a check sees the damage
    # without a kept index a reusing load reads storage too, and keeps nothing
    repomod._LOADED.clear()
    assert repo.load_index(reuse=True).damaged.keys() == {files[0]}
    assert repo.index_files is None
    backup_directory(repo, src, host="h", volume="v", options=BackupOptions(keep_trees=True))
    assert not repomod._LOADED


def test_the_kept_index_goes_with_the_kept_trees(tmp_path: Path) -> None:
    _src, _repo, _first = kept_backup(tmp_path)
    assert repomod._LOADED and kept._kept is not None
    kept.drop()  # what the timer does once no backup followed in time
    assert not repomod._LOADED and kept._kept is None


def test_a_destination_reusing_its_index_reads_only_the_files_added_since(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a migration's destination (``reusing_index``): the pre-copy's restore keeps the
    # index it loaded; the cut-over's sync reads only the index files added since, and
    # syncs exactly; outside the block every load reads every file
    from common.repository.core.repository import reusing_index
    from common.repository.restore.sync import sync_snapshot

    src = make_volume(tmp_path / "v")
    source = new_repo()
    first = backup_directory(source, src, host="h", volume="v")
    dest = open_repository(source.backend, "pw")  # another worker: its own object
    out = tmp_path / "dest"
    with reusing_index():
        restore_snapshot(dest, first, out)
    assert repomod._LOADED
    (src / "text.log").write_bytes(b"changed\n" * 40_000)
    (src / "new.bin").write_bytes(b"n" * 300_000)
    final = backup_directory(source, src, host="h", volume="v", parent=first)
    reads = index_reads(dest, monkeypatch)
    with reusing_index():
        sync_snapshot(dest, final, out)
    listed = {ids.id_from_key(i.key) for i in dest.backend.list(ids.INDEX_PREFIX)}
    known = {ids.id_from_key(k) for k in reads}
    assert reads and known < listed  # only the final backup's index files were read
    assert compare_trees(src, out) == []
    assert _entries(dest.index, dest) == _entries(_full(dest), dest)
    reads.clear()
    dest.load_index()  # a plain load (a check, a restore elsewhere): every file
    assert {ids.id_from_key(k) for k in reads} == listed

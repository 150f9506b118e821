"""A sync told the destination's record and base snapshot (``sync_base``): the chunks a
changed file still holds are known without reading it, and anything the record does not
vouch for is read and hashed as before."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from common.engine.tree_compare import Seen, compare_tree
from common.progress import NullTracker
from common.repository.backup.archiver import backup_directory
from common.repository.core.repository import Repository
from common.repository.core.snapshot import Snapshot
from common.repository.restore import sync_files
from common.repository.restore.restorer import restore_snapshot
from common.repository.restore.sync import sync_snapshot
from common.repository.restore.trees import Trees
from tests.treecmp import compare_trees
from tests.unit.repository.test_backup import make_volume, new_repo

BIG = "random.bin"  # 2 MiB: one 4 KiB region changes between S1 and S2
SMALL = "dir1/nested/small3.txt"  # rewritten whole
TOUCHED = "text.log"  # the same content, another mtime


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[tuple[Repository, Snapshot, Snapshot, Path]]:
    src = make_volume(tmp_path_factory.mktemp("syncbase") / "volume")
    repo = new_repo()
    s1 = backup_directory(repo, src, host="h", volume="v")
    with open(src / BIG, "r+b") as f:
        f.seek(1 << 20)
        f.write(os.urandom(4096))
    small = src / SMALL  # new content, same size: the same offsets as S1's chunk
    small.write_bytes(os.urandom(small.stat().st_size))
    st = os.stat(src / TOUCHED)
    os.utime(src / TOUCHED, ns=(st.st_atime_ns, st.st_mtime_ns - 10**9))  # its mtime only
    s2 = backup_directory(repo, src, host="h", volume="v", parent=s1)
    assert s2.parent == s1.id
    yield repo, s1, s2, src


def _chunks(repo: Repository, snap: Snapshot, rel: str) -> int:
    """How many chunks the file ``rel`` of ``snap`` has."""
    repo.load_index()
    return len(next(n for p, n in Trees(repo, 0).walk(snap.tree, [[]], set())
                    if p == rel).content)


def _precopy(repo: Repository, s1: Snapshot, dest: Path) -> Seen:
    """S1 restored into ``dest`` and recorded, as a migration's pre-copy does."""
    restore_snapshot(repo, s1, dest)
    seen: Seen = {}
    assert compare_tree(repo, s1, dest, NullTracker(), seen=seen, written=True).ok
    return seen


def _hashed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """What ``match_chunks`` read: how many chunks, one entry per file."""
    calls: list[int] = []
    real = sync_files.match_chunks

    def counting(*args: Any, **kwargs: Any) -> list[bool]:
        calls.append(len(args[2]))
        return real(*args, **kwargs)

    monkeypatch.setattr(sync_files, "match_chunks", counting)
    return calls


@pytest.mark.parametrize("in_place", [True, False], ids=["in-place", "atomic"])
def test_kept_chunks_come_from_the_record_and_base_without_reading_the_file(
        snapshots: tuple[Repository, Snapshot, Snapshot, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, in_place: bool) -> None:
    repo, s1, s2, src = snapshots
    dest = tmp_path / "dest"
    seen = _precopy(repo, s1, dest)
    hashed = _hashed(monkeypatch)
    stats = sync_snapshot(repo, s2, dest, in_place=in_place, record=seen, base=s1.id)
    assert compare_trees(src, dest) == []
    assert stats.files_known == 3
    # only chunks whose offsets no chunk of S1 has (the boundaries moved) were read
    assert len(hashed) <= 1 and sum(hashed) < _chunks(repo, s2, BIG) // 2
    assert stats.bytes_reused > 1 << 20  # the big file's unchanged chunks kept
    assert stats.bytes_fetched < 256 << 10  # the changed chunks only
    assert set(stats.wrote) == {BIG, SMALL, TOUCHED}
    # and the verify (not trusting anything) agrees
    assert compare_tree(repo, s2, dest, NullTracker()).ok


def test_a_file_changed_behind_the_records_back_is_read_and_synced_correctly(
        snapshots: tuple[Repository, Snapshot, Snapshot, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Garbage written into chunks S2 keeps, the size and mtime put back: the ctime
    differs from the record's, so the file is hashed and the garbage replaced."""
    repo, s1, s2, src = snapshots
    dest = tmp_path / "dest"
    seen = _precopy(repo, s1, dest)
    st = os.lstat(dest / BIG)
    with open(dest / BIG, "r+b") as f:
        f.write(b"\0garbage" * 512)  # the first chunk, unchanged in S2
    os.utime(dest / BIG, ns=(st.st_atime_ns, st.st_mtime_ns + 1))  # differs from S2's
    hashed = _hashed(monkeypatch)
    stats = sync_snapshot(repo, s2, dest, in_place=True, record=seen, base=s1.id)
    assert compare_trees(src, dest) == []
    assert stats.files_known == 2 and hashed == [_chunks(repo, s2, BIG)]  # BIG read


@pytest.mark.parametrize("stale", ["digest", "inode", "base"])
def test_a_record_or_base_that_does_not_vouch_for_a_file_falls_back_to_hashing(
        snapshots: tuple[Repository, Snapshot, Snapshot, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, stale: str) -> None:
    repo, s1, s2, src = snapshots
    dest = tmp_path / "dest"
    seen = _precopy(repo, s1, dest)
    base = s1.id
    if stale == "digest":  # recorded from other content: not the base's chunks
        seen = {k: (*v[:4], "0" * 64) for k, v in seen.items()}
    elif stale == "inode":
        seen = {k: (v[0] + 1, *v[1:]) for k, v in seen.items()}
    else:  # a base snapshot that is not in the repository (pruned)
        base = bytes(32)
    hashed = _hashed(monkeypatch)
    stats = sync_snapshot(repo, s2, dest, in_place=True, record=seen, base=base)
    assert compare_trees(src, dest) == []
    if stale == "inode":  # nothing vouched for
        assert stats.files_known == 0
        assert sorted(hashed) == sorted([1, _chunks(repo, s2, TOUCHED), _chunks(repo, s2, BIG)])
    else:  # the record alone: SMALL (one chunk, other content) rewritten without reading
        assert stats.files_known == (2 if stale == "base" else 1)  # + TOUCHED: its chunks
        assert _chunks(repo, s2, BIG) in hashed and 1 not in hashed
    assert stats.bytes_reused > 1 << 20

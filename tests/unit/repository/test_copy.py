"""Copying snapshots between repositories: other backends, other passphrases and id keys,
full fidelity, deduplication on the second copy, crash-safe ordering."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.errors import StorageError
from common.repository import ids
from common.repository.backup.archiver import backup_directory
from common.repository.check.checker import check_repository
from common.repository.core.locks import list_locks
from common.repository.core.repository import (
    Repository,
    init_repository,
    open_repository,
)
from common.repository.core.snapshot import Snapshot, load_snapshot, snapshot_ids
from common.repository.maintenance.copy import CopyStats, copy_snapshot
from common.repository.restore.restorer import restore_snapshot
from common.storage.base import Backend, ObjectInfo
from common.storage.local import LocalBackend
from common.storage.memory import MemoryBackend
from tests.treecmp import build_fidelity_tree, compare_trees
from tests.unit.archive.test_helpers import xattr_capable_dir
from tests.unit.repository.test_backup import FAST, SMALL, make_volume

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="owners and devices need root")


def make_repo(backend: Backend, passphrase: str, like: Repository | None = None) -> Repository:
    return init_repository(backend, passphrase, kdf=FAST, chunker=SMALL, pack_size=256 * 1024,
                           chunking_from=like)


def packs(repo: Repository) -> dict[str, int]:
    return {o.key: o.size for o in repo.backend.list(ids.PACKS_PREFIX)}


def restores(repo: Repository, snap: Snapshot, src: Path, dest: Path) -> None:
    restore_snapshot(repo, snap, dest)
    assert compare_trees(src, dest) == []
    shutil.rmtree(dest)


@pytest.fixture(scope="module")
def fidelity(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    base = xattr_capable_dir(tmp_path_factory.mktemp("fidelity"))
    root = base / "volume"
    build_fidelity_tree(root)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@needs_root
def test_a_copy_to_another_backend_with_other_keys_restores_with_full_fidelity_and_dedups(
    fidelity: Path, tmp_path: Path
) -> None:
    src = make_repo(LocalBackend(tmp_path / "local"), "source passphrase")
    dst = make_repo(MemoryBackend("dst"), "another passphrase")
    assert src.key.id_key != dst.key.id_key and src.key.enc_key != dst.key.enc_key
    snap = backup_directory(src, fidelity, host="h1", volume="data", tags=["nightly"])
    stats = CopyStats()
    copied = copy_snapshot(src, dst, snap, stats=stats)
    assert stats.blobs_stored > 0 and stats.packs > 0
    assert (copied.host, copied.volume, copied.time, copied.tags) == \
        ("h1", "data", snap.time, ["nightly"])
    assert copied.tree != snap.tree  # trees were rewritten with the destination's ids
    dest = xattr_capable_dir(tmp_path) / "restored"
    restores(dst, load_snapshot(dst, copied.id), fidelity, dest)
    report = check_repository(dst, read_data=True)
    assert report.ok, report.problems

    before = packs(dst)
    again = CopyStats()
    assert copy_snapshot(src, dst, snap, stats=again).id == copied.id
    assert again.blobs_stored == 0 and packs(dst) == before  # nothing uploaded twice
    assert snapshot_ids(dst) == [copied.id]

    # and back, into a fresh local repository with a third passphrase
    back = make_repo(LocalBackend(tmp_path / "back"), "third")
    returned = copy_snapshot(open_repository(dst.backend, "another passphrase"), back, copied)
    restores(back, returned, fidelity, dest)
    assert check_repository(back, read_data=True).ok
    assert list_locks(src) == list_locks(dst) == list_locks(back) == []


def test_a_copy_dedups_against_what_the_destination_already_holds(tmp_path: Path) -> None:
    src = make_repo(MemoryBackend("src"), "one")
    dst = make_repo(LocalBackend(tmp_path / "dst"), "two")
    vol = make_volume(tmp_path / "v")
    first = backup_directory(src, vol, host="h", volume="v")
    copy_snapshot(src, dst, first)
    (vol / "new.bin").write_bytes(os.urandom(300_000))
    second = backup_directory(src, vol, host="h", volume="v", parent=first)
    stats = CopyStats()
    copied = copy_snapshot(src, dst, second, stats=stats)
    # only the new file's chunks and the trees on its path are new
    assert 0 < stats.bytes_stored < 400_000
    assert stats.blobs_skipped > 60
    restores(dst, copied, vol, tmp_path / "restored")
    assert len(snapshot_ids(dst)) == 2
    assert check_repository(dst, read_data=True).ok


def test_repositories_sharing_chunking_copy_without_reading_what_is_there(
    tmp_path: Path,
) -> None:
    src = make_repo(MemoryBackend("src"), "one")
    dst = make_repo(MemoryBackend("dst"), "two", like=src)
    assert dst.key.id_key == src.key.id_key and dst.key.enc_key != src.key.enc_key
    vol = make_volume(tmp_path / "v")
    snap = backup_directory(src, vol, host="h", volume="v")
    copied = copy_snapshot(src, dst, snap)
    assert copied.tree == snap.tree  # same ids: trees are not rewritten
    restores(dst, copied, vol, tmp_path / "restored")
    # a native backup into the destination dedups against the copied data
    native = backup_directory(dst, vol, host="h", volume="v2")
    assert native.stats.new_blobs == 0
    # copying a snapshot whose trees the destination holds reads nothing at all
    (tmp_path / "v" / "text.log").unlink()
    later = backup_directory(src, vol, host="h", volume="v", parent=snap)
    stats = CopyStats()
    copy_snapshot(src, dst, later, stats=stats)
    assert stats.blobs_read == 1 and stats.blobs_stored == 1  # the new root tree only
    assert check_repository(dst, read_data=True).ok


class Failing(MemoryBackend):
    """Fails every snapshot write."""

    def put_bytes(self, key: str, data: bytes) -> ObjectInfo:
        if key.startswith(ids.SNAPSHOTS_PREFIX):
            raise StorageError(f"killed before writing {key}")
        return super().put_bytes(key, data)


def test_a_copy_killed_before_its_snapshot_leaves_no_snapshot_and_is_resumed(
    tmp_path: Path,
) -> None:
    src = make_repo(MemoryBackend("src"), "one")
    vol = make_volume(tmp_path / "v")
    snap = backup_directory(src, vol, host="h", volume="v")
    backend = Failing("dst")
    dst = make_repo(backend, "two")
    with pytest.raises(StorageError):
        copy_snapshot(src, dst, snap)
    assert snapshot_ids(dst) == [] and list_locks(dst) == []
    assert check_repository(dst).ok
    stored = packs(dst)
    assert stored  # data arrived and was indexed before the snapshot write
    ok = Repository(MemoryBackend("dst2"), dst.config, dst.key)
    for o in backend.list():
        ok.backend.put_bytes(o.key, backend.get_bytes(o.key))
    stats = CopyStats()
    copied = copy_snapshot(src, ok, snap, stats=stats)
    assert stats.blobs_stored == 0  # everything was reused
    restores(ok, copied, vol, tmp_path / "restored")



"""Repository restores: full fidelity, selected paths, damaged data and hostile trees."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.errors import Conflict, IntegrityError, NotFound
from common.repository import ids
from common.repository.backup.archiver import backup_directory
from common.repository.core.ids import BlobType
from common.repository.core.pack import PackWriter
from common.repository.core.repository import Repository
from common.repository.core.snapshot import Snapshot, save_snapshot
from common.repository.core.tree import Node, Tree
from common.repository.restore.restorer import restore_snapshot
from tests.treecmp import build_fidelity_tree, compare_trees
from tests.unit.archive.test_helpers import xattr_capable_dir
from tests.unit.repository.test_backup import make_volume, new_repo

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="owners and devices need root")


@pytest.fixture(scope="module")
def fidelity(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, bool]]]:
    base = xattr_capable_dir(tmp_path_factory.mktemp("fidelity"))
    root = base / "volume"
    made = build_fidelity_tree(root)
    yield root, made
    shutil.rmtree(root, ignore_errors=True)


@needs_root
def test_a_restore_reproduces_every_fidelity_item_of_the_backed_up_tree(
    fidelity: tuple[Path, dict[str, bool]], tmp_path: Path
) -> None:
    src, made = fidelity
    repo = new_repo()
    snap = backup_directory(repo, src, host="h", volume="v")
    assert snap.stats.bytes_read < 8 << 20  # the 64 MiB sparse file's holes were not read
    dest = xattr_capable_dir(tmp_path) / "restored"
    stats = restore_snapshot(repo, snap, dest)
    assert compare_trees(src, dest) == []
    assert stats.warnings == []
    assert made["xattrs"] and made["device"]


@needs_root
def test_an_incremental_backup_of_the_fidelity_tree_restores_identically(
    fidelity: tuple[Path, dict[str, bool]], tmp_path: Path
) -> None:
    src, _ = fidelity
    repo = new_repo()
    first = backup_directory(repo, src, host="h", volume="v")
    second = backup_directory(repo, src, host="h", volume="v", parent=first)
    assert second.stats.files_read == 0 and second.stats.new_blobs == 0
    dest = xattr_capable_dir(tmp_path) / "restored"
    restore_snapshot(repo, second, dest)
    assert compare_trees(src, dest) == []


def test_selected_paths_restore_only_those_subtrees(tmp_path: Path) -> None:
    repo = new_repo()
    src = make_volume(tmp_path / "v")
    snap = backup_directory(repo, src, host="h", volume="v")
    dest = tmp_path / "r"
    stats = restore_snapshot(repo, snap, dest, paths=["/dir1/nested", "text.log"])
    restored = sorted(str(p.relative_to(dest)) for p in dest.rglob("*"))
    small = [f"dir1/nested/small{i}.txt" for i in range(20)]
    expected = ["dir1", "dir1/nested", "text.log", *small]
    assert restored == sorted(expected)
    assert (dest / "text.log").read_bytes() == (src / "text.log").read_bytes()
    assert compare_trees(src / "dir1", dest / "dir1") == []
    assert stats.files == 21


def test_selecting_a_path_the_snapshot_lacks_is_not_found(tmp_path: Path) -> None:
    repo = new_repo()
    snap = backup_directory(repo, make_volume(tmp_path / "v"), host="h", volume="v")
    with pytest.raises(NotFound, match="no/such"):
        restore_snapshot(repo, snap, tmp_path / "r", paths=["no/such"])


def test_a_restore_refuses_a_non_empty_target(tmp_path: Path) -> None:
    repo = new_repo()
    snap = backup_directory(repo, make_volume(tmp_path / "v"), host="h", volume="v")
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "keep.txt").write_text("mine")
    with pytest.raises(Conflict, match="not an empty directory"):
        restore_snapshot(repo, snap, tmp_path / "r")
    assert (tmp_path / "r" / "keep.txt").read_text() == "mine"


def _flip_in_blob_of(repo: Repository, snap: Snapshot, rel: str) -> bytes:
    """Flip one byte inside the first chunk of ``rel``; returns that chunk's id."""
    from common.repository.backup.archiver import iter_nodes

    index = repo.load_index().index
    node = dict(iter_nodes(repo, snap.tree))[rel]
    entry = index.lookup(node.content[0])
    assert entry is not None
    key = ids.pack_key(entry.pack_id)
    data = bytearray(repo.backend.get_bytes(key))
    data[entry.offset + entry.length // 2] ^= 0x40
    repo.backend.put_bytes(key, bytes(data))
    return node.content[0]


def test_a_flipped_byte_makes_restore_name_the_blob_and_the_files_it_could_not_restore(
    tmp_path: Path,
) -> None:
    repo = new_repo()
    src = make_volume(tmp_path / "v")
    snap = backup_directory(repo, src, host="h", volume="v")
    blob = _flip_in_blob_of(repo, snap, "random.bin")
    dest = tmp_path / "r"
    with pytest.raises(IntegrityError) as exc:
        restore_snapshot(repo, snap, dest)
    assert f"blob {blob.hex()}" in exc.value.message
    assert "files not restored correctly: random.bin" in exc.value.message
    # every undamaged file was still restored
    assert (dest / "text.log").read_bytes() == (src / "text.log").read_bytes()
    assert (dest / "dir2/nested/small5.txt").read_bytes() == \
        (src / "dir2/nested/small5.txt").read_bytes()


@pytest.mark.parametrize("name", ["..", "../escape", "a/../../b"])
def test_a_tree_with_a_hostile_name_is_refused_and_nothing_is_written_outside(
    tmp_path: Path, name: str
) -> None:
    repo = new_repo()
    # bypass Tree's own check when writing: build the JSON by hand
    good = Tree([Node(name="PLACEHOLDER", type="file")]).encode()
    hostile = good.replace(b"PLACEHOLDER", name.encode())
    blob = repo.codec.encode(BlobType.TREE, hostile)
    with PackWriter(repo.backend, repo.cipher) as pack:
        pack.add(blob)
        repo.write_index_file(pack.finish())
    root = Node(name="root", type="dir", mode=0o755, subtree=blob.blob_id)
    snap = save_snapshot(repo, Snapshot(tree=blob.blob_id, root=root, host="h", volume="v"))
    dest = tmp_path / "inner" / "r"
    with pytest.raises(IntegrityError, match="hostile or invalid name"):
        restore_snapshot(repo, snap, dest)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["inner", "r"]


def test_a_hardlink_whose_first_path_is_not_selected_is_restored_with_its_content(
    tmp_path: Path,
) -> None:
    src = tmp_path / "v"
    (src / "a").mkdir(parents=True)
    (src / "b").mkdir()
    (src / "a" / "first").write_bytes(b"shared content" * 1000)
    os.link(src / "a" / "first", src / "b" / "second")
    repo = new_repo()
    snap = backup_directory(repo, src, host="h", volume="v")
    restore_snapshot(repo, snap, tmp_path / "only-b", paths=["b"])
    assert (tmp_path / "only-b/b/second").read_bytes() == b"shared content" * 1000
    restore_snapshot(repo, snap, tmp_path / "all")
    assert os.stat(tmp_path / "all/a/first").st_ino == os.stat(tmp_path / "all/b/second").st_ino


def test_a_damaged_single_blob_file_is_still_created_with_its_metadata_and_named(
    tmp_path: Path,
) -> None:
    repo = new_repo()
    src = make_volume(tmp_path / "v")
    one = src / "one.txt"
    one.write_bytes(os.urandom(5000))  # one blob: restored in a single open
    one.chmod(0o640)
    os.utime(one, ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    snap = backup_directory(repo, src, host="h", volume="v")
    blob = _flip_in_blob_of(repo, snap, "one.txt")
    dest = tmp_path / "r"
    with pytest.raises(IntegrityError) as exc:
        restore_snapshot(repo, snap, dest)
    assert f"blob {blob.hex()}" in exc.value.message
    assert "files not restored correctly: one.txt" in exc.value.message
    st = (dest / "one.txt").stat()  # there, incomplete (empty), with its own metadata
    assert st.st_size == 0 and st.st_mode & 0o777 == 0o640
    assert st.st_mtime_ns == 1_600_000_000_123_456_789
    # the other single-blob files got their data and metadata in the same pass
    for rel in ("dir0/nested/small7.txt", "dir2/nested/small19.txt"):
        assert (dest / rel).read_bytes() == (src / rel).read_bytes()
        assert (dest / rel).stat().st_mtime_ns == (src / rel).stat().st_mtime_ns

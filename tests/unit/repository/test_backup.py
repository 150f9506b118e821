"""Repository backups: trees, snapshots, incremental re-backups, dedup and crash safety."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from common.errors import IntegrityError, InvalidInput
from common.repository import ids
from common.repository.backup import archiver
from common.repository.backup import read as backup_read
from common.repository.backup.archiver import BackupOptions, backup_directory, iter_nodes
from common.repository.check.checker import check_repository
from common.repository.core.chunker import ChunkerParams
from common.repository.core.index import IndexEntry
from common.repository.core.keys import KdfParams
from common.repository.core.pack import PackWriter
from common.repository.core.repository import Repository, init_repository
from common.repository.core.snapshot import (
    find_snapshot,
    list_snapshots,
    load_snapshot,
    pin_snapshot,
    snapshot_ids,
    tag_snapshot,
)
from common.repository.core.tree import Node, Tree, split_tree
from common.repository.restore.restorer import restore_snapshot
from common.storage.memory import MemoryBackend
from tests.treecmp import compare_trees

FAST = KdfParams(n=2**10, r=8, p=1)
SMALL = ChunkerParams(16 * 1024, 64 * 1024, 256 * 1024)



def flip_last(data: bytes) -> bytes:
    """``data`` with its last byte changed (always: a damage that cannot be a no-op)."""
    return data[:-1] + bytes([data[-1] ^ 0xFF])

def new_repo() -> Repository:
    """An encrypted repository with small chunks and packs, so tests make many of each."""
    return init_repository(MemoryBackend(), "pw", kdf=FAST, chunker=SMALL, pack_size=256 * 1024)


def make_volume(root: Path, seed: int = 0) -> Path:
    """A few MiB of random, text and small files in nested directories."""
    root.mkdir(parents=True)
    rnd = __import__("random").Random(seed)
    (root / "random.bin").write_bytes(rnd.randbytes(2 << 20))
    (root / "text.log").write_bytes(b"".join(b"line %d of the log\n" % i for i in range(60000)))
    for d in range(3):
        sub = root / f"dir{d}" / "nested"
        sub.mkdir(parents=True)
        for i in range(20):
            (sub / f"small{i}.txt").write_bytes(rnd.randbytes(rnd.randint(0, 3000)))
    (root / "empty").write_bytes(b"")
    return root


def test_a_backup_writes_one_snapshot_naming_trees_that_list_every_file(tmp_path: Path) -> None:
    repo = new_repo()
    src = make_volume(tmp_path / "v")
    snap = backup_directory(repo, src, host="h1", volume="db", tags=["nightly"])
    assert snapshot_ids(repo) == [snap.id]
    loaded = load_snapshot(repo, snap.id)
    assert (loaded.host, loaded.volume, loaded.tags, loaded.tree) == ("h1", "db", ["nightly"],
                                                                       snap.tree)
    assert loaded.stats.files == 3 * 20 + 3 and loaded.stats.dirs == 7
    index = repo.load_index().index
    paths = {p: n for p, n in iter_nodes(repo, snap.tree)}
    assert paths["dir1/nested/small7.txt"].size == (src / "dir1/nested/small7.txt").stat().st_size
    assert paths["empty"].content == [] and paths["dir2"].type == "dir"
    assert len(paths["random.bin"].content) > 4  # several content-defined chunks
    assert all(c in index for n in paths.values() for c in n.content)


def _files_opened(monkeypatch: pytest.MonkeyPatch, src: Path) -> list[str]:
    """The files below ``src`` opened from now on (by the walk or a reader thread, by path
    or relative to an open directory; not ``O_PATH`` handles, which read nothing), as
    paths relative to ``src``."""
    read: list[str] = []
    real_open = os.open

    def counting(path: str, flags: int, *a: int, dir_fd: int | None = None, **k: int) -> int:
        full = os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}") if dir_fd else "", path)
        if full.startswith(str(src)) and not flags & (os.O_DIRECTORY | os.O_PATH):
            read.append(os.path.relpath(full, src))
        return real_open(path, flags, *a, dir_fd=dir_fd, **k)

    monkeypatch.setattr(os, "open", counting)
    return read


def test_an_unchanged_re_backup_reads_no_file_and_stores_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = new_repo()
    src = make_volume(tmp_path / "v")
    first = backup_directory(repo, src, host="h", volume="v")
    read = _files_opened(monkeypatch, src)
    objects = {o.key for o in repo.backend.list(ids.PACKS_PREFIX)}
    second = backup_directory(repo, src, host="h", volume="v", parent=first)
    assert read == [] and second.stats.files_read == 0
    assert second.stats.new_blobs == 0 and second.tree == first.tree
    assert {o.key for o in repo.backend.list(ids.PACKS_PREFIX)} == objects
    assert second.parent == first.id

    (src / "dir0" / "nested" / "small3.txt").write_bytes(b"changed")
    third = backup_directory(repo, src, host="h", volume="v", parent=second)
    assert read == ["dir0/nested/small3.txt"]
    assert third.tree != second.tree
    dest = tmp_path / "restored"
    restore_snapshot(repo, third, dest)
    assert compare_trees(src, dest, check_root=False) == []


def test_a_copy_of_a_volume_backed_up_under_another_name_stores_only_new_trees(
    tmp_path: Path,
) -> None:
    repo = new_repo()
    src = make_volume(tmp_path / "a")
    first = backup_directory(repo, src, host="h1", volume="a")
    copy = tmp_path / "b"
    shutil.copytree(src, copy)
    second = backup_directory(repo, copy, host="h2", volume="b")
    assert second.stats.files_read == first.stats.files  # no parent: everything is read
    assert second.stats.new_bytes < first.stats.new_bytes / 50
    data_blobs = {c for _, n in iter_nodes(repo, first.tree)
                  for c in n.content}
    assert second.stats.new_blobs <= second.stats.dirs < len(data_blobs)


def test_a_backup_that_crashes_midway_leaves_no_snapshot_and_the_next_one_reuses_its_packs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = new_repo()
    src = make_volume(tmp_path / "v")
    real_finish = PackWriter.finish
    calls = {"n": 0}

    def failing_finish(self: PackWriter) -> list[IndexEntry]:
        calls["n"] += 1
        if calls["n"] > 6:
            raise OSError("disk on fire")
        return real_finish(self)

    monkeypatch.setattr(PackWriter, "finish", failing_finish)
    with pytest.raises(OSError, match="disk on fire"):
        backup_directory(repo, src, host="h", volume="v", options=BackupOptions(index_every=2))
    monkeypatch.undo()
    assert snapshot_ids(repo) == []
    report = check_repository(repo, read_data=True)
    assert report.ok, report.problems
    assert report.packs == 6 and report.blobs > 0
    reused = report.blobs

    snap = backup_directory(repo, src, host="h", volume="v")
    total_blobs = len(repo.load_index().index)
    assert snap.stats.new_blobs == total_blobs - reused  # nothing indexed was stored again
    dest = tmp_path / "restored"
    restore_snapshot(repo, snap, dest)
    assert compare_trees(src, dest, check_root=False) == []
    assert check_repository(repo).ok


def test_a_crash_before_any_index_was_written_leaves_only_unreferenced_packs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = new_repo()
    src = make_volume(tmp_path / "v")

    def killed(*_a: object, **_k: object) -> None:
        raise KeyboardInterrupt  # like a kill: not even the best-effort index gets written

    monkeypatch.setattr(Repository, "write_index_file", killed)
    with pytest.raises(KeyboardInterrupt):
        backup_directory(repo, src, host="h", volume="v", options=BackupOptions(index_every=1))
    monkeypatch.undo()
    report = check_repository(repo)
    assert report.ok and snapshot_ids(repo) == []
    assert report.unreferenced_packs >= 1 and report.blobs == 0
    snap = backup_directory(repo, src, host="h", volume="v")
    restore_snapshot(repo, snap, tmp_path / "r")
    assert compare_trees(src, tmp_path / "r", check_root=False) == []


def test_snapshots_can_be_listed_filtered_tagged_and_pinned(tmp_path: Path) -> None:
    repo = new_repo()
    src = make_volume(tmp_path / "v")
    a = backup_directory(repo, src, host="h1", volume="db")
    b = backup_directory(repo, src, host="h2", volume="db", tags=["x"], parent=a)
    c = backup_directory(repo, src, host="h1", volume="web")
    assert [s.id for s in list_snapshots(repo)] == [a.id, b.id, c.id]
    assert [s.id for s in list_snapshots(repo, host="h1")] == [a.id, c.id]
    assert [s.id for s in list_snapshots(repo, volume="db", tag="x")] == [b.id]
    tag_snapshot(repo, a, add=["keep", "y"], remove=["y"])
    pin_snapshot(repo, c)
    assert load_snapshot(repo, a.id).tags == ["keep"]
    assert load_snapshot(repo, c.id).pinned is True
    assert find_snapshot(repo, b.id.hex()[:8]).id == b.id


def test_a_tampered_snapshot_fails_to_authenticate(tmp_path: Path) -> None:
    repo = new_repo()
    snap = backup_directory(repo, make_volume(tmp_path / "v"), host="h", volume="v")
    key = ids.snapshot_key(snap.id)
    data = bytearray(repo.backend.get_bytes(key))
    data[-5] ^= 1
    repo.backend.put_bytes(key, bytes(data))
    with pytest.raises(IntegrityError, match=f"snapshot {snap.id.hex()}"):
        load_snapshot(repo, snap.id)


def test_backing_up_something_that_is_not_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(InvalidInput, match="is not a directory"):
        backup_directory(new_repo(), tmp_path / "f", host="h", volume="v")


@pytest.mark.parametrize("name", ["..", ".", "", "a/b", "../../etc", "nul\x00"])
def test_trees_with_hostile_names_are_refused(name: str) -> None:
    tree = Tree([Node(name=name, type="file")])
    with pytest.raises(IntegrityError, match="hostile or invalid name"):
        Tree.decode(tree.encode())


def test_non_utf8_names_and_xattr_values_round_trip_through_a_tree() -> None:
    odd = os.fsdecode(b"caf\xe9-\xff")
    node = Node(name=odd, type="symlink", target=os.fsdecode(b"\xfe/x"),
                xattrs={"user.k": b"\x00\xff"}, mtime_ns=123)
    again = Tree.decode(Tree([node]).encode()).nodes[0]
    assert again == node and again.raw_name == b"caf\xe9-\xff"
    assert Tree([node, Node(name="a", type="fifo")]).encode() == \
        Tree([Node(name="a", type="fifo"), node]).encode()  # deterministic order


@pytest.mark.parametrize("batch_blobs, batch_bytes", [(1, 1), (3, 10_000), (64, 1 << 20)])
def test_blobs_sent_to_the_encoders_in_batches_of_any_size_restore_exactly(
    tmp_path: Path, batch_blobs: int, batch_bytes: int
) -> None:
    repo = new_repo()
    src = make_volume(tmp_path / "v")
    options = BackupOptions(batch_blobs=batch_blobs, batch_bytes=batch_bytes, in_flight=2)
    snap = backup_directory(repo, src, host="h", volume="v", options=options)
    dest = tmp_path / "r"
    restore_snapshot(repo, snap, dest)
    assert compare_trees(src, dest, check_root=False) == []
    assert check_repository(repo, read_data=True).ok


def test_an_encoder_failure_in_a_batch_stops_the_backup_without_a_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = new_repo()
    src = make_volume(tmp_path / "v")
    real = repo.codec.encode
    calls = {"n": 0}

    def failing(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 40:
            raise ValueError("compressor exploded")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(repo.codec, "encode", failing)
    with pytest.raises(ValueError, match="compressor exploded"):
        backup_directory(repo, src, host="h", volume="v",
                         options=BackupOptions(batch_blobs=4, in_flight=2))
    monkeypatch.undo()
    assert snapshot_ids(repo) == []
    assert check_repository(repo, read_data=True).ok  # what was committed is whole


@pytest.mark.parametrize("reader", ["read-ahead thread", "walk"])
def test_a_small_file_that_grows_while_it_is_backed_up_is_stored_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reader: str
) -> None:
    repo = new_repo()
    src = make_volume(tmp_path / "v")
    grows = src / "grows.txt"
    grows.write_bytes(b"x" * 100)

    def grow(path: str) -> None:
        if path.endswith("/grows.txt"):  # after the stat, before the read
            with open(grows, "ab") as f:
                f.write(os.urandom(100_000))  # past the chunker's minimum size

    if reader == "walk":
        real = archiver._Walker._file
        monkeypatch.setattr(archiver._Walker, "_read_ahead", lambda *a: False)

        def growing(self: archiver._Walker, node: Node, dir_fd: int, rel: str,
                    st: os.stat_result, old: Node | None) -> None:
            grow(f"/{rel}")
            real(self, node, dir_fd, rel, st, old)

        monkeypatch.setattr(archiver._Walker, "_file", growing)
    else:
        monkeypatch.setattr(archiver, "READ_AHEAD_MIN", 1)  # the root has only two
        real_read = backup_read.read_small

        def growing_read(dir_fd: int, name: str, size: int,
                         blob_id: Callable[[bytes], bytes]) -> backup_read.SmallFile:
            grow(f"/{name}")
            return real_read(dir_fd, name, size, blob_id)

        monkeypatch.setattr(backup_read, "read_small", growing_read)
    snap = backup_directory(repo, src, host="h", volume="v")
    node = dict(iter_nodes(repo, snap.tree))["grows.txt"]
    assert node.size == 100_100
    dest = tmp_path / "r"
    restore_snapshot(repo, snap, dest)
    assert (dest / "grows.txt").read_bytes() == grows.read_bytes()


def test_a_mode_change_alone_gives_its_directory_a_new_tree_and_keeps_the_others(
    tmp_path: Path,
) -> None:
    repo = new_repo()
    src = make_volume(tmp_path / "v")
    first = backup_directory(repo, src, host="h", volume="v")
    (src / "dir1" / "nested" / "small4.txt").chmod(0o600)
    second = backup_directory(repo, src, host="h", volume="v", parent=first)
    assert second.stats.files_read == 1  # its ctime changed; its content is stored already
    repo.load_index()
    before = {p: n.subtree for p, n in iter_nodes(repo, first.tree) if n.type == "dir"}
    after = {p: n.subtree for p, n in iter_nodes(repo, second.tree) if n.type == "dir"}
    changed = {p for p in before if before[p] != after[p]}
    assert changed == {"dir1", "dir1/nested"}
    assert second.stats.new_blobs == 3  # those two trees and the root's
    dest = tmp_path / "r"
    restore_snapshot(repo, second, dest)
    assert compare_trees(src, dest, check_root=False) == []
    assert (dest / "dir1" / "nested" / "small4.txt").stat().st_mode & 0o777 == 0o600


def test_an_unchanged_file_is_reused_but_an_xattr_or_owner_change_is_seen(
    tmp_path: Path,
) -> None:
    from tests.unit.archive.test_helpers import xattr_capable_dir

    repo = new_repo()
    src = make_volume(xattr_capable_dir(tmp_path) / "v")
    first = backup_directory(repo, src, host="h", volume="v")
    target = src / "dir0" / "nested" / "small1.txt"
    os.setxattr(target, "user.note", b"added later")  # changes only the inode's ctime
    os.chown(src / "dir2" / "nested" / "small2.txt", 1234, 5678)
    second = backup_directory(repo, src, host="h", volume="v", parent=first)
    nodes = dict(iter_nodes(repo, second.tree))
    assert nodes["dir0/nested/small1.txt"].xattrs == {"user.note": b"added later"}
    assert (nodes["dir2/nested/small2.txt"].uid, nodes["dir2/nested/small2.txt"].gid) == \
        (1234, 5678)
    assert second.stats.files == first.stats.files and second.stats.bytes == first.stats.bytes
    dest = tmp_path / "r"
    restore_snapshot(repo, second, dest)
    assert compare_trees(src, dest, check_root=False) == []


def test_a_small_file_removed_before_its_reader_gets_to_it_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = new_repo()
    src = make_volume(tmp_path / "v")
    real_read = backup_read.read_small

    def vanishing(dir_fd: int, name: str, size: int, blob_id: Callable[[bytes], bytes]
                  ) -> backup_read.SmallFile:
        if name == "small2.txt":  # listed and stat'ed, gone when read
            os.unlink(name, dir_fd=dir_fd)
        return real_read(dir_fd, name, size, blob_id)

    monkeypatch.setattr(backup_read, "read_small", vanishing)
    monkeypatch.setattr(archiver, "READ_AHEAD_MIN", 8)  # a reader reads these 20
    gone = sorted(str(p.relative_to(src)) for p in src.rglob("small2.txt"))
    assert gone
    snap = backup_directory(repo, src, host="h", volume="v")
    paths = dict(iter_nodes(repo, snap.tree))
    assert snap.stats.skipped == len(gone) and not set(gone) & set(paths)
    dest = tmp_path / "r"
    restore_snapshot(repo, snap, dest)
    # the unlink came after the directories were stat'ed: only their mtimes differ
    diffs = compare_trees(src, dest, check_root=False)
    parents = {f"'./{os.path.dirname(g)}': mtime" for g in gone}
    assert diffs and all(d.split(" became")[0].rsplit(" ", 1)[0] in parents for d in diffs), diffs


def test_reading_ahead_stays_within_its_window_however_deep_the_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backup_read, "GROUP_FILES", 2)
    monkeypatch.setattr(backup_read, "WINDOW", 3)
    monkeypatch.setattr(archiver, "READ_AHEAD_MIN", 8)  # the 8 files of each level
    src = tmp_path / "v"
    level, depth = src, 6
    for d in range(depth):  # at every level: small files before and after a subdirectory
        level.mkdir()
        for name in ("a", "b", "c", "d", "m", "x", "y", "z"):
            (level / f"{name}{d}").write_bytes(os.urandom(100 + d))
        level = level / "n"
    most: list[int] = []
    real_fill = backup_read.ReadAhead._fill

    def fill(self: backup_read.ReadAhead, need: int) -> None:
        real_fill(self, need)
        most.append(self._readers.ahead)

    monkeypatch.setattr(backup_read.ReadAhead, "_fill", fill)
    repo = new_repo()
    snap = backup_directory(repo, src, host="h", volume="v")
    assert snap.stats.files == 8 * depth
    # the shared window, plus at most the group each open directory is consuming
    assert 3 < max(most) <= 3 + depth
    dest = tmp_path / "r"
    restore_snapshot(repo, snap, dest)
    assert compare_trees(src, dest, check_root=False) == []


def test_a_directory_with_few_files_to_read_reads_them_in_the_walk_and_many_go_ahead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "v"
    (src / "few").mkdir(parents=True)
    (src / "many").mkdir()
    for i in range(archiver.READ_AHEAD_MIN - 1):
        (src / "few" / f"f{i}").write_bytes(os.urandom(50))
    for i in range(archiver.READ_AHEAD_MIN):
        (src / "many" / f"m{i}").write_bytes(os.urandom(50))
    ahead: list[str] = []
    real = backup_read.read_small

    def spy(dir_fd: int, name: str, size: int, blob_id: Callable[[bytes], bytes]
            ) -> backup_read.SmallFile:
        ahead.append(name)
        return real(dir_fd, name, size, blob_id)

    monkeypatch.setattr(backup_read, "read_small", spy)
    repo = new_repo()
    snap = backup_directory(repo, src, host="h", volume="v")
    assert sorted(ahead) == sorted(f"m{i}" for i in range(archiver.READ_AHEAD_MIN))
    assert snap.stats.files_read == 2 * archiver.READ_AHEAD_MIN - 1
    dest = tmp_path / "r"
    restore_snapshot(repo, snap, dest)
    assert compare_trees(src, dest, check_root=False) == []


def _tree_texts(repo: Repository, tree_id: bytes) -> dict[str, str]:
    data = repo.read_blob(tree_id, ids.BlobType.TREE)
    return {d["name"]: text for d, text in split_tree(data)}


def test_unchanged_files_keep_their_parent_nodes_byte_for_byte(tmp_path: Path) -> None:
    repo = new_repo()
    src = make_volume(tmp_path / "v")
    first = backup_directory(repo, src, host="h", volume="v")
    (src / "dir0" / "nested" / "small3.txt").write_bytes(b"changed")
    second = backup_directory(repo, src, host="h", volume="v", parent=first)
    old = dict(iter_nodes(repo, first.tree))
    new = dict(iter_nodes(repo, second.tree))
    before = _tree_texts(repo, old["dir0/nested"].subtree or b"")
    after = _tree_texts(repo, new["dir0/nested"].subtree or b"")
    assert before.keys() == after.keys() and before["small3.txt"] != after["small3.txt"]
    assert {k: v for k, v in before.items() if k != "small3.txt"} == \
        {k: v for k, v in after.items() if k != "small3.txt"}
    assert new["dir1/nested"].subtree == old["dir1/nested"].subtree
    assert new["dir0/nested/small3.txt"].size == len(b"changed")


def test_a_parent_node_with_odd_fields_or_unindexed_chunks_is_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = new_repo()
    src = make_volume(tmp_path / "v")
    first = backup_directory(repo, src, host="h", volume="v")
    real_split = archiver.split_tree
    odd = {"small1.txt": {"target": "elsewhere"},  # not a file's field
           "small2.txt": {"content": ["not hex"]},
           "small4.txt": {"content": ["ab" * 32]},  # a chunk the index does not have
           "small5.txt": {"content": ["ab" * 8]}}  # not a chunk id

    def altered(data: bytes, what: str = "tree") -> list[tuple[dict[str, object], str]]:
        parts = real_split(data, what)
        for d, _text in parts:
            d.update(odd.get(str(d["name"]), {}))
        return parts

    monkeypatch.setattr(archiver, "split_tree", altered)
    read = _files_opened(monkeypatch, src)
    second = backup_directory(repo, src, host="h", volume="v", parent=first)
    # in each of the three directories; small1's node is valid: its chunks are reused
    assert sorted(read) == sorted(f"dir{d}/nested/{name}" for d in range(3)
                                  for name in ["small2.txt", "small4.txt", "small5.txt"])
    assert second.stats.files_read == 9
    nodes = dict(iter_nodes(repo, second.tree))
    assert nodes["dir0/nested/small1.txt"].target is None
    dest = tmp_path / "r"
    restore_snapshot(repo, second, dest)
    assert compare_trees(src, dest, check_root=False) == []


def test_an_intermediate_directory_swapped_for_a_symlink_does_not_make_the_walk_read_outside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = new_repo()
    src = tmp_path / "vol"
    (src / "a" / "b").mkdir(parents=True)
    (src / "a" / "b" / "g").write_bytes(b"deeper" * 10_000)  # read by the walk itself
    (src / "a" / "b" / "h").write_bytes(b"small")
    outside = tmp_path / "outside"
    (outside / "b").mkdir(parents=True)
    (outside / "b" / "g").write_bytes(b"secret" * 10_000)
    (outside / "b" / "leak").write_bytes(b"secret")
    real_list = archiver._Walker._list

    def racing_list(self: archiver._Walker, path: str, *args: object) -> object:
        if path.endswith("/a/b") and not (src / "a").is_symlink():  # 'a' is open already
            os.rename(src / "a", src / "a-moved")  # what a container can do in its volume
            os.symlink(outside, src / "a")
        return real_list(self, path, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(archiver._Walker, "_list", racing_list)
    snap = backup_directory(repo, src, host="h", volume="v")
    nodes = dict(iter_nodes(repo, snap.tree))
    assert "a/b/leak" not in nodes
    assert nodes["a/b/g"].size == 60_000
    dest = tmp_path / "r"
    restore_snapshot(repo, snap, dest)
    assert (dest / "a" / "b" / "g").read_bytes() == b"deeper" * 10_000
    assert (dest / "a" / "b" / "h").read_bytes() == b"small"

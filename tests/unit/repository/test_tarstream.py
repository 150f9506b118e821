"""The repository's tar-stream front ends (volumes reachable only through Docker's API):
stream → snapshot (``tar_ingest``) and snapshot → stream (``tar_export``)."""

from __future__ import annotations

import io
import os
import random
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from common.archive import gnutar
from common.archive.tarscan import TarEntry, TarScanner
from common.errors import IntegrityError, NotFound
from common.repository.backup.archiver import backup_directory, iter_nodes
from common.repository.backup.tar_ingest import backup_tar_stream
from common.repository.core.chunker import Chunker, ChunkerParams, ChunkFeeder
from common.repository.core.ids import BlobType
from common.repository.core.repository import Repository
from common.repository.core.snapshot import Snapshot, snapshot_ids
from common.repository.restore.restorer import restore_snapshot
from common.repository.restore.tar_export import write_snapshot_tar
from tests.treecmp import build_fidelity_tree, compare_trees
from tests.unit.archive.test_helpers import xattr_capable_dir
from tests.unit.repository.test_backup import make_volume, new_repo
from tests.unit.repository.test_restore import _flip_in_blob_of

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="owners and devices need root")


def gnu_stream(src: Path) -> bytes:
    with gnutar.create_stream(src) as s:
        return s.read()


def sorted_stream(src: Path) -> bytes:
    """Like dockerd's archive: members in name order (GNU tar's default is readdir order)."""
    import subprocess

    return subprocess.run([gnutar.tar_binary(), *gnutar.CREATE_ARGS, "--sort=name",
                           f"--directory={src}", "."], check=True, capture_output=True).stdout


def ingest(repo: Repository, raw: bytes, **kw: Any) -> Snapshot:
    return backup_tar_stream(repo, io.BytesIO(raw), host="h", volume="v", **kw)


def export(repo: Repository, snap: Snapshot, **kw: Any) -> bytes:
    out = io.BytesIO()
    write_snapshot_tar(repo, snap, out, **kw)
    return out.getvalue()


def scan(raw: bytes) -> list[TarEntry]:
    entries: list[TarEntry] = []
    scanner = TarScanner(entries.append)
    scanner.feed(raw)
    scanner.close()
    return entries


def extract(raw: bytes, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    with gnutar.extract_stream(dest) as sink:
        sink.write(raw)


def crafted(*members: tuple[str, dict[str, Any], bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, attrs, data in members:
            info = tarfile.TarInfo(name)
            for k, v in attrs.items():
                setattr(info, k, v)
            if info.type == tarfile.REGTYPE:
                info.size = len(data)
            t.addfile(info, io.BytesIO(data) if info.type == tarfile.REGTYPE else None)
    return buf.getvalue()


def f(name: str, data: bytes = b"x", **attrs: Any) -> tuple[str, dict[str, Any], bytes]:
    return name, attrs, data


def d(name: str, **attrs: Any) -> tuple[str, dict[str, Any], bytes]:
    return name, {"type": tarfile.DIRTYPE, **attrs}, b""


@pytest.fixture(scope="module")
def fidelity(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, bool]]]:
    base = xattr_capable_dir(tmp_path_factory.mktemp("fidelity"))
    root = base / "volume"
    made = build_fidelity_tree(root)
    yield root, made
    shutil.rmtree(root, ignore_errors=True)


# --- chunking ------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [0, 1, 16 * 1024, 16 * 1024 + 1, 700_000, 3 << 20])
def test_push_fed_chunking_cuts_exactly_where_stream_chunking_cuts(size: int) -> None:
    rnd = random.Random(size)
    data = rnd.randbytes(size // 2) + bytes(size - size // 2)  # random, then a zero run
    chunker = Chunker(ChunkerParams(16 * 1024, 64 * 1024, 256 * 1024), seed=99)
    want = list(chunker.chunk_stream(io.BytesIO(data)))
    got: list[bytes] = []
    feeder = ChunkFeeder(chunker, got.append, window=0)  # smallest window: most re-cuts
    pos = 0
    while pos < size:
        n = rnd.randint(1, 300_000)
        feeder.feed(memoryview(data)[pos : pos + n])
        pos += n
    feeder.finish()
    assert got == want
    assert b"".join(got) == data


# --- round trips ---------------------------------------------------------------------------

@needs_root
def test_stream_to_repository_to_stream_keeps_every_member(
    fidelity: tuple[Path, dict[str, bool]],
) -> None:
    src, made = fidelity
    raw = gnu_stream(src)
    repo = new_repo()
    snap = ingest(repo, raw)
    back = export(repo, snap)

    before, before_links = members(raw)
    after, after_links = members(back)
    assert after == before
    assert after_links == before_links == [{"plain.txt", "sticky/hardlink"}]
    assert before["sticky/hardlink"][8] == {"user.comment": b"bin\x00ary\xff"} or not made["xattrs"]
    assert before["null-dev"][9:] == (1, 3) or not made["device"]
    assert snap.stats.files == len([k for k in before.values() if k[0] == "file"])


def members(raw: bytes) -> tuple[dict[str, tuple[Any, ...]], list[set[str]]]:
    """Each member's attributes by path (a hardlink member: with its target's content),
    and the hardlink groups."""
    out: dict[str, tuple[Any, ...]] = {}
    groups: dict[str, set[str]] = {}
    for e in scan(raw):
        path = e.path.removeprefix("./").rstrip("/") or "."
        size, sha, kind, xattrs = e.size, e.sha256, e.type, e.xattrs
        if e.type == "hardlink":  # one inode: content and xattrs are the first member's
            target = (e.link or "").removeprefix("./")
            size, sha, kind, xattrs = out[target][1], out[target][7], "file", out[target][8]
            group = groups.setdefault(target, {target})
            group.add(path)
            groups[path] = group
        out[path] = (kind, size, e.mode, e.uid, e.gid, e.mtime_ns, e.link if kind == "symlink"
                     else None, sha, xattrs, e.devmajor, e.devminor)
    unique = {id(g): g for g in groups.values()}
    return out, list(unique.values())


@needs_root
def test_a_stream_backup_restores_like_the_directory_it_came_from(
    fidelity: tuple[Path, dict[str, bool]], tmp_path: Path
) -> None:
    src, _ = fidelity
    repo = new_repo()
    snap = ingest(repo, sorted_stream(src))
    dest = xattr_capable_dir(tmp_path)
    # through the directory restorer: the stream front end built the same kind of snapshot
    stats = restore_snapshot(repo, snap, dest / "direct")
    diffs = compare_trees(src, dest / "direct")
    assert len(diffs) == 1 and diffs[0].startswith("'./sparse.img': sparse file was restored "
                                                   "dense"), diffs  # the stream expands holes
    assert stats.warnings == []
    # through a tar stream, extracted by GNU tar
    extract(export(repo, snap), dest / "streamed")
    assert compare_trees(src, dest / "streamed") == diffs


def test_a_stream_backup_shares_every_data_blob_with_a_directory_backup(tmp_path: Path) -> None:
    repo = new_repo()
    src = make_volume(tmp_path / "v")
    first = backup_directory(repo, src, host="h", volume="v")
    second = ingest(repo, gnu_stream(src), parent=first)
    index = repo.load_index().index
    a = {p: n.content for p, n in iter_nodes(repo, first.tree)}
    b = {p: n.content for p, n in iter_nodes(repo, second.tree)}
    assert a == b and sum(len(c) for c in a.values()) > 10
    # only trees are new (the stream carries no ctime/inode, so the trees differ)
    new_types = {e.blob_type for e in index if e.blob_id not in
                 {x.blob_id for x in load_index_before(repo, first)}}
    assert new_types == {BlobType.TREE}
    assert second.stats.new_blobs == second.stats.dirs
    assert second.parent == first.id and second.stats.files_read == first.stats.files


def load_index_before(repo: Repository, snap: Snapshot) -> list[Any]:
    """Index entries of the blobs reachable from ``snap`` (trees and chunks)."""
    index = repo.load_index().index
    wanted = {snap.tree}
    for _, n in iter_nodes(repo, snap.tree):
        wanted.update(n.content)
        if n.subtree:
            wanted.add(n.subtree)
    return [e for e in index if e.blob_id in wanted]


def test_selected_paths_are_streamed_with_their_parent_directories(tmp_path: Path) -> None:
    repo = new_repo()
    src = make_volume(tmp_path / "v")
    snap = ingest(repo, gnu_stream(src))
    raw = export(repo, snap, paths=["/dir1/nested/small3.txt", "text.log"])
    names = [e.path for e in scan(raw)]
    assert names == ["./dir1", "./dir1/nested", "./dir1/nested/small3.txt", "./text.log"]
    dest = tmp_path / "r"
    extract(raw, dest)
    assert (dest / "text.log").read_bytes() == (src / "text.log").read_bytes()
    with pytest.raises(NotFound):
        export(repo, snap, paths=["dir1/nope"])


def test_a_hardlink_whose_first_path_is_not_selected_is_streamed_with_content(
    tmp_path: Path,
) -> None:
    raw = crafted(d("a"), f("a/first", b"shared" * 500), d("b"),
                  ("b/second", {"type": tarfile.LNKTYPE, "linkname": "a/first"}, b""),
                  ("b/third", {"type": tarfile.LNKTYPE, "linkname": "a/first"}, b""))
    repo = new_repo()
    snap = ingest(repo, raw)
    only_b = scan(export(repo, snap, paths=["b"]))
    assert [(e.path, e.type, e.size, e.link) for e in only_b] == [
        ("./b", "dir", 0, None), ("./b/second", "file", 3000, None),
        ("./b/third", "hardlink", 0, "./b/second")]  # still one inode
    full = scan(export(repo, snap))
    assert [(e.path, e.type, e.link) for e in full][-2:] == [
        ("./b/second", "hardlink", "./a/first"), ("./b/third", "hardlink", "./a/first")]
    dest = tmp_path / "r"
    extract(export(repo, snap, paths=["b"]), dest)
    assert (dest / "b/second").read_bytes() == b"shared" * 500
    assert (dest / "b/second").stat().st_ino == (dest / "b/third").stat().st_ino


def test_a_tree_whose_hardlink_escapes_is_refused_before_anything_is_written() -> None:
    repo = new_repo()
    snap = ingest(repo, crafted(f("a", b"data"), ("b", {"type": tarfile.LNKTYPE,
                                                        "linkname": "a"}, b"")))
    # rewrite the tree by hand, as a hostile repository writer could
    from common.repository.core.pack import PackWriter
    from common.repository.core.snapshot import save_snapshot
    from common.repository.core.tree import Tree

    repo.load_index()
    nodes = [n for _, n in iter_nodes(repo, snap.tree)]
    nodes[1].link = "../../etc/passwd"
    data = Tree(nodes).encode()
    blob = repo.codec.encode(BlobType.TREE, data)
    with PackWriter(repo.backend, repo.cipher) as pack:
        pack.add(blob)
        repo.write_index_file(pack.finish())
    bad = save_snapshot(repo, Snapshot(tree=blob.blob_id, root=snap.root, host="h",
                                       volume="v"))
    out = io.BytesIO()
    with pytest.raises(IntegrityError, match="hostile or invalid name"):
        write_snapshot_tar(repo, bad, out)
    assert b"passwd" not in out.getvalue()


# --- damage --------------------------------------------------------------------------------

def test_a_damaged_blob_fails_the_stream_naming_the_file_before_its_header(
    tmp_path: Path,
) -> None:
    repo = new_repo()
    src = make_volume(tmp_path / "v")
    snap = ingest(repo, gnu_stream(src))
    _flip_in_blob_of(repo, snap, "dir1/nested/small4.txt")
    out = io.BytesIO()
    with pytest.raises(IntegrityError) as exc:
        write_snapshot_tar(repo, snap, out)
    assert "'dir1/nested/small4.txt'" in exc.value.message
    assert b"dir1/nested/small4.txt" not in out.getvalue()  # nothing of it went out
    assert b"dir1/nested/small3.txt" in out.getvalue()  # the files before it did


def test_a_damaged_blob_of_a_file_larger_than_the_window_still_names_it(tmp_path: Path) -> None:
    repo = new_repo()
    src = make_volume(tmp_path / "v")
    snap = ingest(repo, gnu_stream(src))
    _flip_in_blob_of(repo, snap, "random.bin")
    with pytest.raises(IntegrityError, match=r"'random\.bin' cannot be restored"):
        write_snapshot_tar(repo, snap, io.BytesIO(), window=64 * 1024)


# --- hostile streams -----------------------------------------------------------------------

@pytest.mark.parametrize("members, why", [
    ([f("../escaped")], "escapes the volume root"),
    ([d("a"), f("a/../../escaped")], "escapes the volume root"),
    ([f("plain"), ("hl", {"type": tarfile.LNKTYPE, "linkname": "../../etc/passwd"}, b"")],
     "escapes the volume root"),
    ([("hl", {"type": tarfile.LNKTYPE, "linkname": "/etc/passwd"}, b"")],
     "not an earlier file"),
    ([("hl", {"type": tarfile.LNKTYPE, "linkname": "later"}, b""), f("later")],
     "not an earlier file"),
    ([("link", {"type": tarfile.SYMTYPE, "linkname": "/etc"}, b""), f("link/owned")],
     "which is a symlink"),
    ([f("plain"), f("plain/under")], "which is a file"),
    ([d("a"), f("a/x"), f("b"), f("a/y")], "not depth-first"),
    ([f("dir-or-file"), d("dir-or-file")], "not depth-first"),
    ([f(".")], "not a directory"),
])
def test_hostile_streams_are_refused_and_leave_no_snapshot(
    members: list[tuple[str, dict[str, Any], bytes]], why: str
) -> None:
    repo = new_repo()
    with pytest.raises(IntegrityError, match=why):
        ingest(repo, crafted(*members))
    assert snapshot_ids(repo) == []


def test_absolute_names_and_link_targets_land_inside_the_volume() -> None:
    repo = new_repo()
    snap = ingest(repo, crafted(f("/abs/file", b"inside"),
                                ("/abs/hl", {"type": tarfile.LNKTYPE, "linkname": "/abs/file"},
                                 b"")))
    repo.load_index()
    nodes = dict(iter_nodes(repo, snap.tree))
    assert sorted(nodes) == ["abs", "abs/file", "abs/hl"]
    assert nodes["abs"].mode == 0o755  # never stated in the stream: made like tar -x would
    assert (nodes["abs/hl"].type, nodes["abs/hl"].link) == ("hardlink", "abs/file")
    assert nodes["abs/hl"].content == nodes["abs/file"].content


def test_devices_fifos_and_symlinks_are_kept_like_the_directory_path_keeps_them() -> None:
    repo = new_repo()
    snap = ingest(repo, crafted(
        ("null", {"type": tarfile.CHRTYPE, "devmajor": 1, "devminor": 3, "mode": 0o666}, b""),
        ("disk", {"type": tarfile.BLKTYPE, "devmajor": 8, "devminor": 1}, b""),
        ("pipe", {"type": tarfile.FIFOTYPE, "uid": 7, "gid": 8}, b""),
        ("out", {"type": tarfile.SYMTYPE, "linkname": "../../anywhere"}, b""),
        ("pipe2", {"type": tarfile.LNKTYPE, "linkname": "pipe"}, b""),
    ))
    nodes = dict(iter_nodes(repo, snap.tree))
    assert (nodes["null"].type, nodes["null"].rdev, nodes["null"].mode) == ("char", (1, 3), 0o666)
    assert (nodes["disk"].type, nodes["disk"].rdev) == ("block", (8, 1))
    assert (nodes["pipe"].type, nodes["pipe"].uid, nodes["pipe"].gid) == ("fifo", 7, 8)
    assert nodes["out"].target == "../../anywhere"  # a symlink's target is content
    assert nodes["pipe2"].type == "fifo"  # a link to a non-file is kept as a copy
    back = {e.path: e for e in scan(export(repo, snap))}
    assert (back["./null"].type, back["./null"].devmajor, back["./null"].devminor) == \
        ("char", 1, 3)
    assert back["./out"].link == "../../anywhere"


def test_a_truncated_stream_writes_no_snapshot(tmp_path: Path) -> None:
    repo = new_repo()
    raw = gnu_stream(make_volume(tmp_path / "v"))
    with pytest.raises(IntegrityError, match="ended before the end-of-archive"):
        ingest(repo, raw[: len(raw) // 2])
    assert snapshot_ids(repo) == []


def test_a_socket_cannot_go_into_a_tar_stream_and_is_reported(tmp_path: Path) -> None:
    import socket

    src = tmp_path / "v"
    src.mkdir()
    (src / "file").write_bytes(b"kept")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(src / "app.sock"))
        repo = new_repo()
        snap = backup_directory(repo, src, host="h", volume="v")
    out = io.BytesIO()
    stats = write_snapshot_tar(repo, snap, out)
    assert [e.path for e in scan(out.getvalue())] == [".", "./file"]
    assert stats.warnings == ["app.sock: a socket cannot be restored through a tar stream"]


def test_hardlinks_to_members_spilled_to_disk_are_resolved(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from common.repository.backup import tar_ingest

    monkeypatch.setattr(tar_ingest, "KEEP_IN_MEMORY", 3)
    files = [f(f"f{i}", b"content %d" % i) for i in range(10)]
    links = [(f"l{i}", {"type": tarfile.LNKTYPE, "linkname": f"f{i}"}, b"") for i in range(10)]
    sym = ("s", {"type": tarfile.SYMTYPE, "linkname": "somewhere"}, b"")
    repo = new_repo()
    snap = ingest(repo, crafted(*files, sym, *links,
                                ("s2", {"type": tarfile.LNKTYPE, "linkname": "s"}, b"")))
    nodes = dict(iter_nodes(repo, snap.tree))
    for i in range(10):
        assert (nodes[f"l{i}"].type, nodes[f"l{i}"].link) == ("hardlink", f"f{i}")
        assert nodes[f"l{i}"].content == nodes[f"f{i}"].content != []
    assert (nodes["s2"].type, nodes["s2"].target) == ("symlink", "somewhere")


def test_odd_names_big_owners_and_old_mtimes_round_trip_byte_for_byte() -> None:
    raw_name = os.fsdecode(b"latin1-\xe9t\xe9")  # not UTF-8: carried as raw bytes
    long_dir = "d" * 120
    long_name = f"{long_dir}/{'n' * 200}"
    raw = crafted(
        f(raw_name, b"bytes", mtime=-5),  # before 1970
        d(long_dir, uid=3_000_000, gid=4_000_000),
        f(long_name, b"deep", mtime=1_700_000_000),
        f("new\nline", b"nl", uid=70_000),
        ("sym", {"type": tarfile.SYMTYPE, "linkname": "t" * 300}, b""),
    )
    repo = new_repo()
    back = export(repo, ingest(repo, raw))

    def view(data: bytes) -> list[tuple[Any, ...]]:
        return sorted((e.path.removeprefix("./"), e.type, e.uid, e.gid, e.mtime_ns, e.sha256,
                       e.link) for e in scan(data) if e.path not in (".", "./"))

    assert view(back) == view(raw)
    names = {e.path for e in scan(back)}
    assert "./" + raw_name in names and f"./{long_name}" in names
    assert os.fsencode(raw_name) in back  # the raw bytes, not a re-encoding


def test_blobs_are_read_with_one_ranged_read_per_run_not_one_per_blob(tmp_path: Path) -> None:
    repo = new_repo()
    snap = ingest(repo, gnu_stream(make_volume(tmp_path / "v")))
    packs = len(list(repo.backend.list("volkeeper/repo/packs/")))
    blobs = len({c for _, n in iter_nodes(repo, snap.tree)
                 for c in n.content})
    stats = write_snapshot_tar(repo, snap, io.BytesIO())
    assert stats.blobs >= blobs > 3 * packs  # many more blobs than packs …
    assert stats.packs_read <= packs  # … yet each pack is read at most once

"""``compare_tree``'s fast path for plain files (their tree nodes compared as JSON objects,
no ``Node`` made: ``_plain_file``/``same_file``) finds every kind of difference, with the
same problem messages and the same record (``seen``) as the full comparison of a ``Node``
— a migration's verify trusting the pre-copy's record included."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from common.engine import tree_compare
from common.engine.tree_compare import _DIGEST, Seen, _Comparer, _plain_file, compare_tree
from common.errors import IntegrityError
from common.progress import NullTracker
from common.repository.backup.archiver import backup_directory
from common.repository.core.repository import Repository
from common.repository.core.snapshot import Snapshot
from common.repository.core.tree import Node, Tree, content_digest, decode_some
from common.repository.restore.restorer import restore_snapshot
from tests.unit.archive.test_helpers import xattr_capable_dir
from tests.unit.repository.test_backup import new_repo

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="changing an owner needs root")


def _source(base: Path) -> Path:
    src = xattr_capable_dir(base) / "src"
    (src / "d").mkdir(parents=True)
    (src / "plain.txt").write_text("plain text\n" * 20)
    (src / "other.bin").write_bytes(os.urandom(20_000))
    (src / "big.bin").write_bytes(os.urandom(400_000))  # several chunks (small chunker)
    (src / "empty").write_bytes(b"")
    (src / "x.txt").write_text("with an xattr")
    os.setxattr(src / "x.txt", "user.a", b"1")
    (src / "d" / "nested.txt").write_text("nested")
    (src / "hard1").write_text("linked")
    os.link(src / "hard1", src / "hard2")
    os.symlink("plain.txt", src / "link")
    os.mkfifo(src / "fifo")
    return src


@pytest.fixture
def restored(tmp_path: Path) -> tuple[Repository, Snapshot, Path, Path, Seen]:
    """A snapshot of ``_source``, restored and recorded as a migration's pre-copy is."""
    src = _source(tmp_path)
    repo = new_repo()
    snap = backup_directory(repo, src, host="h", volume="v")
    dst = src.parent / "dst"
    dst.mkdir()
    restore_snapshot(repo, snap, dst)
    seen: Seen = {}
    rep = compare_tree(repo, snap, dst, NullTracker(), seen=seen, written=True)
    assert rep.ok, rep.problems
    return repo, snap, src, dst, seen


def _both(repo: Repository, snap: Snapshot, dst: Path, monkeypatch: pytest.MonkeyPatch,
          **kw: Any) -> tuple[list[str], Seen, list[str], int]:
    """The comparison's problems and record, made sure to be exactly what the full
    comparison (every node a ``Node``) reports and records; and the files it read."""
    read: list[str] = []
    content = _Comparer.content

    def spy(self: _Comparer, path: str, st: os.stat_result, node: Node) -> list[str]:
        read.append(os.path.relpath(path, dst))
        return content(self, path, st, node)

    monkeypatch.setattr(_Comparer, "content", spy)
    seen: Seen = {}
    fast = compare_tree(repo, snap, dst, NullTracker(), seen=seen, **kw)
    fast_read = sorted(read)
    with monkeypatch.context() as m:
        m.setattr(tree_compare, "_plain_file", lambda d: False)
        ref_seen: Seen = {}
        ref = compare_tree(repo, snap, dst, NullTracker(), seen=ref_seen, **kw)
    assert fast.problems == ref.problems
    assert fast.problem_count == ref.problem_count
    assert fast.entries_checked == ref.entries_checked
    assert seen == ref_seen
    return fast.problems, seen, fast_read, fast.entries_checked


def _keeping_dir_times(dst: Path, change: Callable[[], None]) -> None:
    """``change`` the tree, the directories' mtimes kept (only the change differs)."""
    dirs = [dst, *(p for p in dst.rglob("*") if p.is_dir() and not p.is_symlink())]
    times = {p: os.lstat(p).st_mtime_ns for p in dirs}
    change()
    for p, t in times.items():
        if p.is_dir():
            os.utime(p, ns=(t, t))


def _keeping_mtime(p: Path, change: Callable[[], None]) -> None:
    st = os.lstat(p)
    change()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def test_an_unchanged_restore_is_ok_and_no_trusted_file_is_read(
        restored: tuple[Repository, Snapshot, Path, Path, Seen],
        monkeypatch: pytest.MonkeyPatch) -> None:
    repo, snap, _, dst, record = restored
    assert {"plain.txt", "other.bin", "big.bin", "empty", "x.txt", "d/nested.txt",
            "hard1", "hard2"} == set(record)
    problems, seen, read, checked = _both(repo, snap, dst, monkeypatch, trusted=record)
    assert problems == [] and read == [] and seen == record
    assert checked == 12  # the root, d and the ten entries
    problems, seen, read, _ = _both(repo, snap, dst, monkeypatch)  # nothing trusted
    assert problems == [] and seen == record
    assert read == ["big.bin", "d/nested.txt", "empty", "hard1", "hard2", "other.bin",
                    "plain.txt", "x.txt"]


def _flip(p: Path) -> None:
    with open(p, "r+b") as f:
        f.seek(5)
        b = f.read(1)
        f.seek(5)
        f.write(bytes([b[0] ^ 1]))


def _replace(p: Path, make: Callable[[Path], None]) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    else:
        p.unlink()
    make(p)


CASES: dict[str, tuple[Callable[[Path], None], list[str]]] = {
    "mode": (lambda d: os.chmod(d / "plain.txt", 0o600),
             ["plain.txt: mode: volume has 384, backup says 420"]),
    "mtime": (lambda d: os.utime(d / "plain.txt", ns=(0, 1_000_000_000)),
              ["plain.txt: mtime_ns: volume has 1000000000, backup says {mtime}"]),
    "xattr added": (lambda d: os.setxattr(d / "plain.txt", "user.new", b"v"),
                    ["plain.txt: xattrs: volume has ['user.new'], backup says []"]),
    "xattr removed": (lambda d: os.removexattr(d / "x.txt", "user.a"),
                      ["x.txt: xattrs: volume has [], backup says ['user.a']"]),
    "xattr changed": (lambda d: os.setxattr(d / "x.txt", "user.a", b"2"),
                      ["x.txt: xattrs: volume has ['user.a'], backup says ['user.a']"]),
    "symlink target": (lambda d: _keeping_mtime(d / "link", lambda: _replace(
        d / "link", lambda p: os.symlink("other.bin", p))),
        ["link: link: volume has 'other.bin', backup says 'plain.txt'"]),
    "file to dir": (lambda d: _replace(d / "plain.txt", lambda p: p.mkdir()),
                    ["plain.txt: type: volume has dir, backup says file"]),
    "file to symlink": (lambda d: _replace(d / "plain.txt", lambda p: os.symlink("x", p)),
                        ["plain.txt: type: volume has symlink, backup says file"]),
    "fifo to file": (lambda d: _replace(d / "fifo", lambda p: p.write_text("")),
                     ["fifo: type: volume has file, backup says fifo"]),
    "size": (lambda d: _keeping_mtime(d / "other.bin", lambda: (d / "other.bin").write_bytes(
        (d / "other.bin").read_bytes() + b"x")),
        ["other.bin: size: volume has 20001, backup says 20000"]),
    "content": (lambda d: _keeping_mtime(d / "big.bin", lambda: _flip(d / "big.bin")),
                ["big.bin: content: differs from the backup (from chunk 0 of {chunks})"]),
    "empty gets content": (lambda d: _keeping_mtime(d / "empty", lambda: (
        d / "empty").write_bytes(b"x")), ["empty: size: volume has 1, backup says 0"]),
    "missing": (lambda d: (d / "d" / "nested.txt").unlink(),
                ["d/nested.txt: in the backup but not in the volume"]),
    "extra": (lambda d: (d / "d" / "extra").write_text("x"),
              ["d/extra: in the volume but not in the backup"]),
    "hardlink broken": (lambda d: _replace(d / "hard2", lambda p: shutil.copy2(d / "hard1", p)),
                        ["hard2: link: not a hardlink of hard1"]),
    "hardlink's first path replaced": (
        lambda d: _replace(d / "hard1", lambda p: shutil.copy2(d / "hard2", p)),
        ["hard2: link: not a hardlink of hard1"]),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("trusting", [True, False])
def test_each_kind_of_difference_is_found_as_the_full_comparison_words_it(
        restored: tuple[Repository, Snapshot, Path, Path, Seen],
        monkeypatch: pytest.MonkeyPatch, case: str, trusting: bool) -> None:
    repo, snap, _, dst, record = restored
    change, expected = CASES[case]
    nodes = {n.name: n for n in repo.read_tree(snap.tree).nodes}
    _keeping_dir_times(dst, lambda: change(dst))
    problems, _, _, _ = _both(repo, snap, dst, monkeypatch,
                              trusted=record if trusting else None)
    assert problems == [e.format(mtime=nodes["plain.txt"].mtime_ns,
                                 chunks=len(nodes["big.bin"].content)) for e in expected]


@needs_root
@pytest.mark.parametrize("which", ["uid", "gid"])
def test_an_owner_change_is_found(
        restored: tuple[Repository, Snapshot, Path, Path, Seen],
        monkeypatch: pytest.MonkeyPatch, which: str) -> None:
    repo, snap, _, dst, record = restored
    st = os.lstat(dst / "plain.txt")
    before = st.st_uid if which == "uid" else st.st_gid
    os.chown(dst / "plain.txt", 4321 if which == "uid" else -1,
             4321 if which == "gid" else -1)
    problems, seen, read, _ = _both(repo, snap, dst, monkeypatch, trusted=record)
    assert problems == [f"plain.txt: {which}: volume has 4321, backup says {before}"]
    assert read == ["plain.txt"]  # its ctime moved: its record no longer vouches for it
    assert "plain.txt" in seen  # its content matched (the owner is reported)


def test_a_record_from_another_snapshot_does_not_vouch_for_changed_content(
        restored: tuple[Repository, Snapshot, Path, Path, Seen],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The volume holds S1 and its record (same stat); S2 changed ``other.bin``'s bytes
    only (same size and mtime): the record's chunk digest is S1's, so the file is read."""
    repo, s1, src, dst, record = restored
    _keeping_mtime(src / "other.bin", lambda: _flip(src / "other.bin"))
    s2 = backup_directory(repo, src, host="h", volume="v", parent=s1)
    problems, seen, read, _ = _both(repo, s2, dst, monkeypatch, trusted=record)
    # its random 20 000 bytes are one chunk or two, as the chunker cuts them
    chunks = len(repo.read_tree(s2.tree).by_name()["other.bin"].content)
    assert problems == [
        f"other.bin: content: differs from the backup (from chunk 0 of {chunks})"]
    assert read == ["other.bin"] and "other.bin" not in seen
    assert {k: v for k, v in seen.items()} == {k: v for k, v in record.items()
                                              if k != "other.bin"}


def test_a_written_record_compares_sizes_and_records_the_rest(
        restored: tuple[Repository, Snapshot, Path, Path, Seen],
        monkeypatch: pytest.MonkeyPatch) -> None:
    repo, snap, _, dst, record = restored
    _keeping_dir_times(dst, lambda: _keeping_mtime(dst / "other.bin", lambda: (
        dst / "other.bin").write_bytes(b"short")))
    os.chmod(dst / "plain.txt", 0o600)
    problems, seen, read, _ = _both(repo, snap, dst, monkeypatch, written=True)
    assert problems == ["other.bin: size: volume has 5, backup says 20000",
                        "plain.txt: mode: volume has 384, backup says 420"]
    assert read == []
    assert "other.bin" not in seen
    assert seen["plain.txt"][:4] != record["plain.txt"][:4]  # a new ctime
    assert set(seen) == set(record) - {"other.bin"}


GOOD = {"name": "f", "type": "file", "mode": 0o644, "uid": 0, "gid": 0, "mtime_ns": 5,
        "ctime_ns": 6, "inode": 7, "size": 3, "content": ["ab" * 32]}


@pytest.mark.parametrize("change", [
    {}, {"content": ["ab" * 32, "cd" * 32]}, {"content": []}, {"size": 0},
    {"mode": True}, {"mode": 420.0}, {"mode": "420"}, {"mode": 0o100644}, {"mode": -1},
    {"uid": None}, {"mtime_ns": 1.5}, {"ctime_ns": "x"}, {"inode": [1]}, {"size": -1},
    {"content": ["ab" * 31 + " ab"]}, {"content": ["ab" * 31 + "a", "ab" * 32 + "b"]},
    {"content": ["zz" * 32]}, {"content": "ab" * 32}, {"content": [1]}, {"content": {}},
    {"xattrs": {}}, {"xattrs": {"user.a": "MQ=="}}, {"holes": [[0, 4096]]},
    {"subtree": "00" * 32}, {"target": "x"}, {"type": "hardlink", "link": "g"},
    {"name": 5}, {"name": ".."}, {"name": "a/b"}, {"extra": 1},
])
def test_a_node_kept_plain_is_one_from_dict_parses_the_same(change: dict[str, Any]) -> None:
    """``_plain_file`` keeps only what ``Node.from_dict`` parses (but for the name's
    check) and leaves the same content digest; a tree with any malformed node fails to
    decode with the same error as ``Tree.decode``."""
    d = {**GOOD, **change}
    kept = _plain_file(dict(d))
    try:
        node: Node | None = Node.from_dict(d)
    except IntegrityError:
        node = None
    if kept and d["name"] in ("..", "a/b"):
        assert node is None  # the name is checked apart (``decode_some``)
    elif kept:
        probe = dict(d)
        assert _plain_file(probe)
        assert node is not None and node.type == "file" and not node.xattrs
        assert not node.holes and node.mode == d.get("mode", 0)
        assert probe[_DIGEST] == content_digest(node.content)
    data = json.dumps({"v": 1, "nodes": [dict(GOOD, name="a"), d]}).encode()
    try:
        want: list[Node] | str = Tree.decode(data, "tree t").nodes
    except IntegrityError as e:
        want = str(e)
    try:
        got: list[Node] | str = [n if isinstance(n, Node) else Node.from_dict(n)
                                 for n in decode_some(data, "tree t", _plain_file)]
    except IntegrityError as e:
        got = str(e)
    assert got == want


@pytest.mark.parametrize("case", ["mode", "mtime", "xattr added", "xattr removed",
                                  "xattr changed", "hardlink broken"])
def test_a_difference_already_there_when_the_record_was_made_is_still_found(
        restored: tuple[Repository, Snapshot, Path, Path, Seen],
        monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    """A record vouches for content only: a file whose metadata or xattrs differed when
    the record was made (its content recorded all the same) and whose stat has not moved
    since is still compared in full — by ``written`` as by a verify trusting the record."""
    repo, snap, _, dst, _ = restored
    change, expected = CASES[case]
    nodes = {n.name: n for n in repo.read_tree(snap.tree).nodes}
    expected = [e.format(mtime=nodes["plain.txt"].mtime_ns, chunks=0) for e in expected]
    _keeping_dir_times(dst, lambda: change(dst))
    problems, record, read, _ = _both(repo, snap, dst, monkeypatch, written=True)
    assert problems == expected and read == []
    problems, seen, read, _ = _both(repo, snap, dst, monkeypatch, trusted=record)
    assert problems == expected and read == [] and seen == record

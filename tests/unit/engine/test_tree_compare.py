"""``compare_tree`` with large files: their content is compared in helper threads beside
the walk, and a difference there is still found (and such a file is not recorded as
matched); many of them, beyond what may wait at once, are all checked."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from common.engine.tree_compare import BESIDE_MIN, _Comparer, compare_tree
from common.progress import NullTracker
from common.repository.backup.archiver import backup_directory
from common.repository.core.tree import Node
from common.repository.restore.restorer import restore_snapshot
from tests.unit.repository.test_backup import new_repo


def test_large_files_are_compared_beside_the_walk_and_a_changed_byte_is_found(
        tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    for i in range(12):  # more than may wait at once
        (src / "d" / f"big{i:02}.bin").write_bytes(os.urandom(BESIDE_MIN + 4096 * i))
    (src / "small.txt").write_text("small")
    repo = new_repo()
    snap = backup_directory(repo, src, host="h", volume="v")
    dst = tmp_path / "dst"
    dst.mkdir()
    restore_snapshot(repo, snap, dst)

    seen: dict[str, tuple[int, int, int, int, str]] = {}
    clean = compare_tree(repo, snap, dst, NullTracker(), seen=seen)
    assert clean.ok, clean.problems
    assert {f"d/big{i:02}.bin" for i in range(12)} | {"small.txt"} <= set(seen)

    victim = dst / "d" / "big07.bin"
    st = victim.stat()
    with open(victim, "r+b") as f:  # same size and mtime: only the content tells
        f.seek(BESIDE_MIN // 2)
        byte = f.read(1)
        f.seek(BESIDE_MIN // 2)
        f.write(bytes([byte[0] ^ 1]))
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    seen = {}
    report = compare_tree(repo, snap, dst, NullTracker(), seen=seen)
    assert not report.ok
    assert [p for p in report.problems if p.startswith("d/big07.bin: content: differs")]
    assert "d/big07.bin" not in seen and "d/big06.bin" in seen


def test_a_sync_records_the_files_it_wrote_and_a_later_write_is_still_found(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``sync_record``: after a sync of S2 over a recorded restore of S1, the record holds
    each file the sync wrote with the stat it left (and not the files it removed), so a
    comparison trusting the record reads none of them; a byte written into one of them
    afterwards (same size and mtime) is still found."""
    from common.engine.tree_compare import sync_record
    from common.repository.restore.sync import sync_snapshot

    src = tmp_path / "src"
    (src / "d" / "gone").mkdir(parents=True)
    for i in range(6):
        (src / "d" / f"f{i}.bin").write_bytes(os.urandom(3000 + 1000 * i))
    (src / "d" / "gone" / "x.bin").write_bytes(b"x" * 100)
    (src / "drop.bin").write_bytes(b"drop")
    repo = new_repo()
    s1 = backup_directory(repo, src, host="h", volume="v")
    (src / "d" / "f1.bin").write_bytes(os.urandom(3500))  # rewritten whole
    with open(src / "d" / "f4.bin", "r+b") as f:  # one region changed
        f.seek(100)
        f.write(b"changed")
    (src / "new.bin").write_bytes(os.urandom(2000))
    (src / "drop.bin").unlink()
    for p in sorted((src / "d" / "gone").iterdir()):
        p.unlink()
    (src / "d" / "gone").rmdir()
    s2 = backup_directory(repo, src, host="h", volume="v", parent=s1)
    dst = tmp_path / "dst"
    dst.mkdir()
    restore_snapshot(repo, s1, dst)
    seen: dict[str, tuple[int, int, int, int, str]] = {}
    assert compare_tree(repo, s1, dst, NullTracker(), seen=seen, written=True).ok
    assert {"drop.bin", "d/gone/x.bin", "d/f1.bin"} <= set(seen)

    stats = sync_snapshot(repo, s2, dst, in_place=True)
    assert sync_record(dst, stats, seen) == 3 == stats.files_written
    for rel in ("d/f1.bin", "d/f4.bin", "new.bin"):
        st = os.lstat(dst / rel)
        assert seen[rel][:4] == (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    assert "drop.bin" not in seen and "d/gone/x.bin" not in seen
    read: list[str] = []
    content = _Comparer.content

    def spy(self: _Comparer, path: str, st: os.stat_result, node: Node) -> list[str]:
        read.append(os.path.relpath(path, dst))
        return content(self, path, st, node)

    monkeypatch.setattr(_Comparer, "content", spy)
    report = compare_tree(repo, s2, dst, NullTracker(), trusted=seen)
    assert report.ok, report.problems
    assert read == []  # every file trusted: the pre-copy's and the sync's

    victim = dst / "d" / "f4.bin"
    st = victim.stat()
    with open(victim, "r+b") as f:  # same size and mtime: only the ctime moved
        f.seek(100)
        f.write(b"CHANGED")
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    report = compare_tree(repo, s2, dst, NullTracker(), trusted=seen)
    assert not report.ok
    assert [p for p in report.problems if p.startswith("d/f4.bin: content: differs")]

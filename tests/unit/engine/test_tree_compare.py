"""``compare_tree`` with large files: their content is compared in helper threads beside
the walk, and a difference there is still found (and such a file is not recorded as
matched); many of them, beyond what may wait at once, are all checked."""

from __future__ import annotations

import os
from pathlib import Path

from common.engine.tree_compare import BESIDE_MIN, compare_tree
from common.progress import NullTracker
from common.repository.backup.archiver import backup_directory
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

"""The quick pre-scan behind backup progress totals: content bytes and files as the
repository counts them, members and tar stream size as an archive backup counts them."""

from __future__ import annotations

import os
from pathlib import Path

from common.archive.gnutar import create_stream
from common.engine.sizing import scan_tree


def _tree(root: Path) -> None:
    (root / "d" / "e").mkdir(parents=True)
    (root / "a.txt").write_bytes(b"x" * 1000)
    (root / "d" / "b.bin").write_bytes(os.urandom(5000))
    (root / "d" / "e" / ("long-" + "n" * 120)).write_bytes(b"y" * 10)
    os.link(root / "a.txt", root / "d" / "hard")
    os.symlink("a.txt", root / "link")


def test_the_scan_counts_content_once_per_inode_and_every_entry(tmp_path: Path) -> None:
    _tree(tmp_path)
    size = scan_tree(tmp_path)
    assert size is not None
    assert (size.bytes, size.files) == (6010, 3)
    assert size.entries == 8  # ".", a.txt, d, d/b.bin, d/e, d/e/long…, d/hard, link


def test_the_tar_estimate_is_the_size_of_the_stream_a_backup_reads(tmp_path: Path) -> None:
    _tree(tmp_path)
    for i in range(50):
        (tmp_path / "d" / f"f{i}").write_bytes(b"z" * (i * 700))
    size = scan_tree(tmp_path)
    assert size is not None
    with create_stream(tmp_path) as stream:
        real = len(stream.read())
    assert size.tar_bytes == real


def test_a_scan_over_its_budget_gives_no_total(tmp_path: Path) -> None:
    _tree(tmp_path)
    assert scan_tree(tmp_path, budget_seconds=-1) is None


def test_scanning_reports_the_size_from_its_thread_and_nothing_after_the_block(
        tmp_path: Path) -> None:
    import threading

    from common.engine.sizing import TreeSize, scanning

    _tree(tmp_path)
    got: list[int] = []
    done = threading.Event()

    def on_size(size: TreeSize) -> None:
        got.append(size.files)
        done.set()

    with scanning(tmp_path, on_size):
        assert done.wait(10)
    assert got == [3]
    with scanning(None, on_size):
        pass
    with scanning(tmp_path, on_size, budget_seconds=-1):
        pass
    assert got == [3]

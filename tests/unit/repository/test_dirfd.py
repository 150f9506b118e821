"""Directory descriptors below a root: opened from the nearest open ancestor, never through
a symlink, bounded in number however deep or wide the tree."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from common.repository.system import dirfd
from common.repository.system.dirfd import DirFds, open_root


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _unchain(base: Path) -> None:
    """Remove ``base/d/d/…`` one level at a time (``shutil.rmtree``, which pytest uses to
    clean up, recurses once per level and fails on a chain this deep)."""
    while (base / "d").is_dir():
        if (base / "d" / "d").is_dir():
            os.rename(base / "d" / "d", base / "d.next")
            os.rmdir(base / "d")
            os.rename(base / "d.next", base / "d")
        else:
            os.rmdir(base / "d")


def test_a_tree_deeper_than_the_cache_and_the_recursion_limit_resolves_with_few_fds(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dirfd, "_CACHE", 8)
    rel = "/".join(["d"] * 1200)  # deeper than the recursion limit (1000)
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(1200):
            os.mkdir("d", dir_fd=fd)
            nxt = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nxt
        os.close(fd)
        before = _open_fds()
        with DirFds(open_root(str(tmp_path))) as fds:
            deep = fds.dir(rel)
            assert os.fstat(deep).st_nlink == 2  # the last 'd': no subdirectory
            assert _open_fds() - before <= 8 + 2
            parent, name = fds.parent(rel + "/f")
            assert parent == deep and name == "f"
        assert _open_fds() == before
    finally:
        _unchain(tmp_path)


def test_a_symlinked_component_is_refused_naming_its_path(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", tmp_path / "a" / "b")
    with DirFds(open_root(str(tmp_path))) as fds, pytest.raises(OSError) as err:
        fds.dir("a/b/c")
    assert err.value.errno in (errno.ELOOP, errno.ENOTDIR) and err.value.filename == "a/b"

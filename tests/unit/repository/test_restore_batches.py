"""Streaming restores: many small batches, worker processes, large files in parts,
hardlinks across batches, damaged blobs in a middle batch, and no worker left behind."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from common.errors import IntegrityError
from common.progress import ProgressTracker
from common.repository.backup.archiver import backup_directory
from common.repository.restore import restorer
from common.repository.restore.restorer import restore_snapshot
from tests.treecmp import compare_trees
from tests.unit.repository.test_backup import make_volume, new_repo
from tests.unit.repository.test_restore import _flip_in_blob_of


def _children() -> list[int]:
    """Processes whose parent is this one (restore workers would show up here)."""
    me, out = str(os.getpid()), []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == me and fields[0] != "Z":
                out.append(int(pid))
    return out


@pytest.fixture
def left_behind() -> Callable[[], set[int]]:
    """Children started during the test that are still alive: other suites' servers
    (dockerd, redis, postgres started by session fixtures) are children too, so only
    the ones that were not there before count."""
    before = set(_children())
    return lambda: set(_children()) - before


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of 8 entries / 64 KiB: a few MiB become dozens of batches, and the 2 MiB
    and 1 MiB files are written in parts by several batches."""
    monkeypatch.setattr(restorer, "BATCH_FILES", 8)
    monkeypatch.setattr(restorer, "BATCH_BYTES", 64 * 1024)


def _volume(root: Path) -> Path:
    src = make_volume(root)
    (src / "a").mkdir()
    (src / "a" / "first").write_bytes(b"shared content" * 500)
    os.link(src / "a" / "first", src / "z-last")  # first link in an early batch
    with open(src / "sparse.img", "wb") as f:  # a large file with a hole in the middle
        f.write(os.urandom(300_000))
        f.seek(4 << 20)
        f.write(os.urandom(300_000))
    (src / "a" / "link").symlink_to("first")
    os.chmod(src / "a" / "first", 0o751)
    return src


@pytest.mark.parametrize("processes", [0, 2])
def test_a_restore_in_many_batches_equals_the_source_with_threads_or_worker_processes(
        small_batches: None, left_behind: Callable[[], set[int]], tmp_path: Path,
        processes: int) -> None:
    src = _volume(tmp_path / "v")
    repo = new_repo()
    snap = backup_directory(repo, src, host="h", volume="v")
    dest = tmp_path / "r"
    seen: list[tuple[str, int]] = []

    class Recording(ProgressTracker):
        def add(self, nbytes: int = 0, files: int = 0) -> None:
            super().add(nbytes, files)
            seen.append((self.phase, self.bytes_done))

    tracker = Recording("t", None)
    stats = restore_snapshot(repo, snap, dest, processes=processes, progress=tracker)
    assert compare_trees(src, dest) == []
    assert os.stat(dest / "a/first").st_ino == os.stat(dest / "z-last").st_ino
    assert os.stat(dest / "sparse.img").st_blocks * 512 < 2 << 20  # the hole stayed a hole
    assert stats.files == snap.stats.files and stats.bytes == snap.stats.bytes
    # progress advanced batch by batch during the data phase, up to the whole
    during = [done for phase, done in seen if phase == "restore"]
    assert len(during) > 10 and during == sorted(during)
    assert tracker.bytes_done == tracker.bytes_total == snap.stats.bytes
    assert left_behind() == set()


@pytest.mark.parametrize("processes", [0, 2])
def test_a_damaged_blob_in_a_middle_batch_names_it_and_every_other_file_is_restored(
        small_batches: None, left_behind: Callable[[], set[int]], tmp_path: Path,
        processes: int) -> None:
    src = _volume(tmp_path / "v")
    repo = new_repo()
    snap = backup_directory(repo, src, host="h", volume="v")
    blob = _flip_in_blob_of(repo, snap, "dir1/nested/small7.txt")
    dest = tmp_path / "r"
    with pytest.raises(IntegrityError) as exc:
        restore_snapshot(repo, snap, dest, processes=processes)
    assert f"blob {blob.hex()}" in exc.value.message
    assert "files not restored correctly: dir1/nested/small7.txt" in exc.value.message
    diffs = compare_trees(src, dest)
    assert diffs and all("small7.txt" in d for d in diffs), diffs
    assert (dest / "dir1/nested/small7.txt").stat().st_size == 0
    assert left_behind() == set()


def test_worker_processes_end_with_a_restore_that_is_interrupted(
        small_batches: None, left_behind: Callable[[], set[int]], tmp_path: Path) -> None:
    src = _volume(tmp_path / "v")
    repo = new_repo()
    snap = backup_directory(repo, src, host="h", volume="v")

    class Interrupting(ProgressTracker):
        def add(self, nbytes: int = 0, files: int = 0) -> None:
            if self.phase == "restore" and nbytes:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        restore_snapshot(repo, snap, tmp_path / "r", processes=2,
                         progress=Interrupting("t", None))
    assert left_behind() == set()


def test_a_large_restore_chooses_worker_processes_and_a_small_one_threads(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from common.repository.restore import workers as restore_workers

    src = make_volume(tmp_path / "v")
    repo = new_repo()
    snap = backup_directory(repo, src, host="h", volume="v")
    made: list[str] = []
    real = restore_workers.ProcessRunner.__init__

    def spy(self: restore_workers.ProcessRunner, *a: object, **k: object) -> None:
        made.append("processes")
        real(self, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(restore_workers.ProcessRunner, "__init__", spy)
    restore_snapshot(repo, snap, tmp_path / "small")
    assert made == []
    monkeypatch.setattr(restore_workers, "PROCESS_MIN_FILES", 10)
    monkeypatch.setattr(restore_workers, "PROCESS_MAX_AVERAGE", 1 << 30)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1})
    restore_snapshot(repo, snap, tmp_path / "large")
    assert made == ["processes"]
    assert compare_trees(src, tmp_path / "large") == []


def test_the_ranges_of_a_batch_are_read_concurrently_with_the_same_result(
        tmp_path: Path) -> None:
    """On S3 every ranged read waits a round trip: a batch's reads overlap."""
    import threading
    import time
    from typing import Any, cast

    from common.storage.base import Backend

    src = make_volume(tmp_path / "v")
    repo = new_repo()  # 256 KiB packs: one batch spans many of them
    snap = backup_directory(repo, src, host="h", volume="v")

    class SlowReads:
        def __init__(self, inner: Backend) -> None:
            self.inner, self.now, self.most = inner, 0, 0
            self.lock = threading.Lock()

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def read_range(self, key: str, offset: int, length: int) -> bytes:
            with self.lock:
                self.now += 1
                self.most = max(self.most, self.now)
            time.sleep(0.02)  # a round trip
            try:
                return self.inner.read_range(key, offset, length)
            finally:
                with self.lock:
                    self.now -= 1

    slow = SlowReads(repo.backend)
    repo.backend = cast(Backend, slow)
    restore_snapshot(repo, snap, tmp_path / "r", processes=0)
    assert compare_trees(src, tmp_path / "r") == []
    assert slow.most > 1


def test_a_large_restore_of_small_and_large_files_sends_small_file_batches_to_processes(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, small_batches: None,
        left_behind: Callable[[], set[int]]) -> None:
    from common.repository.restore import workers as restore_workers

    src = _volume(tmp_path / "v")
    many = src / "many"
    many.mkdir()
    for i in range(40):
        (many / f"s{i:02d}").write_bytes(os.urandom(100 + i))
    repo = new_repo()
    snap = backup_directory(repo, src, host="h", volume="v")
    went: dict[str, int] = {"processes": 0, "threads": 0}
    real_p, real_t = restore_workers.ProcessRunner.submit, restore_workers.ThreadRunner.submit

    def to_processes(self: restore_workers.ProcessRunner, batch: object) -> object:
        went["processes"] += 1
        return real_p(self, batch)  # type: ignore[arg-type]

    def to_threads(self: restore_workers.ThreadRunner, batch: object) -> object:
        went["threads"] += 1
        return real_t(self, batch)  # type: ignore[arg-type]

    monkeypatch.setattr(restore_workers.ProcessRunner, "submit", to_processes)
    monkeypatch.setattr(restore_workers.ThreadRunner, "submit", to_threads)
    # many files, large on average: small-file batches (8 files here) to processes
    monkeypatch.setattr(restore_workers, "PROCESS_MIN_FILES", 10)
    monkeypatch.setattr(restore_workers, "PROCESS_MAX_AVERAGE", 4096)
    monkeypatch.setattr(restore_workers, "MIXED_MIN_FILES", 8)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1})
    restore_snapshot(repo, snap, tmp_path / "r")
    assert went["processes"] > 0 and went["threads"] > 0
    assert compare_trees(src, tmp_path / "r") == []
    assert left_behind() == set()

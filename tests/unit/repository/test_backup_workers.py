"""Backups whose small files are read, hashed and sealed by worker processes: the same
snapshot as threads, deduplication decided by the walk, and a dead worker fails the backup
without leaving a snapshot or damage."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from concurrent.futures import wait
from pathlib import Path

import pytest

from common.repository.backup import read as backup_read
from common.repository.backup import workers as backup_workers
from common.repository.backup.archiver import BackupOptions, backup_directory, iter_nodes
from common.repository.check.checker import check_repository
from common.repository.core.snapshot import snapshot_ids
from common.repository.restore.restorer import restore_snapshot
from tests.treecmp import compare_trees
from tests.unit.repository.test_backup import make_volume, new_repo
from tests.unit.repository.test_restore_batches import _children

WORKERS = BackupOptions(processes=2, process_after=0)


@pytest.fixture
def left_behind() -> Callable[[], set[int]]:
    before = set(_children())
    return lambda: set(_children()) - before


def _volume(root: Path) -> Path:
    src = make_volume(root)
    for d in range(4):  # the same small files in several directories: stored once
        sub = src / "copies" / f"c{d}"
        sub.mkdir(parents=True)
        for i in range(40):
            (sub / f"same{i}.txt").write_bytes(b"identical content %d\n" % i * 50)
    return src


def test_worker_processes_back_up_exactly_what_threads_do_and_store_duplicates_once(
        tmp_path: Path, left_behind: Callable[[], set[int]]) -> None:
    src = _volume(tmp_path / "v")
    started: list[int] = []
    real = backup_workers.ProcessReaders.__init__

    def spy(self: backup_workers.ProcessReaders, processes: int, *a: object) -> None:
        started.append(processes)
        real(self, processes, *a)  # type: ignore[arg-type]

    mp = pytest.MonkeyPatch()
    mp.setattr(backup_workers.ProcessReaders, "__init__", spy)
    try:
        repo = new_repo()
        snap = backup_directory(repo, src, host="h", volume="v", options=WORKERS)
    finally:
        mp.undo()
    assert started == [2]
    threads_repo = new_repo()
    threaded = backup_directory(threads_repo, src, host="h", volume="v",
                                options=BackupOptions(processes=0))
    # the same listing (chunk boundaries are keyed per repository: compare sizes)
    repo.load_index(), threads_repo.load_index()
    nodes = list(iter_nodes(repo, snap.tree))
    assert [(p, n.type, n.size) for p, n in nodes] == [
        (p, n.type, n.size) for p, n in iter_nodes(threads_repo, threaded.tree)]
    # every distinct blob stored once: the 160 copies are 40 blobs
    blobs = {c for _p, n in nodes for c in n.content}
    trees = {n.subtree for _p, n in nodes if n.subtree is not None} | {snap.tree}
    assert len({n.content[0] for p, n in nodes if p.startswith("copies/")
                and n.type == "file"}) == 40
    assert snap.stats.new_blobs == len(blobs) + len(trees)
    assert snap.stats.files_read == threaded.stats.files_read == snap.stats.files
    assert check_repository(repo, read_data=True).ok
    dest = tmp_path / "r"
    restore_snapshot(repo, snap, dest)
    assert compare_trees(src, dest, check_root=False) == []
    assert left_behind() == set()

    # incremental: nothing read again, then only the changed file
    again = backup_directory(repo, src, host="h", volume="v", parent=snap, options=WORKERS)
    assert again.stats.files_read == 0 and again.tree == snap.tree
    (src / "copies" / "c2" / "same7.txt").write_bytes(b"now different")
    third = backup_directory(repo, src, host="h", volume="v", parent=again, options=WORKERS)
    assert third.stats.files_read == 1 and third.stats.new_blobs == 1 + 3  # c2, copies, root
    dest3 = tmp_path / "r3"
    restore_snapshot(repo, third, dest3)
    assert compare_trees(src, dest3, check_root=False) == []
    assert left_behind() == set()


def test_a_backup_worker_killed_mid_backup_fails_it_without_a_snapshot_or_damage(
        tmp_path: Path, left_behind: Callable[[], set[int]]) -> None:
    src = _volume(tmp_path / "v")
    repo = new_repo()
    first = backup_directory(repo, src, host="h", volume="v", options=WORKERS)
    for d in range(8):  # a group per directory
        (src / "more" / f"d{d}").mkdir(parents=True)
        for i in range(40):
            (src / "more" / f"d{d}" / f"new{i}").write_bytes(os.urandom(2000))
    real_read = backup_workers.ProcessReaders.read
    sent = [0]

    def kill_after_some(self: backup_workers.ProcessReaders, *a: object
                        ) -> object:
        sent[0] += 1
        if sent[0] == 5:  # the walk is well under way
            os.kill(self._workers[0].proc.pid, signal.SIGKILL)
        return real_read(self, *a)  # type: ignore[arg-type]

    mp = pytest.MonkeyPatch()
    mp.setattr(backup_workers.ProcessReaders, "read", kill_after_some)
    try:
        with pytest.raises(OSError, match="backup worker process ended unexpectedly"):
            backup_directory(repo, src, host="h", volume="v", parent=first, options=WORKERS)
    finally:
        mp.undo()
    assert snapshot_ids(repo) == [first.id]
    assert check_repository(repo, read_data=True).ok
    assert left_behind() == set()
    nxt = backup_directory(repo, src, host="h", volume="v", parent=first, options=WORKERS)
    dest = tmp_path / "r"
    restore_snapshot(repo, nxt, dest)
    assert compare_trees(src, dest, check_root=False) == []


def test_a_small_backup_never_starts_worker_processes(tmp_path: Path) -> None:
    src = _volume(tmp_path / "v")
    started: list[int] = []
    mp = pytest.MonkeyPatch()
    mp.setattr(backup_workers.ProcessReaders, "__init__",
               lambda self, n, *a: started.append(n))
    try:
        backup_directory(new_repo(), src, host="h", volume="v")  # default: after 4000 files
        backup_directory(new_repo(), src, host="h", volume="v",
                         options=BackupOptions(processes=0, process_after=0))
    finally:
        mp.undo()
    assert started == []


def test_worker_processes_that_cannot_start_leave_the_backup_to_threads(
        tmp_path: Path, left_behind: Callable[[], set[int]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # an interpreter that cannot import the worker module (a broken installation)
    monkeypatch.setattr(backup_workers.ProcessReaders, "MODULE",
                        "common.repository.no_such_module")
    src = _volume(tmp_path / "v")
    repo = new_repo()
    snap = backup_directory(repo, src, host="h", volume="v", options=WORKERS)
    assert snap.stats.files_read == snap.stats.files
    dest = tmp_path / "r"
    restore_snapshot(repo, snap, dest)
    assert compare_trees(src, dest, check_root=False) == []
    assert left_behind() == set()


def test_the_walk_reads_in_threads_while_worker_processes_start_and_then_uses_them(
        tmp_path: Path, left_behind: Callable[[], set[int]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    src = _volume(tmp_path / "v")
    used: list[int] = []
    real_read = backup_workers.ProcessReaders.read

    def counting(self: backup_workers.ProcessReaders, *a: object) -> object:
        used.append(1)
        return real_read(self, *a)  # type: ignore[arg-type]

    monkeypatch.setattr(backup_workers.ProcessReaders, "read", counting)
    # a start that finishes only when the backup ends: threads read it all, and the
    # worker started meanwhile is stopped with the backup
    gate = threading.Event()
    real_ready = backup_workers.ProcessReaders.ready
    real_close = backup_read.Readers.close

    def slow_ready(self: backup_workers.ProcessReaders, timeout: float = 60.0) -> bool:
        gate.wait(30)
        return real_ready(self, timeout)

    def closing(self: backup_read.Readers, abort: bool = False) -> None:
        gate.set()
        real_close(self, abort)

    with monkeypatch.context() as mp:
        mp.setattr(backup_workers.ProcessReaders, "ready", slow_ready)
        mp.setattr(backup_read.Readers, "close", closing)
        repo = new_repo()
        opts = BackupOptions(processes=1, process_after=1)
        snap = backup_directory(repo, src, host="h", volume="v", options=opts)
    assert used == [] and snap.stats.files_read == snap.stats.files
    assert left_behind() == set()
    # a start that finishes while the walk goes on: later groups go to the worker
    (src / "more").mkdir()
    for d in range(30):
        sub = src / "more" / f"d{d}"
        sub.mkdir()
        for i in range(40):
            (sub / f"f{i}").write_bytes(os.urandom(100))
    real_thread_read = backup_read.Readers._read

    def after_the_start(self: backup_read.Readers, *a: object) -> backup_read.Group:
        starting = self._starting  # the walk may take it meanwhile
        if starting is not None:
            wait([starting], timeout=30)
        return real_thread_read(self, *a)  # type: ignore[arg-type]

    monkeypatch.setattr(backup_read.Readers, "_read", after_the_start)
    nxt = backup_directory(repo, src, host="h", volume="v", parent=snap, options=opts)
    assert used != []
    dest = tmp_path / "r"
    restore_snapshot(repo, nxt, dest)
    assert compare_trees(src, dest, check_root=False) == []
    assert left_behind() == set()

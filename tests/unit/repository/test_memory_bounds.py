"""What bounds a backup's and a restore's memory: the batches in flight in the backup
pipeline (by number and by bytes), and how many worker processes a backup and a mixed
restore start on a small host."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from common.repository.backup import workers as backup_workers
from common.repository.backup.pipeline import InFlight
from common.repository.restore import workers as restore_workers
from tests.unit.repository.test_backup import new_repo

MiB = 1 << 20


def _taken_later(slots: InFlight, nbytes: int) -> threading.Event:
    """An event set once a thread got room for ``nbytes``."""
    got = threading.Event()

    def take() -> None:
        if slots.acquire(nbytes, timeout=5):
            got.set()

    threading.Thread(target=take, daemon=True).start()
    return got


def test_a_batch_waits_while_its_bytes_would_take_those_in_flight_over_the_limit() -> None:
    slots = InFlight(batches=4, limit=8 * MiB)
    assert slots.acquire(3 * MiB, timeout=0)
    assert slots.acquire(3 * MiB, timeout=0)
    assert not slots.acquire(3 * MiB, timeout=0)  # 9 MiB > 8 MiB
    got = _taken_later(slots, 3 * MiB)
    time.sleep(0.05)
    assert not got.is_set()
    slots.release(3 * MiB)
    assert got.wait(2)
    assert slots.acquire(2 * MiB, timeout=0)  # 8 MiB: at the limit, not over it


def test_a_batch_larger_than_the_limit_goes_alone_once_nothing_else_is_in_flight() -> None:
    slots = InFlight(batches=4, limit=8 * MiB)
    assert slots.acquire(1 * MiB, timeout=0)
    assert not slots.acquire(9 * MiB, timeout=0)
    slots.release(1 * MiB)
    assert slots.acquire(9 * MiB, timeout=0)
    assert not slots.acquire(1, timeout=0)


def test_batches_in_flight_are_bounded_by_number_too() -> None:
    slots = InFlight(batches=2, limit=8 * MiB)
    assert slots.acquire(10, timeout=0) and slots.acquire(10, timeout=0)
    assert not slots.acquire(10, timeout=0)
    slots.release(10)
    assert slots.acquire(10, timeout=0)


class _Readers:
    """Stands in for ``ProcessReaders``: records how many processes were asked for."""

    made: list[int] = []

    def __init__(self, processes: int, *_a: Any) -> None:
        self.made.append(processes)

    def ready(self) -> bool:
        return True


@pytest.mark.parametrize(("cpus", "want"), [(1, []), (2, []), (3, [2]), (8, [4])])
def test_a_backup_starts_worker_processes_only_on_hosts_of_more_than_two_cpus(
        monkeypatch: pytest.MonkeyPatch, cpus: int, want: list[int]) -> None:
    _Readers.made = []
    monkeypatch.setattr(backup_workers, "ProcessReaders", _Readers)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(cpus)))
    started = backup_workers.start(new_repo(), lambda _b: True, lambda _blobs: None, None)
    assert _Readers.made == want
    assert (started is None) == (want == [])


@pytest.mark.parametrize(("cpus", "nbytes", "want"), [
    (2, 24_000 * 64 * 1024, 1),  # mixed: one process, the threads have the other CPU
    (2, 24_000 * 1024, 2),  # small files only: a process per CPU
    (4, 24_000 * 64 * 1024, 4),
])
def test_a_mixed_restore_on_two_cpus_has_one_worker_process(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cpus: int, nbytes: int,
        want: int) -> None:
    made: list[int] = []

    class Processes:
        capacity = 2

        def __init__(self, processes: int, *_a: Any, **_k: Any) -> None:
            made.append(processes)

    monkeypatch.setattr(restore_workers, "ProcessRunner", Processes)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(cpus)))
    runner = restore_workers.make_runner(new_repo(), str(tmp_path), 24_000, nbytes, 4, None)
    try:
        assert made == [want]
    finally:
        if isinstance(runner, restore_workers.MixedRunner):
            runner.threads.close()

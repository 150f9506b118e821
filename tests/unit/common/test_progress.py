"""Progress tracking: snapshots, rate/ETA, and publication even while the engine stalls."""

from __future__ import annotations

import threading
import time
from typing import Any

from common.progress import MemoryProgressBus, ProgressTracker


class RecordingBus(MemoryProgressBus):
    def __init__(self) -> None:
        super().__init__()
        self.history: list[dict[str, Any]] = []

    def publish(self, job_id: str, snapshot: dict[str, Any]) -> None:
        self.history.append(snapshot)
        super().publish(job_id, snapshot)


def test_snapshots_count_bytes_and_files_and_estimate_the_rest() -> None:
    tracker = ProgressTracker("j", None)
    tracker.set_phase("backing up", bytes_total=1000, files_total=10)
    tracker.add(250, files=2)
    tracker.add(250, files=3)
    snap = tracker.snapshot()
    assert (snap["phase"], snap["bytes_done"], snap["files_done"]) == ("backing up", 500, 5)
    assert snap["bytes_total"] == 1000 and snap["files_total"] == 10
    assert snap["rate_bytes_per_s"] > 0 and snap["eta_seconds"] is not None


def test_a_new_phase_starts_counting_from_zero() -> None:
    tracker = ProgressTracker("j", None)
    tracker.set_phase("one", bytes_total=10)
    tracker.add(10)
    tracker.set_phase("two")
    snap = tracker.snapshot()
    assert snap["bytes_done"] == 0 and snap["bytes_total"] is None and snap["eta_seconds"] is None


def test_progress_is_published_on_a_timer_even_when_the_work_stalls() -> None:
    bus = RecordingBus()
    stalled = threading.Event()
    with ProgressTracker("j", bus, interval=0.05) as tracker:
        tracker.set_phase("uploading", bytes_total=100)
        tracker.add(10)
        stalled.wait(0.5)  # the engine makes no call for a while
    # one at entry, one at exit, and several from the timer in between
    assert len(bus.history) >= 4
    assert bus.latest("j") == bus.history[-1]
    assert bus.history[-1]["bytes_done"] == 10


def test_a_failing_bus_or_listener_never_breaks_the_job() -> None:
    class BrokenBus(MemoryProgressBus):
        def publish(self, job_id: str, snapshot: dict[str, Any]) -> None:
            raise ConnectionError("redis is down")

    def broken_listener(_snap: dict[str, Any]) -> None:
        raise RuntimeError("db is down")

    with ProgressTracker("j", BrokenBus(), interval=0.01, listeners=[broken_listener]) as t:
        t.add(1)
        time.sleep(0.05)
    assert t.published >= 2

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


def test_finish_keeps_the_last_working_phase_as_done_and_total() -> None:
    tracker = ProgressTracker("j", None)
    tracker.set_phase("backing up", bytes_total=1000, files_total=10)
    tracker.add(900, files=9)
    tracker.set_phase("writing manifest")  # no work counted here
    tracker.finish()
    snap = tracker.snapshot()
    assert snap["phase"] == "done"
    assert snap["bytes_done"] == snap["bytes_total"] == 900
    assert snap["files_done"] == snap["files_total"] == 9
    assert snap["estimated"] is False and snap["rate_bytes_per_s"] > 0


def test_an_expected_phase_gets_estimated_totals_that_grow_with_the_work() -> None:
    tracker = ProgressTracker("j", None)
    tracker.expect("backup", 100, 2)
    tracker.set_phase("indexing")
    assert tracker.snapshot()["bytes_total"] is None  # another phase: no estimate
    tracker.set_phase("backup")
    tracker.add(60, 1)
    snap = tracker.snapshot()
    assert (snap["bytes_total"], snap["files_total"], snap["estimated"]) == (100, 2, True)
    tracker.add(90, 2)  # more than estimated: the total follows
    snap = tracker.snapshot()
    assert (snap["bytes_total"], snap["files_total"]) == (150, 3)
    assert snap["eta_seconds"] == 0
    tracker.set_phase("backup")  # an estimate is used once
    assert tracker.snapshot()["bytes_total"] is None


def test_files_only_passes_phases_and_files_but_not_bytes() -> None:
    from common.progress import FilesOnly

    tracker = ProgressTracker("j", None)
    view = FilesOnly(tracker)
    view.set_phase("restoring", bytes_total=10)
    view.add(4096, 1)
    tracker.add(7)
    view.note("hello")
    snap = tracker.snapshot()
    assert (snap["phase"], snap["bytes_done"], snap["files_done"]) == ("restoring", 7, 1)
    assert snap["message"] == "hello"


def test_an_estimate_arriving_while_its_phase_runs_applies_at_once() -> None:
    tracker = ProgressTracker("j", None)
    tracker.set_phase("backing up", estimated=True)
    tracker.add(10, 1)
    tracker.expect("backing up", 1000, 20)
    snap = tracker.snapshot()
    assert (snap["bytes_total"], snap["files_total"], snap["bytes_done"]) == (1000, 20, 10)
    tracker.set_phase("copying", bytes_total=5)
    tracker.expect("copying", 99)  # a phase with real totals keeps them
    assert tracker.snapshot()["bytes_total"] == 5


def test_a_job_s_last_snapshot_is_announced_to_the_readers_of_job_ends() -> None:
    bus = MemoryProgressBus()
    ends = bus.subscribe_ended()
    try:
        bus.publish("j1", {"phase": "reading", "bytes_done": 5})  # not an end
        bus.publish("j1", {"phase": "done", "state": "succeeded"})
        bus.publish("j2", {"phase": "failed", "state": "failed", "error": "disk full"})
        assert ends.next(1.0) == {"job_id": "j1", "state": "succeeded"}
        assert ends.next(1.0) == {"job_id": "j2", "state": "failed"}
        assert ends.next(0.01) is None
    finally:
        ends.close()

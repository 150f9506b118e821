"""``JobEndLoop``: a loop with a long period still steps as soon as a job ends."""

from __future__ import annotations

import threading

from common.jobs.loops import JobEndLoop
from common.progress import MemoryProgressBus


def test_a_job_s_end_wakes_the_loop_before_its_period() -> None:
    bus = MemoryProgressBus()
    steps: list[int] = []
    stepped = threading.Event()

    def step() -> None:
        steps.append(len(steps))
        stepped.set()

    loop = JobEndLoop("test", 3600.0, step, bus)  # its period alone would never come
    loop.start()
    try:
        assert stepped.wait(10) and steps == [0]  # the first step, at start
        stepped.clear()
        bus.publish("j", {"phase": "copying"})  # progress is not an end
        assert not stepped.wait(0.3)
        # the watcher subscribes in its thread: announce until it hears one
        for _ in range(100):
            bus.publish("j", {"phase": "done", "state": "succeeded"})
            if stepped.wait(0.1):
                break
        assert steps[:2] == [0, 1]
    finally:
        loop.stop()


def test_without_a_bus_it_is_a_plain_loop() -> None:
    stepped = threading.Event()
    loop = JobEndLoop("test", 3600.0, stepped.set, None)
    loop.start()
    try:
        assert stepped.wait(10)
    finally:
        loop.stop()

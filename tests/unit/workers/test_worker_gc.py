"""A worker's start is frozen out of the cyclic collector once Celery is ready."""

from __future__ import annotations

import gc

from celery.signals import worker_ready

from workers import worker


def test_the_objects_alive_when_the_worker_is_ready_are_frozen() -> None:
    before = gc.get_freeze_count()
    alive = [{"n": i} for i in range(1000)]  # noqa: F841 - kept alive through the freeze
    try:
        worker_ready.connect(worker.freeze_start, weak=False)
        worker_ready.send(sender=None)
        assert gc.get_freeze_count() >= before + 1000
    finally:
        worker_ready.disconnect(worker.freeze_start)
        gc.unfreeze()

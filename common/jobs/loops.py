"""Background loops in threads: ``Loop`` runs one step periodically; ``HostLoops`` are the
loops of one Docker host that the fleet worker and ``volkeeper serve`` (embedded) start:

- heartbeat every ``VOLKEEPER_HEARTBEAT_SECONDS`` (the host stays online);
- inventory every minute (re-registering the host, volume sizes measured) and at once,
  without sizes, when Docker reports a volume or container event;
- housekeeping every ``VOLKEEPER_SWEEP_SECONDS``: jobs of dead local processes, interrupted
  restores, expired safety snapshots, leftover helper containers, notifications the rate
  limit held back — and the stale-job sweep where this process owns it (``sweep`` says
  who does).

Each loop has its own thread, so a slow inventory (sizes) never delays the heartbeat.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from common.config import Settings
from common.db import Database
from common.jobs import host, sweep
from common.jobs.context import JobContext
from common.jobs.dispatch import Dispatcher
from common.progress import ProgressBus

log = logging.getLogger(__name__)


class Loop:
    """``step()`` every ``every`` seconds (sooner when woken), in a daemon thread; the first
    step at once unless ``at_start`` is False. A failed step is logged, the loop goes on."""

    def __init__(self, name: str, every: float, step: Callable[[], None], *,
                 at_start: bool = True) -> None:
        self.name, self.every, self.step, self.at_start = name, every, step, at_start
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        if not self.at_start:
            self._wake.wait(self.every)
            self._wake.clear()
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:
                log.exception("%s failed; retrying in %ss", self.name, self.every)
            self._wake.wait(self.every)
            self._wake.clear()


class JobEndLoop(Loop):
    """A ``Loop`` also woken by every job's end on the progress bus (``subscribe_ended``):
    the migration coordinator queues a migration's next step at once rather than at its
    next period (the gaps between steps add to the downtime). The period stays, for an
    announcement missed while the bus was down."""

    def __init__(self, name: str, every: float, step: Callable[[], None],
                 bus: ProgressBus | None) -> None:
        super().__init__(name, every, step)
        self.bus = bus
        self._done = threading.Event()
        self._watch = threading.Thread(target=self._watch_ends, daemon=True,
                                       name=f"{name}: job ends")

    def start(self) -> None:
        super().start()
        if self.bus is not None:
            self._watch.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._done.set()
        super().stop(timeout)
        if self._watch.is_alive():
            self._watch.join(timeout)

    def _watch_ends(self) -> None:
        assert self.bus is not None
        while not self._done.is_set():
            try:
                sub = self.bus.subscribe_ended()
                try:
                    while not self._done.is_set():
                        if sub.next(1.0) is not None:
                            self.wake()
                finally:
                    sub.close()
            except Exception as e:  # noqa: BLE001 - the bus is down: the period still works
                log.debug("%s: job ends not heard (%s); retrying", self.name, e)
                self._done.wait(1.0)


def sweep_loop(db: Database, settings: Settings, every: float | None = None,
               dispatcher: Dispatcher | None = None) -> Loop:
    """The stale-job sweep every ``VOLKEEPER_SWEEP_SECONDS`` (``every`` overrides it);
    with a ``dispatcher`` it also sends the tasks of long-waiting queued jobs again."""
    requeue = sweep.Requeue(db, dispatcher, settings) if dispatcher is not None else None

    def step() -> None:
        sweep.sweep_stale(db, settings)
        if requeue is not None:
            requeue()

    return Loop("stale-job sweep", every or settings.sweep_seconds, step)


class HostLoops:
    """The background loops of one host. ``start()`` registers the host (and takes an
    inventory) before it returns; ``stop()`` ends the loops."""

    def __init__(self, ctx: JobContext, *, sweep: bool, inventory_every: float = 60.0) -> None:
        self.ctx = ctx
        self.owns_sweep = sweep
        s = ctx.settings
        self._full_every = inventory_every
        self._next_full = 0.0
        self._stop = threading.Event()
        self._inventory = Loop("inventory", inventory_every, self._inventory_step)
        self._loops = [
            Loop("heartbeat", s.heartbeat_seconds, lambda: host.heartbeat(ctx)),
            self._inventory,
            Loop("housekeeping", s.sweep_seconds, self._housekeeping),
        ]
        self._events = threading.Thread(target=self._watch_events, name="docker-events",
                                        daemon=True)
        self._events_since = time.time()

    def start(self) -> None:
        self._events_since = time.time() - 1  # events from here on are replayed, none lost
        try:
            host.arrive(self.ctx, with_sizes=True)
            self._next_full = time.monotonic() + self._full_every
            self._inventory.at_start = False  # just taken
        except Exception:
            log.exception("host %s: registration failed; will retry", self.ctx.host)
        for loop in self._loops:
            loop.start()
        self._events.start()

    def stop(self) -> None:
        self._stop.set()
        for loop in self._loops:
            loop.stop()
        self._events.join(timeout=0.5)  # may sit in a Docker read: a daemon thread

    def _inventory_step(self) -> None:
        if time.monotonic() >= self._next_full:
            self._next_full = time.monotonic() + self._full_every
            if host.register(self.ctx):
                host.refresh_inventory(self.ctx, with_sizes=True)
        else:  # woken by a Docker event
            host.refresh_inventory(self.ctx, with_sizes=False)

    def _housekeeping(self) -> None:
        if self.owns_sweep:
            sweep.sweep_stale(self.ctx.db, self.ctx.settings)
        host.fail_orphaned(self.ctx)
        host.recover_interrupted(self.ctx)
        host.remove_leftovers(self.ctx)
        host.prune_safety_snapshots(self.ctx)
        host.sweep_helper_containers(self.ctx)
        from common import notify

        notify.flush_pending(self.ctx.db, self.ctx.settings)

    def _watch_events(self) -> None:
        """Refresh the inventory on volume and container life-cycle events. Each (re)connect
        asks for the events since the last one seen (or since ``start()``), so an event that
        happens while the stream is down or not yet open is never lost."""
        while not self._stop.is_set():
            try:
                for event in self.ctx.docker.events(["volume", "container"],
                                                    since=self._events_since):
                    if self._stop.is_set():
                        return
                    self._events_since = max(self._events_since, float(event.get("time", 0)))
                    self._inventory.wake()
            except Exception as e:  # noqa: BLE001 - reconnect after a pause
                log.debug("docker events stream ended: %s", e)
            self._stop.wait(1)

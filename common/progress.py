"""Live progress of running jobs.

A ``ProgressTracker`` is what the engine talks to: it counts bytes and files, knows the
phase, computes rate and ETA, and publishes a snapshot at a fixed interval (default 0.5 s,
from its own timer thread, so a stalled upload still reports). A ``ProgressBus`` carries
snapshots from workers to readers: ``RedisProgressBus`` in the fleet (last value under a key
plus pub/sub), ``MemoryProgressBus`` embedded (same process). Readers that follow a job
(the API's event stream) ``subscribe`` and are woken by each new snapshot instead of polling.
A job's last snapshot (the one with its ``state``) is also announced to ``subscribe_ended``
readers as ``{"job_id": …, "state": …}``: the migration coordinator advances at once.

Totals: a phase's ``bytes_total``/``files_total`` are in the units its ``add`` calls count.
Where only an estimate is known (a quick pre-scan, the parent snapshot's size) the phase is
``estimated``: its totals grow with the work done when it passes them. A lower layer that
names its own phases (the repository's "backup") gets its estimate through ``expect``.
``finish`` ends the job's progress with the work of its last working phase: done equals
total, whatever the estimate was.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

Snapshot = dict[str, Any]


class Subscription(Protocol):
    def next(self, timeout: float) -> Snapshot | None:
        """The next published snapshot, or None when none came within ``timeout`` s."""
        ...

    def close(self) -> None: ...


class ProgressBus(Protocol):
    def publish(self, job_id: str, snapshot: Snapshot) -> None: ...

    def latest(self, job_id: str) -> Snapshot | None: ...

    def subscribe(self, job_id: str) -> Subscription: ...

    def subscribe_ended(self) -> Subscription:
        """Every job's end (its snapshot with ``state``) as ``{"job_id", "state"}``."""
        ...


#: the subscription key (Redis channel) of job ends
ENDED = "volkeeper:jobs:ended"


def _ended(job_id: str, snapshot: Snapshot) -> Snapshot | None:
    state = snapshot.get("state")
    return {"job_id": job_id, "state": state} if state is not None else None


class _MemorySubscription:
    def __init__(self, bus: MemoryProgressBus, job_id: str) -> None:
        self.bus, self.job_id = bus, job_id
        self.queue: queue.Queue[Snapshot] = queue.Queue(maxsize=64)

    def next(self, timeout: float) -> Snapshot | None:
        try:
            return self.queue.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return None

    def close(self) -> None:
        with self.bus._lock:
            subs = self.bus._subs.get(self.job_id, [])
            if self in subs:
                subs.remove(self)


class MemoryProgressBus:
    """In-process bus for embedded mode and tests."""

    def __init__(self) -> None:
        self._data: dict[str, Snapshot] = {}
        self._subs: dict[str, list[_MemorySubscription]] = {}
        self._lock = threading.Lock()

    def publish(self, job_id: str, snapshot: Snapshot) -> None:
        ended = _ended(job_id, snapshot)
        with self._lock:
            self._data[job_id] = snapshot
            deliveries = [(s, snapshot) for s in self._subs.get(job_id, [])]
            if ended is not None:
                deliveries += [(s, ended) for s in self._subs.get(ENDED, [])]
            for sub, snap in deliveries:
                with contextlib.suppress(queue.Full):  # a stalled reader misses snapshots
                    sub.queue.put_nowait(snap)

    def latest(self, job_id: str) -> Snapshot | None:
        with self._lock:
            return self._data.get(job_id)

    def subscribe(self, job_id: str) -> Subscription:
        sub = _MemorySubscription(self, job_id)
        with self._lock:
            self._subs.setdefault(job_id, []).append(sub)
        return sub

    def subscribe_ended(self) -> Subscription:
        return self.subscribe(ENDED)


class _RedisSubscription:
    def __init__(self, client: Any, channel: str) -> None:
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)
        self._pubsub.subscribe(channel)

    def next(self, timeout: float) -> Snapshot | None:
        msg = self._pubsub.get_message(timeout=max(timeout, 0.0))
        if not msg or msg.get("type") != "message":
            return None
        data: Snapshot = json.loads(msg["data"])
        return data

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._pubsub.close()


class RedisProgressBus:
    """Last snapshot under ``volkeeper:progress:<job>`` (expires after a day), and each
    snapshot also published on the channel of the same name."""

    ttl_seconds = 86400

    def __init__(self, url: str) -> None:
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)

    @staticmethod
    def key(job_id: str) -> str:
        return f"volkeeper:progress:{job_id}"

    def publish(self, job_id: str, snapshot: Snapshot) -> None:
        payload = json.dumps(snapshot)
        pipe = self._redis.pipeline()
        pipe.set(self.key(job_id), payload, ex=self.ttl_seconds)
        pipe.publish(self.key(job_id), payload)
        ended = _ended(job_id, snapshot)
        if ended is not None:
            pipe.publish(ENDED, json.dumps(ended))
        pipe.execute()

    def latest(self, job_id: str) -> Snapshot | None:
        raw = self._redis.get(self.key(job_id))
        return json.loads(raw) if raw else None

    def subscribe(self, job_id: str) -> Subscription:
        return _RedisSubscription(self._redis, self.key(job_id))

    def subscribe_ended(self) -> Subscription:
        return _RedisSubscription(self._redis, ENDED)


class ProgressTracker:
    """Counts work done and publishes snapshots every ``interval`` seconds.

    Use as a context manager: the timer thread runs inside the block and a final snapshot
    is published on exit. ``listeners`` are called with every published snapshot (the
    worker uses one to refresh the job's heartbeat). Publishing errors never break the job.
    """

    def __init__(
        self,
        job_id: str,
        bus: ProgressBus | None,
        interval: float = 0.5,
        listeners: list[Callable[[Snapshot], None]] | None = None,
    ) -> None:
        self.job_id = job_id
        self.bus = bus
        self.interval = interval
        self.listeners = listeners or []
        self.phase = "starting"
        self.bytes_done = 0
        self.bytes_total: int | None = None
        self.files_done = 0
        self.files_total: int | None = None
        self.estimated = False
        self.message: str | None = None
        self._expected: dict[str, tuple[int | None, int | None]] = {}
        #: the last phase that counted work: (bytes, files, seconds)
        self._work: tuple[int, int, float] | None = None
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._phase_started = self._started
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.published = 0

    # --- what the engine calls -------------------------------------------------------
    def set_phase(
        self, phase: str, bytes_total: int | None = None, files_total: int | None = None,
        *, estimated: bool = False,
    ) -> None:
        """Start ``phase`` with its totals (``estimated``: a guess that the work done may
        pass). Without totals, those ``expect`` gave this phase are used."""
        with self._lock:
            self._remember_work()
            if bytes_total is None and files_total is None and phase in self._expected:
                bytes_total, files_total = self._expected.pop(phase)
                estimated = True
            self.phase = phase
            self.bytes_total = bytes_total
            self.files_total = files_total
            self.estimated = estimated
            self.bytes_done = 0
            self.files_done = 0
            self._phase_started = time.monotonic()

    def expect(self, phase: str, bytes_total: int | None = None,
               files_total: int | None = None) -> None:
        """Estimated totals for ``phase``: at once when it is running without totals of
        its own (or with estimated ones), else when it starts (once) without totals."""
        with self._lock:
            if self.phase == phase and (self.estimated or (
                    self.bytes_total is None and self.files_total is None)):
                self.bytes_total, self.files_total = bytes_total, files_total
                self.estimated = True
            else:
                self._expected[phase] = (bytes_total, files_total)

    def finish(self, phase: str = "done") -> None:
        """End with ``phase``, keeping the work of the last phase that counted any: its
        bytes and files done, which are now also the totals (the job is complete)."""
        with self._lock:
            self._remember_work()
            nbytes, files, seconds = self._work or (0, 0, 0.0)
            self.phase = phase
            self.bytes_done = self.bytes_total = nbytes
            self.files_done = self.files_total = files
            self.estimated = False
            self._expected.clear()
            self._phase_started = time.monotonic() - seconds

    def _remember_work(self) -> None:
        if self.bytes_done or self.files_done:
            self._work = (self.bytes_done, self.files_done,
                          time.monotonic() - self._phase_started)

    def add(self, nbytes: int = 0, files: int = 0) -> None:
        with self._lock:
            self.bytes_done += nbytes
            self.files_done += files

    def note(self, message: str) -> None:
        with self._lock:
            self.message = message

    def checkpoint(self) -> None:
        """A safe point without progress to report (right before a backup commits): a
        job that was asked to stop stops here (see ``common.jobs.runner``); a plain
        tracker does nothing."""

    @contextlib.contextmanager
    def shielded(self) -> Iterator[None]:
        """Clean-up work (a rollback) that a cancellation must not interrupt: inside the
        block the progress calls do not raise for a cancelled job (see
        ``common.jobs.runner``); a plain tracker never raises anyway."""
        yield

    # --- snapshots ---------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        with self._lock:
            now = time.monotonic()
            elapsed = max(now - self._phase_started, 1e-6)
            rate = self.bytes_done / elapsed
            bytes_total, files_total = self.bytes_total, self.files_total
            if self.estimated:  # refined as the work proceeds: never below what is done
                if bytes_total is not None:
                    bytes_total = max(bytes_total, self.bytes_done)
                if files_total is not None:
                    files_total = max(files_total, self.files_done)
            eta = None
            if bytes_total and rate > 0:
                eta = max(bytes_total - self.bytes_done, 0) / rate
            return {
                "phase": self.phase,
                "bytes_done": self.bytes_done,
                "bytes_total": bytes_total,
                "files_done": self.files_done,
                "files_total": files_total,
                "percent": None if not bytes_total else
                round(min(100 * self.bytes_done / bytes_total, 100.0), 1),
                "estimated": self.estimated,
                "rate_bytes_per_s": round(rate, 1),
                "eta_seconds": None if eta is None else round(eta, 1),
                "elapsed_seconds": round(now - self._started, 3),
                "message": self.message,
                "updated_at": time.time(),
            }

    def publish(self) -> Snapshot:
        snap = self.snapshot()
        # Progress must never fail a job: publishing errors are swallowed.
        if self.bus is not None:
            with contextlib.suppress(Exception):
                self.bus.publish(self.job_id, snap)
        for listener in self.listeners:
            with contextlib.suppress(Exception):
                listener(snap)
        self.published += 1
        return snap

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.publish()

    def __enter__(self) -> ProgressTracker:
        self.publish()
        self._thread = threading.Thread(target=self._run, name=f"progress-{self.job_id}",
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.publish()


class NullTracker(ProgressTracker):
    """A tracker that publishes nowhere (for tests and library use)."""

    def __init__(self) -> None:
        super().__init__("-", None, interval=3600)


class FilesOnly(ProgressTracker):
    """A view of ``inner`` for a lower layer whose byte counts are in other units than the
    phase's total (an archive reader counts decompressed tar bytes; the engine counts the
    stored bytes it reads itself): phases, notes and files pass on, bytes do not."""

    def __init__(self, inner: ProgressTracker) -> None:
        super().__init__(inner.job_id, None, interval=3600)
        self.inner = inner

    def set_phase(
        self, phase: str, bytes_total: int | None = None, files_total: int | None = None,
        *, estimated: bool = False,
    ) -> None:
        self.inner.set_phase(phase, bytes_total, files_total, estimated=estimated)

    def add(self, nbytes: int = 0, files: int = 0) -> None:
        if files:
            self.inner.add(0, files)

    def note(self, message: str) -> None:
        self.inner.note(message)

    def checkpoint(self) -> None:
        self.inner.checkpoint()

    @contextlib.contextmanager
    def shielded(self) -> Iterator[None]:
        with self.inner.shielded():
            yield

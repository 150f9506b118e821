"""The migration coordinator: drives each active migration through its steps by queueing
ordinary child jobs on the hosts' workers (through the job services: the same queueing,
locks, heartbeats, cancel and recovery as any job) and advancing when they finish.

Each step's child job id is written to the migration's ``steps`` right after it is
queued, so ``advance`` is a pure function of the database: any process can resume a
migration after a crash. One process drives a migration at a time (a lease named
``migration/ID``). It runs in the served API (fleet and ``volkeeper serve``:
``coordinator_loop``) and, embedded, in the ``volkeeper migrate`` command itself.

Forward steps: ``precopy.backup`` (source host) → ``precopy.restore`` (destination host,
the new volume with its driver and options) → catch-up rounds ``catchup.backup.N`` (source,
still running) and ``catchup.apply.N`` (destination: in-place sync) where they shorten a
downtime (``migration_catchup``) → ``cutover.backup`` (source: stop the
containers with ``--cutover stop``, final incremental backup) → ``cutover.apply``
(destination: in-place sync) → ``verify`` (destination vs the final snapshot) →
``finish.retire`` (``--remove-source`` only). A step that fails (or a cancel) turns the
migration to its rollback steps: ``rollback.restore_source`` (a manual rollback after
``--remove-source``, or a ``finish.retire`` that did not finish: ``rollback.check_source``
looks whether the source is still there first), ``rollback.start_containers``,
``rollback.remove_destination`` (last: the source's side is whole again even while the
destination's host is away)."""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from common.db import Job, JobState, jobs, leases
from common.db.clock import now as db_time
from common.db.migration_rows import FINAL_STATES, Migration
from common.db.models import utcnow
from common.errors import Conflict, Unavailable, VolkeeperError
from common.jobs.inprocess import InProcessDispatcher
from common.jobs.loops import JobEndLoop, Loop
from common.jobs.migration_plan import (
    FORWARD,
    ROLLBACK,
    Step,
    absorb,
    actor,
    carried,
    report_of,
    rolling_back,
)
from common.jobs.operations import OperationsService
from common.progress import ProgressBus

log = logging.getLogger(__name__)

#: how long a forward step waits for a busy volume or an offline host before it fails
WAIT_SECONDS = 120.0
LEASE_TTL = timedelta(seconds=60)


class Coordinator:
    """Advances migrations; ``holder`` names this process in the leases."""

    def __init__(self, ops: OperationsService, holder: str | None = None,
                 observer: Callable[[str, Migration], None] | None = None) -> None:
        self.ops = ops
        self.db = ops.db
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        #: called with (step, migration) before a step is queued (tests inject faults)
        self.observer = observer

    def tick(self) -> None:
        """Advance every active migration this process can lease."""
        with self.db.session() as s:
            ids = list(s.scalars(select(Migration.id).where(
                Migration.state.in_(("queued", "running")))))
        for mid in ids:
            try:
                self.advance(mid)
            except Exception:
                log.exception("migration %s: could not advance; trying again", mid)

    def run(self, mid: str, poll: float = 0.2, timeout: float | None = None) -> Migration:
        """Drive one migration to its end here (the embedded command)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        mark = 0
        while True:
            m = self.advance(mid)
            if m.state in FINAL_STATES:
                return m
            if deadline is not None and time.monotonic() > deadline:
                return m
            mark = self.pause(mark, poll)

    def pause(self, mark: int, poll: float) -> int:
        """Until a job of this process ends (embedded: no polling meanwhile, which slows
        the running step), at most a second; else ``poll`` seconds. ``mark``: what the
        last call returned (0 at first)."""
        if isinstance(self.ops.dispatcher, InProcessDispatcher):
            return self.ops.dispatcher.wait_ended(mark, max(poll, 1.0))
        time.sleep(poll)
        return mark

    def advance(self, mid: str) -> Migration:
        """One step of the state machine (if this process holds the lease)."""
        name = f"migration/{mid}"
        with self.db.session() as s:
            now = db_time(s)
        if leases.acquire(self.db, name, self.holder, LEASE_TTL, now) is None:
            return self._load(mid)
        m = self._load(mid)
        if m.state in FINAL_STATES:
            leases.release(self.db, name, self.holder)
            return m
        if m.state == "queued" and not self._may_start(m):
            return m  # its evacuation already moves as many volumes as it may
        if m.state == "queued":
            self._update(mid, state="running", started_at=utcnow())
            m = self._load(mid)
        self._step(m)
        m = self._load(mid)
        if m.state in FINAL_STATES:
            leases.release(self.db, name, self.holder)
        return m

    def _may_start(self, m: Migration) -> bool:
        if m.batch is None:
            return True
        limit = int((m.report or {}).get("concurrency") or 2)
        with self.db.session() as s:
            running = len(list(s.scalars(select(Migration.id).where(
                Migration.batch == m.batch, Migration.state == "running"))))
        return running < limit

    # --- the state machine ------------------------------------------------------------
    def _step(self, m: Migration) -> None:
        back = rolling_back(m)
        if not back and m.cancel_requested_by:
            if self._active_child(m):
                return  # cancelled, not ended yet: roll back once it has stopped
            self._fail(m, None, f"cancelled by {m.cancel_requested_by}")
            self._step(self._load(m.id))  # on to the rollback steps at once
            return
        for step in ROLLBACK if back else FORWARD:
            if not step.applies(m):
                continue
            job_id = (m.steps or {}).get(step.name)
            if job_id is None:
                if self._submit(m, step, back):  # a job that ran it already (``carried``)
                    self._step(self._load(m.id))
                return
            with self.db.session() as s:
                job = jobs.get_job(s, job_id)
            if not job.state.finished:
                return
            if job.state != JobState.succeeded:
                if back:
                    self._rollback_failed(m, step, job)
                    return
                failed = carried(step.name, job)
                if failed is not None:  # its job failed in the next step it ran
                    self._absorb(m, step, job)
                    self._update(m.id, steps=dict(m.steps or {}) | {failed: job.id})
                    m = self._load(m.id)
                self._fail(m, failed or step.name, job.error or str(job.state), job)
                self._step(self._load(m.id))
                return
            if step.name not in (m.report or {}).get("absorbed", []):
                self._absorb(m, step, job)
                m = self._load(m.id)
                if not back and m.cancel_requested_by:
                    self._fail(m, None, f"cancelled by {m.cancel_requested_by}")
                    self._step(self._load(m.id))
                    return
        self._finish(m, back)

    def _submit(self, m: Migration, step: Step, back: bool) -> bool:
        """Queue ``step``'s job and name it in the migration's steps; True when that job
        has already finished (the step was run by an earlier step's job)."""
        if self.observer is not None:
            self.observer(step.name, m)
        try:
            job = step.submit(self.ops, m)
        except (Conflict, Unavailable) as e:
            orphan = self._orphan(m)
            if orphan is not None:  # queued by a process that died before recording it
                self._update(m.id, steps=dict(m.steps or {}) | {step.name: orphan})
                return False
            waits = dict(report_of(m, "waiting") or {})
            since = waits.setdefault(step.name, time.time())
            if back or time.time() - since < WAIT_SECONDS:
                self._patch_report(m, {"waiting": waits})
                return False
            self._fail(m, step.name, f"could not queue it: {e.message}")
            return False
        except VolkeeperError as e:
            if back:
                self._patch_report(m, {"rollback_errors": [f"{step.name}: {e.message}"]})
                self._update(m.id, state="failed", finished_at=utcnow(),
                             reason=f"{m.reason}; rollback step {step.name} could not be "
                             f"queued: {e.message}")
            else:
                self._fail(m, step.name, e.message)
            return False
        steps = dict(m.steps or {}) | {step.name: job.id}
        self._update(m.id, steps=steps)
        log.info("migration %s: %s is job %s", m.id, step.name, job.id)
        return job.state.finished

    def _active_child(self, m: Migration) -> bool:
        with self.db.session() as s:
            return any(not jobs.get_job(s, jid).state.finished
                       for jid in (m.steps or {}).values())

    def _orphan(self, m: Migration) -> str | None:
        """An active child job of ``m`` that its steps do not name (a migration has one
        active child at a time, so it is the one this step queued before a crash)."""
        known = set((m.steps or {}).values())
        with self.db.session() as s:
            ids = s.scalars(select(Job.id).where(
                Job.requested_by == actor(m),
                Job.state.in_((JobState.queued, JobState.running))))
            return next((i for i in ids if i not in known), None)

    def _absorb(self, m: Migration, step: Step, job: Job) -> None:
        patch = absorb(m, step.name, job)
        patch["absorbed"] = [*((m.report or {}).get("absorbed") or []), step.name]
        if step.name == "verify":
            stopped_at = report_of(m, "stopped_at")
            fin = job.finished_at.timestamp() if job.finished_at else time.time()
            self._update(m.id, verify_outcome="passed",
                         downtime_seconds=round(fin - stopped_at, 3) if stopped_at else None)
        self._patch_report(m, patch)

    def _fail(self, m: Migration, step: str | None, error: str, job: Job | None = None
              ) -> None:
        """A forward step failed (or a cancel): turn to the rollback steps."""
        reason = error if step is None else f"{step} failed: {error}"
        if step == "verify":
            self._update(m.id, verify_outcome="failed")
        left = (job.result or {}).get(jobs.STOPPED_KEY) if job is not None else None
        if step == "cutover.backup" and left:
            # its worker died with the containers down: the rollback starts them (the
            # host's recovery may too; starting a running container changes nothing)
            self._patch_report(m, {"containers_stopped": list(left)})
        if "finish.retire" in (m.steps or {}):
            # the source may be gone (killed after its safety backup): the rollback
            # looks, and restores it from that backup if so, before anything else
            noted = (job.result or {}).get("safety_backup_id") if job is not None else None
            self._patch_report(m, {"source_removal_unknown": True}
                               | ({"safety_backup_id": noted} if noted else {}))
        self._patch_report(m, {"failure": {"step": step, "error": error,
                                           "job": job.id if job else None,
                                           "cancelled": bool(m.cancel_requested_by) or (
                                               job is not None and
                                               job.state == JobState.cancelled)}})
        self._update(m.id, reason=reason)
        log.warning("migration %s: %s; rolling back", m.id, reason)

    def _rollback_failed(self, m: Migration, step: Step, job: Job) -> None:
        self._update(m.id, state="failed", finished_at=utcnow(), reason=(
            f"{m.reason or 'rollback'}; rollback step {step.name} failed (job {job.id}): "
            f"{job.error} — finish it by hand (see the migration's report)"))

    def _finish(self, m: Migration, back: bool) -> None:
        if not back:
            self._update(m.id, state="succeeded", finished_at=utcnow())
            return
        failure = report_of(m, "failure") or {}
        state = "cancelled" if failure.get("cancelled") else "rolled_back"
        reason = (f"rolled back by {m.rollback_requested_by}"
                  if m.rollback_requested_by and not failure else m.reason)
        self._update(m.id, state=state, finished_at=utcnow(), reason=reason)

    # --- rows --------------------------------------------------------------------------
    def _load(self, mid: str) -> Migration:
        from common.jobs.migrations import get_migration

        with self.db.session() as s:
            m = get_migration(s, mid)
            s.expunge(m)
            return m

    def _update(self, mid: str, **values: Any) -> None:
        with self.db.session() as s:
            m = s.get(Migration, mid, with_for_update=True)
            assert m is not None
            for k, v in values.items():
                setattr(m, k, v)

    def _patch_report(self, m: Migration, patch: dict[str, Any]) -> None:
        with self.db.session() as s:
            row = s.get(Migration, m.id, with_for_update=True)
            assert row is not None
            row.report = dict(row.report or {}) | patch


_loops: list[Loop] = []


def coordinator_loop(ops: OperationsService, every: float = 0.5,
                     bus: ProgressBus | None = None) -> Loop:
    """The loop that drives every active migration (the served API runs one; each
    process's coordinator takes a migration's lease before it acts on it); with ``bus``,
    woken as soon as any job ends."""
    loop = JobEndLoop("migration coordinator", every, Coordinator(ops).tick, bus)
    _loops.append(loop)
    return loop


def wake() -> None:
    """Nudge this process's coordinator loops (a migration was submitted or changed)."""
    for loop in _loops:
        loop.wake()

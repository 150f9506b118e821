"""Running one job: load it, mark it running, track progress, call its body, record the
outcome on the job row. Every path ends in a finished job row; no traceback reaches a user.

A job is *fenced* when this process no longer owns it — the sweep or an operator failed
it, or its heartbeat could not be written for the stale-job window: its tracker then
raises ``Fenced`` at the body's next progress call, and nothing of it is recorded (see
``common.db.jobs`` and ``owners``).

A job is *cancelled* when someone asked it to stop (``volkeeper cancel``,
``POST /jobs/{id}/cancel``): the heartbeat path polls ``jobs.cancel_requested`` and the
tracker raises ``JobCancelled`` at the body's next progress call — the same safe points
where a failure can happen, so the engine cleans up as after a failure (a half restore is
undone, a repository backup writes no snapshot, stopped containers start again). The job
then ends ``cancelled``. A body that finished its work before it noticed ends as usual."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, NamedTuple

from common.db import JobState, jobs
from common.db.jobs import Fenced
from common.db.models import Job
from common.errors import OUTCOME, JobCancelled, RolledBack, VolkeeperError
from common.jobs import owners
from common.jobs.context import JobContext
from common.progress import ProgressBus, ProgressTracker, Snapshot

log = logging.getLogger(__name__)

worker_name = owners.worker_name

__all__ = ["Fenced", "FencedTracker", "JobBody", "Outcome", "fail_job", "run_job",
           "worker_name"]


class Outcome(NamedTuple):
    """What a job body returns: the job row's result, and the backup it made (if any)."""

    result: dict[str, Any]
    backup_id: str | None = None


JobBody = Callable[[JobContext, Job, ProgressTracker], Outcome]


class FencedTracker(ProgressTracker):
    """A tracker that can be fenced: once ``fence(reason)`` was called, every progress
    call of the body (``set_phase``, ``add``, ``note``) raises ``Fenced``. Once
    ``cancel(by)`` was called, they raise ``JobCancelled`` — except inside ``shielded()``
    (a rollback that must finish)."""

    def __init__(self, job_id: str, bus: ProgressBus | None, interval: float,
                 listeners: list[Callable[[Snapshot], None]] | None = None) -> None:
        super().__init__(job_id, bus, interval, listeners=listeners)
        self.fenced: str | None = None
        self.cancelled: str | None = None
        self._shields = 0

    def fence(self, reason: str) -> None:
        if self.fenced is None:
            self.fenced = reason

    def cancel(self, by: str) -> None:
        if self.cancelled is None:
            self.cancelled = by

    @contextlib.contextmanager
    def shielded(self) -> Iterator[None]:
        self._shields += 1
        try:
            yield
        finally:
            self._shields -= 1

    def _check(self) -> None:
        if self.fenced is not None:
            raise Fenced(f"job {self.job_id} was stopped: {self.fenced}",
                         "nothing of it was recorded; see the job (volkeeper job ID)")
        if self.cancelled is not None and not self._shields:
            raise JobCancelled(f"job {self.job_id} was cancelled by {self.cancelled}",
                               "nothing of it was recorded as a good result; submit it "
                               "again when needed")

    def checkpoint(self) -> None:
        self._check()

    def set_phase(self, phase: str, bytes_total: int | None = None,
                  files_total: int | None = None, *, estimated: bool = False) -> None:
        self._check()
        super().set_phase(phase, bytes_total, files_total, estimated=estimated)

    def expect(self, phase: str, bytes_total: int | None = None,
               files_total: int | None = None) -> None:
        self._check()
        super().expect(phase, bytes_total, files_total)

    def add(self, nbytes: int = 0, files: int = 0) -> None:
        self._check()
        super().add(nbytes, files)

    def note(self, message: str) -> None:
        self._check()
        super().note(message)


#: how often a running job writes its heartbeat (and progress) to its row
HEARTBEAT_EVERY = 3.0
#: how often a running job looks whether someone asked it to stop
CANCEL_POLL_EVERY = 1.0


class _Heartbeat:
    """Writes progress and a heartbeat (database time) to the job row every ``every``
    seconds — the stale-job sweep's signal. A heartbeat that updates no row (the job is no
    longer running under this worker) fences the job; so does failing to write one for
    ``stale_after`` seconds (the sweep fails such a job anyway)."""

    def __init__(self, ctx: JobContext, job_id: str, worker: str, tracker: FencedTracker,
                 every: float | None = None, stale_after: float | None = None) -> None:
        self.ctx, self.job_id, self.worker, self.tracker = ctx, job_id, worker, tracker
        self.every = HEARTBEAT_EVERY if every is None else every
        self.stale_after = stale_after if stale_after is not None else \
            ctx.settings.stale_job_seconds
        self._last = 0.0
        self._last_poll = 0.0
        self._last_ok = time.monotonic()
        self._failing = False

    def __call__(self, snap: Snapshot) -> None:
        now = time.monotonic()
        if self.tracker.fenced is not None:
            return
        if now - self._last_poll >= CANCEL_POLL_EVERY and self.tracker.cancelled is None:
            self._last_poll = now
            self._poll_cancel()
        if now - self._last < self.every:
            return
        self._last = now
        try:
            with self.ctx.db.session() as s:
                ours = jobs.heartbeat(s, self.job_id, snap, self.worker)
                why = "" if ours else jobs.whose(s, self.job_id)
        except Exception as e:  # noqa: BLE001 - judged below, never swallowed for good
            if not self._failing:
                log.warning("job %s: could not record a heartbeat: %s", self.job_id, e)
                self._failing = True
            if now - self._last_ok >= self.stale_after:
                self._fence(f"no heartbeat could be recorded for {int(now - self._last_ok)}s "
                            f"(database unreachable: {type(e).__name__})")
            return
        if not ours:
            self._fence(f"it is no longer running under this worker ({why})")
            return
        if self._failing:
            log.info("job %s: heartbeats are recorded again", self.job_id)
        self._failing, self._last_ok = False, now

    def _poll_cancel(self) -> None:
        try:
            with self.ctx.db.session() as s:
                by = jobs.cancel_requested(s, self.job_id)
        except Exception:  # noqa: BLE001 - the heartbeat judges an unreachable database
            return
        if by is not None:
            log.warning("job %s: cancelled by %s; stopping at the next safe point",
                        self.job_id, by)
            self.tracker.cancel(by)

    def _fence(self, reason: str) -> None:
        log.warning("job %s is fenced and stops at its next progress call: %s",
                    self.job_id, reason)
        self.tracker.fence(reason)


def run_job(ctx: JobContext, job_id: str, body: JobBody) -> None:
    """Run ``body`` as job ``job_id`` on this host; a job that already ran (or runs) is
    skipped."""
    with owners.running_here(job_id) as first:
        if not first:
            log.info("job %s already runs in this process; duplicate message dropped", job_id)
            return
        fenced = _run(ctx, job_id, body)
    # its outcome is recorded: tell people if that changes a state (no channel: nothing
    # is observed, and the notifier with its mail and webhook code does not load)
    if not fenced and ctx.settings.notifications_on:
        from common import notify

        notify.job_finished(ctx.db, ctx.settings, job_id)
    if fenced:
        # this process no longer runs it, so it counts as dead: an interrupted restore it
        # left is undone now (the volume stayed locked) rather than at the next housekeeping
        from common.jobs import host

        try:
            host.recover_interrupted(ctx, only=job_id)
        except Exception:
            log.exception("job %s: recovery after it was stopped failed", job_id)


def _run(ctx: JobContext, job_id: str, body: JobBody) -> bool:
    """Run the job; True when it was fenced (stopped without an outcome)."""
    me = worker_name(ctx.host)
    with ctx.db.session() as s:
        job = jobs.start_job(
            s, job_id, me, stale_after=_stale(ctx),
            owner_dead=lambda j: owners.is_dead(s, j))
    if job is None:
        log.info("job %s is not runnable any more (finished, or running on a live worker); "
                 "message dropped", job_id)
        return False
    if job.host != ctx.host:
        fail_job(ctx, job_id, f"job for host {job.host!r} reached the worker of {ctx.host!r}",
                 worker=me)
        return False
    tracker = FencedTracker(job_id, ctx.bus, ctx.settings.progress_interval_seconds)
    tracker.listeners.append(_Heartbeat(ctx, job_id, me, tracker))
    log.info("job %s (%s of %s on %s) started", job_id, job.kind, job.volume, job.host)
    try:
        with tracker:
            result, backup_id = body(ctx, job, tracker)
            tracker.finish()
    except Exception as e:
        if tracker.fenced is not None or isinstance(e, Fenced):
            log.warning("job %s stopped without recording an outcome: %s", job_id,
                        tracker.fenced or e)
            return True
        if tracker.cancelled is not None:
            _cancelled(ctx, job_id, tracker, e, me)
            return False
        if isinstance(e, VolkeeperError):
            log.warning("job %s failed: %s", job_id, e, extra={OUTCOME: True})
            fail_job(ctx, job_id, str(e), tracker.snapshot() | {"phase": "failed"},
                     result=getattr(e, "result", None), worker=me)
        else:
            log.exception("job %s failed with an internal error", job_id)
            fail_job(ctx, job_id, f"internal error ({type(e).__name__}: {e}); see the worker "
                     f"log on host {ctx.host}", tracker.snapshot() | {"phase": "failed"},
                     worker=me)
        return False
    final = tracker.snapshot()
    if tracker.cancelled is not None:  # asked too late: the work was done and recorded
        result = result | {"cancel_requested_by": tracker.cancelled,
                           "cancel": "too late: the job had finished its work"}
    with ctx.db.session() as s:
        done = jobs.finish_job(s, job_id, JobState.succeeded, worker=me, result=result,
                               backup_id=backup_id, progress=final)
        why = "" if done else jobs.whose(s, job_id)
    if done is None:
        log.warning("job %s ended here but is no longer this worker's (%s); its outcome "
                    "is not recorded", job_id, why)
        return True
    ctx.bus.publish(job_id, final | {"state": "succeeded"})
    log.info("job %s succeeded", job_id)
    return False


def _cancelled(ctx: JobContext, job_id: str, tracker: FencedTracker, e: Exception,
               worker: str) -> None:
    """Record a job that stopped because it was cancelled (its body cleaned up as after a
    failure): state ``cancelled``, with what the clean-up said when there is more to say
    than the cancellation itself."""
    why = f"cancelled by {tracker.cancelled}" + _aftermath(e)
    # the outcome, as for a failure: the one-shot CLI prints the job's error itself
    log.warning("job %s %s", job_id, why, extra={OUTCOME: True})
    progress = tracker.snapshot() | {"phase": "cancelled"}
    try:
        with ctx.db.session() as s:
            done = jobs.finish_job(s, job_id, JobState.cancelled, worker=worker, error=why,
                                   progress=progress, result=getattr(e, "result", None))
    except Exception:
        log.exception("could not record the cancellation of job %s", job_id)
        return
    if done is not None:
        with contextlib.suppress(Exception):
            ctx.bus.publish(job_id, progress | {"state": "cancelled", "error": why})


def _aftermath(e: BaseException) -> str:
    """What the error a cancelled body ended with adds to "cancelled by …": a clean-up
    report (rolled back; a volume that could not be emptied again), not the errors the
    interruption itself caused downstream (a reader killed mid-stream)."""
    if isinstance(e, JobCancelled):
        _, sep, rest = e.message.partition("; ")
        return f"; {rest}" if sep else ""
    if isinstance(e, RolledBack):
        return f": {e.message}"
    chain: BaseException | None = e
    while chain is not None:
        if isinstance(chain, JobCancelled):
            return ""
        chain = chain.__cause__ or chain.__context__
    return f": {e}"


def _stale(ctx: JobContext) -> timedelta:
    return timedelta(seconds=ctx.settings.stale_job_seconds)


def fail_job(ctx: JobContext, job_id: str, error: str, progress: dict[str, Any] | None = None,
             result: dict[str, Any] | None = None, *, unless_finished: bool = False,
             worker: str | None = None) -> None:
    """Record the failure of a job and publish it; never raises. With ``worker``, only
    while the job still runs under that worker. ``unless_finished`` is kept for callers
    that crash outside a job (an unfinished job is the only one ever changed)."""
    try:
        with ctx.db.session() as s:
            done = jobs.finish_job(s, job_id, JobState.failed, worker=worker, error=error,
                                   progress=progress, result=result)
    except Exception:
        log.exception("could not record the failure of job %s", job_id)
        done = None
    if done is None:
        if not unless_finished:
            log.warning("job %s: failure not recorded, the job is finished or no longer "
                        "this worker's: %s", job_id, error)
        return
    with contextlib.suppress(Exception):
        ctx.bus.publish(job_id, (progress or {}) | {"state": "failed", "error": error})

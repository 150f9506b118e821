"""The stale-job sweep: fail running jobs whose worker stopped reporting (no heartbeat for
``VOLKEEPER_STALE_JOB_SECONDS``) and queued jobs no worker picked up in time. A failed
restore keeps its volume locked until its host cleans up (``host.recover_interrupted``,
once the restore's process is known dead). Heartbeats are judged by the database's clock,
never this process's; a process whose job was failed here is fenced by its next heartbeat.

Who runs it — one owner per installation:

- **fleet**: the API process (``api.main``, a ``loops.sweep_loop``). The sweep exists to
  notice dead workers, so it must not depend on them: the control plane sees every host's
  jobs and runs while workers come and go. Workers only clean up after their own host
  (``host.fail_orphaned``, ``host.recover_interrupted``).
- **embedded**: ``volkeeper serve`` (its ``loops.HostLoops``); a one-shot command sweeps
  once as it starts (``embedded.EmbeddedRuntime.start``).

The fleet's sweep also sends the task message of a job that waits queued for longer than
``VOLKEEPER_REQUEUE_SECONDS`` again (``requeue_waiting``): Redis keeps its queues in
memory, so a broker restart loses the messages still waiting in it, and their jobs would
otherwise stay queued until the queued-job timeout fails them. A message that was not lost
only makes a duplicate, which the worker drops (``jobs.start_job``).

Several sweepers at once are harmless (rows are taken ``FOR UPDATE SKIP LOCKED``), so two
API replicas need no coordination.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from common.config import Settings
from common.db import Database, jobs
from common.jobs.dispatch import Dispatcher
from common.jobs.names import task_for_kind

log = logging.getLogger(__name__)


def sweep_stale(db: Database, settings: Settings) -> list[str]:
    """One pass of the sweep. Returns the ids of the jobs it failed."""
    with db.session() as s:
        failed = jobs.sweep_stale(
            s, running_after=timedelta(seconds=settings.stale_job_seconds),
            queued_after=timedelta(seconds=settings.queued_job_timeout_seconds))
    for job_id in failed:
        log.warning("job %s failed by the stale-job sweep", job_id)
    if failed:
        from common import notify

        notify.jobs_failed(db, settings, failed)
    return failed


class Requeue:
    """Sends the task of each job waiting queued longer than ``requeue_seconds`` again, at
    most once per ``requeue_seconds`` per job (see the module docstring)."""

    def __init__(self, db: Database, dispatcher: Dispatcher, settings: Settings) -> None:
        self.db, self.dispatcher, self.settings = db, dispatcher, settings
        self._sent: dict[str, float] = {}  # job id → when this process last sent it

    def __call__(self) -> list[str]:
        every = self.settings.requeue_seconds
        with self.db.session() as s:
            waiting = [(j.id, j.kind, j.host)
                       for j in jobs.waiting_jobs(s, older_than=timedelta(seconds=every))]
        now = time.monotonic()
        self._sent = {k: v for k, v in self._sent.items() if k in {w[0] for w in waiting}}
        sent: list[str] = []
        for job_id, kind, host in waiting:
            if now - self._sent.get(job_id, -every) < every:
                continue
            try:
                self.dispatcher.send(task_for_kind(kind), host, {"job_id": job_id})
            except Exception as e:  # noqa: BLE001 - the broker is down: next sweep
                log.warning("could not send job %s again: %s", job_id, e)
                return sent
            self._sent[job_id] = now
            sent.append(job_id)
            log.warning("job %s has waited queued for over %ds: its task was sent again "
                        "(a broker restart loses waiting messages)", job_id, int(every))
        return sent

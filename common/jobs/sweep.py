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

Several sweepers at once are harmless (rows are taken ``FOR UPDATE SKIP LOCKED``), so two
API replicas need no coordination.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from common.config import Settings
from common.db import Database, jobs

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

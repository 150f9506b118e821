"""The operator's override for a stuck lock: ``release_job`` fails the job (if it has not
finished) with "released by operator …" and releases its lock at once, without waiting for
its worker to be known dead. For a job whose process is gone for good (its machine will
not come back) or hangs; a process that still runs it is fenced by its next heartbeat.
``cancel_job`` is the ordinary way to stop a job: its worker cleans up and the job ends
``cancelled``.
"""

from __future__ import annotations

import logging

from common.audit import record
from common.db import Database, jobs
from common.db.models import Job
from common.errors import VolkeeperError

log = logging.getLogger(__name__)
audit = logging.getLogger("volkeeper.audit")


def release_job(db: Database, job_id: str, *, by: str, reason: str | None = None) -> Job:
    """Release job ``job_id``'s lock on behalf of operator ``by``; returns the job.
    ``NotFound`` for an unknown job, ``Conflict`` when it holds no lock."""
    details = {"reason": reason}
    try:
        with db.session() as s:
            job = jobs.release(s, job_id, by=by, reason=reason)
            worker, state, volume = job.worker, job.state, job.volume
    except VolkeeperError as e:
        record(db, by, "job.release", job_id, details, f"error: {e.code}: {e.message}")
        raise
    record(db, by, "job.release", job_id,
           details | {"state": str(state), "worker": worker, "volume": volume}, "ok")
    audit.warning("operator %s released job %s (%s, worker %s, volume %s)%s", by, job_id,
                  state, worker or "(none)", volume, f": {reason}" if reason else "")
    return job


def cancel_job(db: Database, job_id: str, *, by: str) -> Job:
    """Cancel job ``job_id`` on behalf of ``by``: a queued one ends ``cancelled`` now, a
    running one is asked to stop (its worker stops at the next safe point, within a few
    seconds, and the job then ends ``cancelled``). ``NotFound`` for an unknown job,
    ``Conflict`` (HTTP 409) for a finished one. Audited."""
    try:
        with db.session() as s:
            job = jobs.request_cancel(s, job_id, by=by)
            state, volume = job.state, job.volume
    except VolkeeperError as e:
        record(db, by, "job.cancel", job_id, {}, f"error: {e.code}: {e.message}")
        raise
    record(db, by, "job.cancel", job_id, {"state": str(state), "volume": volume}, "ok")
    audit.info("%s cancelled job %s (%s, volume %s)", by, job_id, state, volume)
    return job

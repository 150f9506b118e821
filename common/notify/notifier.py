"""Observations in, messages out: ``job_finished`` / ``jobs_failed`` (job outcomes),
``report_freshness`` (the RPO check's verdict) and ``flush_pending`` (changes the rate
limit held back). None of them raises: notification trouble is logged, never a job's."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from common.config import Settings
from common.db import Database, Job, JobState, jobs
from common.notify import channels as channels_mod
from common.notify import state as st
from common.notify.message import Message
from common.policies.schedule import format_duration

log = logging.getLogger(__name__)

#: the job kinds whose outcome is watched (dry runs and listings are answers, not work)
WATCHED_KINDS = frozenset({"backup", "restore", "verify", "drill", "copy", "forget",
                           "prune", "repair", "migrate-target"})
#: the kind under which a volume's freshness (RPO) is watched
RPO = "rpo"
#: the kind under which the containers a backup stopped are watched: started again or not
CONTAINERS = "containers"


def job_finished(db: Database, settings: Settings, job_id: str) -> list[Message]:
    """Observe a finished job's outcome and send what changed. Returns the messages sent
    (for tests and logs); never raises. Without a configured channel nothing is
    observed: turning notifications on later starts from the states seen from then on."""
    if not channels_mod.configured(settings):
        return []
    try:
        with db.session() as s:
            job = jobs.get_job(s, job_id)
            observed = [o for o in (_observation(job), _restarts(job)) if o is not None]
            if not observed:
                return []
            for subject, kind, state, event in observed:
                st.observe(s, subject, kind, state, event)
        return _flush(db, settings)
    except Exception:
        log.exception("notifications: could not handle the end of job %s", job_id)
        return []


def jobs_failed(db: Database, settings: Settings, job_ids: list[str]) -> None:
    """Observe jobs failed outside their runner (the stale-job sweep)."""
    for job_id in job_ids:
        job_finished(db, settings, job_id)


def report_freshness(db: Database, settings: Settings, *, host: str, volume: str,
                     overdue: bool, newest_good_at: datetime | None = None,
                     rpo_seconds: float | None = None) -> list[Message]:
    """The RPO check's verdict on one volume (the scheduler decides what *overdue* means:
    its newest good backup is older than the policy's RPO). Sends "overdue" on the change
    to overdue and "recovered" on the way back; never raises."""
    event = {"host": host, "volume": volume,
             "newest_good_backup_at": newest_good_at.isoformat() if newest_good_at else None,
             "rpo_seconds": rpo_seconds}
    subject = f"{host}/{volume}"
    if not channels_mod.configured(settings):
        return []
    try:
        with db.session() as s:
            st.observe(s, subject, RPO, st.BAD if overdue else st.GOOD, event)
        return _flush(db, settings)
    except Exception:
        log.exception("notifications: could not handle the freshness of %s", subject)
        return []


def flush_pending(db: Database, settings: Settings) -> list[Message]:
    """Send the changes the rate limit held back, where they still hold; never raises."""
    try:
        return _flush(db, settings)
    except Exception:
        log.exception("notifications: could not send pending messages")
        return []


def _observation(job: Job) -> tuple[str, str, str, dict[str, Any]] | None:
    if job.kind not in WATCHED_KINDS or job.state not in (JobState.succeeded,
                                                          JobState.failed):
        return None
    subject = f"{job.host}/{job.volume}" if job.volume else f"target/{job.target}"
    event = {"job_id": job.id, "job_kind": job.kind, "job_state": str(job.state),
             "host": job.host, "volume": job.volume or None, "target": job.target,
             "backup_id": job.backup_id, "error": job.error,
             "requested_by": job.requested_by,
             "finished_at": job.finished_at.isoformat() if job.finished_at else None}
    return subject, job.kind, st.GOOD if job.state == JobState.succeeded else st.BAD, event


def _restarts(job: Job) -> tuple[str, str, str, dict[str, Any]] | None:
    """A backup that stopped containers: were they all started again? One Docker could
    not start is an outage the backup's success hides (its job succeeds: the backup is
    good), so it is told as a failure of its own; the next backup that starts them all
    again tells the recovery. A container removed meanwhile (Compose recreated it) is
    not one left down."""
    if job.kind != "backup" or job.state not in (JobState.succeeded, JobState.failed):
        return None
    windows = (job.result or {}).get("stop_windows") or []
    if not windows:
        return None
    down = [w for w in windows if not w.get("restarted", True) and not w.get("removed")]
    event = {"job_id": job.id, "job_kind": job.kind, "host": job.host, "volume": job.volume,
             "containers": [w.get("name") for w in down],
             "error": "; ".join(f"{w.get('name')}: {w.get('start_error') or 'not started'}"
                                for w in down) or None,
             "finished_at": job.finished_at.isoformat() if job.finished_at else None}
    return f"{job.host}/{job.volume}", CONTAINERS, st.BAD if down else st.GOOD, event


def _flush(db: Database, settings: Settings, *, subject: str | None = None,
           kind: str | None = None) -> list[Message]:
    chans = channels_mod.from_settings(settings)
    if not chans:
        return []
    interval = timedelta(seconds=settings.notify_min_interval_seconds)
    sent: list[Message] = []
    with db.session() as s:
        pending = st.due(s, interval, subject=subject, kind=kind)
    for d in pending:
        with db.session() as s:
            if not st.claim(s, d):
                continue  # another process tells it
        message = _message(d)
        for ch in chans:
            try:
                ch.send(message)
            except Exception as e:  # noqa: BLE001 - logged, never a job's failure
                log.warning("notifications: %s could not deliver %r: %s", ch.name,
                            message.summary, _safe(e))
        log.info("notification sent: %s", message.summary)
        sent.append(message)
    return sent


def _safe(e: Exception) -> str:
    """An error for the log, with any URL in it cut to scheme and host (a webhook URL's
    path or user part may be its secret)."""
    import re

    text = re.sub(r"[A-Za-z][A-Za-z0-9+.-]*://\S+",
                  lambda m: channels_mod.redact(m.group()), str(e))
    return f"{type(e).__name__}: {text}"


def _message(d: st.Due) -> Message:
    e = d.event
    bad = d.state == st.BAD
    if d.kind == RPO:
        event = "overdue" if bad else "recovered"
        summary = (_overdue(d.subject, e) if bad else
                   f"volume {d.subject} is backed up in time again")
    elif d.kind == CONTAINERS:
        event = "failed" if bad else "recovered"
        names = ", ".join(e.get("containers") or [])
        summary = (f"containers stopped to back up {d.subject} were not started again: "
                   f"{e.get('error')} (start them: docker start {names})" if bad else
                   f"containers stopped to back up {d.subject} are started again")
    else:
        event = "failed" if bad else "recovered"
        what = {"verify": "verification", "drill": "restore drill"}.get(d.kind, d.kind)
        summary = (f"{what} of {d.subject} failed: {e.get('error') or 'no reason given'}"
                   if bad else f"{what} of {d.subject} succeeds again")
    return Message(event=event, kind=d.kind, subject=d.subject, state=d.state,
                   previous=d.told, summary=summary, details=e)


def _overdue(subject: str, e: dict[str, Any]) -> str:
    """``volume h/v is overdue: its newest good backup (2026-12-07 19:19 UTC) is older
    than its RPO of 1m`` — or ``… has no good backup yet`` (it read "is from never")."""
    rpo = e.get("rpo_seconds")
    of = f" of {format_duration(timedelta(seconds=rpo))}" if rpo else ""
    newest = e.get("newest_good_backup_at")
    if not newest:
        return (f"volume {subject} is overdue: it has no good backup yet, and its policy "
                f"is older than its RPO{of}")
    try:
        t = datetime.fromisoformat(newest)
        at = (t.astimezone(UTC) if t.tzinfo else t).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        at = str(newest)
    return f"volume {subject} is overdue: its newest good backup ({at}) is older than its RPO{of}"

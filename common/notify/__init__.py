"""Telling people when something goes wrong — and when it is good again.

Concepts:

- A **subject** is what a state belongs to: a volume (``host/volume``) or a target
  (``target/NAME``). Its **kinds** are watched separately: each job kind (``backup``,
  ``verify``, ``drill``, ``copy`` …) and ``rpo`` (is its newest good backup overdue?).
- An **observation** says a (subject, kind) is ``good`` or ``bad`` now (a job that
  succeeded or failed; a freshness check). ``state`` keeps the last observed state and the
  state last *told* in the ``notify_state`` table, so a message goes out only on a state
  change — never once per failed run, and not again after a restart.
- A **message** (``Message``) is one change: ``failed`` / ``overdue`` (good → bad) or
  ``recovered`` (bad → good). The first observation of a subject that is good sends
  nothing (there is nothing to recover from).
- **Rate limit**: at most one message per (subject, kind) per
  ``VOLKEEPER_NOTIFY_MIN_INTERVAL_SECONDS``; a change within the window stays pending and
  is sent by ``flush_pending`` (the hosts' housekeeping) once the window has passed — if
  the state still differs from what was told (a flap back to the told state sends nothing).
- **Channels** (``channels``): the signed JSON webhook, e-mail over SMTP, and Apprise URLs
  when the optional ``apprise`` package is installed. A delivery failure is logged; it
  never fails a job.

Entry points: ``job_finished`` (the job runner calls it for every finished job),
``report_freshness`` (the scheduler's RPO check calls it with its verdict: overdue or not)
and ``flush_pending``.
"""

from common.notify.notifier import (
    Message,
    flush_pending,
    job_finished,
    jobs_failed,
    report_freshness,
)

__all__ = ["Message", "flush_pending", "job_finished", "jobs_failed", "report_freshness"]

"""What follows a policy's successful backup, done by the active scheduler: a copy to each
of the policy's other targets (3-2-1; each copy a job with its own history), then the
policy's retention — after the copies (a repository forget takes the target's exclusive
lock, a copy reads it under a shared one): a copy's end applies it on its source and
destination, and each forget's end queues the next forget there — each once no other
job is queued or running on that target (a verify, drill, restore or backup holds the
repository's shared lock, and the forget's exclusive one was refused: a failed job and a
failure notified; at most ``DEFER_AT_MOST`` later it is queued anyway). Each finished job is
followed up once: a marker in its ``result``
(``policy_followup``) is written first, fenced by the scheduler's lease (only its holder
writes it), so neither two schedulers nor a restart repeat a follow-up (a scheduler
killed right after the marker skips that one follow-up: the next backup's catches up on
retention).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from common.db import Database, Job, JobState, Policy, leases
from common.errors import VolkeeperError
from common.jobs.policies import PolicyService
from common.jobs.policy_runs import requested_by
from common.policies.scheduler import LEASE

log = logging.getLogger(__name__)
LOOKBACK = timedelta(days=1)
#: jobs are re-read this far behind the newest one handled: a job whose end committed after
#: a later-finishing one's is still seen (the marker keeps it from being done twice)
OVERLAP = timedelta(seconds=60)
#: how long a policy's retention waits for its target to be free of other jobs (seconds)
DEFER_AT_MOST = 900.0


class FollowUps:
    """Called by the active scheduler at the end of each tick (``Scheduler.after``), and
    by the embedded ``volkeeper policy run`` for its own jobs when no server holds the
    lease (``follow_up_now``)."""

    def __init__(self, service: PolicyService,
                 wait: Callable[[Job], Job] | None = None) -> None:
        """``wait``: run each follow-up job to its end before the next (the embedded
        CLI); without it jobs are queued and their own ends are followed up in turn."""
        self.service = service
        self.wait = wait
        self.db: Database = service.db
        self._since: datetime | None = None
        #: retention held back while other jobs use its target: (policy, host, volume,
        #: target) → since when; tried again each call until the target is free (at most
        #: DEFER_AT_MOST, then queued anyway); lost with the process (the next backup's
        #: follow-up applies it then)
        self._deferred: dict[tuple[str, str, str, str], float] = {}

    def __call__(self, holder: str, token: int, now: datetime,
                 only: Collection[str] | None = None) -> list[Job]:
        """Follow up the policy jobs finished since the last call (``only``: these job
        ids, whenever they finished). Returns the jobs it queued."""
        since = self._since - OVERLAP if self._since else now - LOOKBACK
        q = select(Job).where(Job.state == JobState.succeeded,
                              Job.kind.in_(("backup", "copy", "forget")),
                              Job.requested_by.startswith("policy:"))
        q = q.where(Job.id.in_(list(only))) if only is not None else q.where(
            Job.finished_at > since)
        with self.db.session() as s:
            rows = list(s.scalars(q.order_by(Job.finished_at)))
            names = {(j.requested_by or "").removeprefix("policy:") for j in rows}
            # only the policies of finished jobs (an idle tick reads none of them)
            policies = {p.name: p for p in s.scalars(
                select(Policy).where(Policy.name.in_(names)))} if names else {}
        queued: list[Job] = self._retry_deferred()
        for job in rows:
            name = (job.requested_by or "").removeprefix("policy:")
            p = policies.get(name)
            if (job.result or {}).get("policy_followup") or p is None:
                self._since = max(self._since or since, job.finished_at or since)
                continue
            if not self._mark(job, holder, token, now):
                return queued  # the lease is lost: the next holder takes it from here
            self._since = max(self._since or since, job.finished_at or since)
            try:
                queued += self._follow(job, name, list(p.targets))
            except VolkeeperError as e:
                log.warning("policy %s: follow-up of job %s: %s", name, job.id, e)
        return queued

    def _follow(self, job: Job, name: str, targets: list[str]) -> list[Job]:
        """backup → copies, then (after them) retention on every target; copy →
        retention on its source and destination; forget → the next forget there. Apart,
        so a repository's exclusive lock (forget) does not meet its shared one (copy)."""
        queued: list[Job] = []

        def retention(target: str) -> None:
            if self.wait is None and self._busy(target):
                # a forget's exclusive repository lock would be refused (the job failed,
                # and a failure was notified) while a verify, drill, restore or backup
                # reads or writes the target: wait until it is free
                self._deferred.setdefault((name, job.host, job.volume, target),
                                           time.monotonic())
                return
            queued.extend(self.service.apply_retention(
                name, job.host, job.volume, target, wait=self.wait,
                limit=None if self.wait else 1))

        if job.kind == "forget":
            if job.target:
                retention(job.target)
            return queued
        if job.kind == "copy":
            for target in dict.fromkeys([job.target or "", str(
                    (job.result or {}).get("destination") or "")]):
                if target:
                    retention(target)
            return queued
        backup_id = (job.result or {}).get("backup_id") or job.backup_id
        copies = []
        for target in targets[1:]:
            if not backup_id:
                break
            try:
                copy = self.service.ops.copy_backup(backup_id=backup_id, target=target,
                                                    requested_by=requested_by(name))
            except VolkeeperError as e:
                log.warning("policy %s: copy of %s to %s: %s", name, backup_id, target, e)
                continue
            copies.append(self.wait(copy) if self.wait else copy)
        queued += copies
        if self.wait:  # copies done: retention on every target now
            for target in dict.fromkeys([job.target or targets[0], *targets[1:]]):
                retention(target)
        elif not copies:  # otherwise each copy's follow-up applies it, after the copy
            retention(job.target or targets[0])
        return queued

    def _busy(self, target: str) -> bool:
        """Whether a job other than a forget is queued or running on ``target``."""
        with self.db.session() as s:
            return s.scalar(select(Job.id).where(
                Job.target == target, Job.kind != "forget",
                Job.state.in_((JobState.queued, JobState.running))).limit(1)) is not None

    def _retry_deferred(self) -> list[Job]:
        """The held-back retention of each target that is free now."""
        queued: list[Job] = []
        busy: dict[str, bool] = {}  # one query per target, however many wait for it
        for key, since in list(self._deferred.items()):
            name, host, volume, target = key
            if target not in busy:
                busy[target] = self._busy(target)
            if time.monotonic() - since < DEFER_AT_MOST and busy[target]:
                continue
            del self._deferred[key]
            try:
                queued += self.service.apply_retention(name, host, volume, target, limit=1)
            except VolkeeperError as e:
                log.warning("policy %s: retention of %s/%s on %s: %s", name, host, volume,
                            target, e)
        return queued

    def _mark(self, job: Job, holder: str, token: int, now: datetime) -> bool:
        marked: dict[str, Any] = {**(job.result or {}),
                                  "policy_followup": now.isoformat(timespec="seconds")}
        with self.db.session() as s:
            r = s.execute(update(Job).where(Job.id == job.id,
                                            leases.held(LEASE, holder, token, now))
                          .values(result=marked))
            # only the lease holder can write it, and a new holder comes after the old
            # one's lease expired, so it reads the marker: one follow-up per job
            return bool(r.rowcount == 1)  # type: ignore[attr-defined]


def follow_up_now(service: PolicyService, job_ids: Collection[str], now: datetime
                  ) -> list[Job] | None:
    """Follow up ``job_ids`` here and now, one job after the other, each waited for (the
    embedded CLI, which runs no scheduler), holding the scheduler's lease for it; None
    when a scheduler holds it (a running ``volkeeper serve`` does them)."""
    holder = f"cli:{os.getpid()}"
    token = leases.acquire(service.db, LEASE, holder, timedelta(minutes=30), now)
    if token is None:
        return None

    def wait(job: Job) -> Job:
        while True:
            with service.db.session() as s:
                current = s.get(Job, job.id)
            if current is None or current.state.finished:
                return current or job
            time.sleep(0.05)

    try:
        return FollowUps(service, wait=wait)(holder, token, now, only=job_ids)
    finally:
        leases.release(service.db, LEASE, holder)

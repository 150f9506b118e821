"""What the policies tell the rest of volkeeper: whether a scheduler is up (``/health``),
metric families for ``/metrics`` (``volume_overdue``, the scheduler's lag) and the RPO
check that feeds notifications (``common.notify.report_freshness``: one message when a
volume turns overdue, one when it recovers).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import select
from sqlalchemy.orm import Session

from common.config import Settings
from common.db import Database, Lease, Policy, leases
from common.db.models import utcnow
from common.jobs.policy_state import inventory, volume_status
from common.policies.schedule import parse_schedule
from common.policies.scheduler import KINDS, LEASE, jitter_key, next_due

log = logging.getLogger(__name__)


def scheduler_state(session: Session, now: datetime | None = None) -> str:
    """"ok" while some scheduler holds the lease, else what is wrong."""
    lease = session.get(Lease, LEASE)
    if lease is None or not lease.holder or lease.expires_at is None:
        return "not running"
    if not leases.is_held(lease, now or utcnow()):
        return f"lease expired at {lease.expires_at.isoformat(timespec='seconds')}"
    return "ok"


def health_probe(db: Database) -> str:
    with db.session() as s:
        return scheduler_state(s)


def scheduler_lag(session: Session, now: datetime) -> float:
    """Seconds the oldest due, unstarted run of an enabled policy is late (0: none):
    a backup, or a verify or drill of its cadences."""
    lag = 0.0
    cols = [c for schedule, last in KINDS.values() for c in (schedule, last)]
    rows = session.execute(select(Policy.name, Policy.tz, Policy.jitter_seconds,
                                  Policy.created_at, *cols).where(Policy.enabled))
    for name, tz, jitter, created, *per_kind in rows:
        for k, kind in enumerate(KINDS):
            schedule, last = per_kind[2 * k], per_kind[2 * k + 1]
            if not schedule:
                continue
            try:
                due = next_due(parse_schedule(schedule, tz), jitter_key(name, kind), jitter,
                               last or created)
            except ValueError:
                continue
            lag = max(lag, (now - due).total_seconds())
    return lag


def metric_families(session: Session) -> Iterable[GaugeMetricFamily]:
    """``volkeeper_volume_overdue{host,volume,policy}``, ``volkeeper_volume_rpo_seconds``
    and ``volkeeper_scheduler_lag_seconds`` (a ``common.metrics`` source)."""
    now = utcnow()
    status = volume_status(session, inventory(session), now)
    overdue = GaugeMetricFamily("volkeeper_volume_overdue", "1: the newest good backup is "
                                "older than the policy's RPO", labels=["host", "volume",
                                                                       "policy"])
    rpo = GaugeMetricFamily("volkeeper_volume_rpo_seconds", "the policy's RPO",
                            labels=["host", "volume", "policy"])
    for (host, volume), row in sorted(status.items()):
        if row["policy"]:
            labels = [host, volume, row["policy"]]
            overdue.add_metric(labels, 1 if row["overdue"] else 0)
            rpo.add_metric(labels, row["rpo_seconds"])
    lag = GaugeMetricFamily("volkeeper_scheduler_lag_seconds", "how late the oldest due "
                            "run that has not started is (0: every due run started)")
    lag.add_metric([], scheduler_lag(session, now))
    return [overdue, rpo, lag]


class RpoCheck:
    """Every ``every`` seconds (the active scheduler's ticks): each volume a policy backs
    up is reported fresh or overdue to the notifications, which send one message per
    change."""

    def __init__(self, db: Database, settings: Settings, every: float = 60.0) -> None:
        self.db, self.settings, self.every = db, settings, every
        self._last = 0.0

    def __call__(self, holder: str, token: int, now: datetime) -> None:
        if time.monotonic() - self._last < self.every:
            return
        self._last = time.monotonic()
        from common.notify import report_freshness

        with self.db.session() as s:
            status = volume_status(s, inventory(s), now)
        for (host, volume), row in status.items():
            if row["policy"]:
                report_freshness(self.db, self.settings, host=host, volume=volume,
                                 overdue=bool(row["overdue"]),
                                 newest_good_at=row["last_good_backup_at"],
                                 rpo_seconds=row["rpo_seconds"])


class Both:
    """Two ``Scheduler.after`` steps, each failing on its own."""

    def __init__(self, *steps: object) -> None:
        self.steps = steps

    def __call__(self, holder: str, token: int, now: datetime) -> None:
        for step in self.steps:
            try:
                step(holder, token, now)  # type: ignore[operator]
            except Exception:
                log.exception("scheduler step %s failed", type(step).__name__)

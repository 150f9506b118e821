"""Recovery point objective: how old a volume's newest *good* backup may be.

A policy's RPO defaults to twice its schedule's interval (a daily policy: 48 h), so one
missed run is tolerated and two are not. A volume is *overdue* when its newest good backup
(a regular backup, not a safety snapshot, not found damaged) is older than the RPO; a volume
never backed up is overdue once the policy has existed for longer than the RPO.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from common.policies.schedule import Schedule


def default_rpo(schedule: Schedule) -> timedelta:
    return 2 * schedule.interval()


@dataclass(frozen=True)
class Freshness:
    overdue: bool
    #: how old the newest good backup is (None: there is none)
    age: timedelta | None
    #: when the volume turns (or turned) overdue
    due_by: datetime


def freshness(newest_good: datetime | None, rpo: timedelta, now: datetime,
              since: datetime) -> Freshness:
    """``since``: when the policy began to apply (its creation) — the clock of a volume
    that has no good backup yet."""
    base = newest_good if newest_good is not None else since
    due_by = base + rpo
    age = now - newest_good if newest_good is not None else None
    return Freshness(overdue=now > due_by, age=age, due_by=due_by)

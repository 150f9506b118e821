"""A policy's rules from its stored columns: its selection, schedule and RPO. Works on
anything with the ``policies`` table's attributes (an ORM ``Policy`` row, or a plain row
of ``common.db.rows``), so the API, the scheduler and the embedded read commands judge a
policy the same way."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from common.policies.rpo import default_rpo
from common.policies.schedule import Schedule, parse_schedule, parse_tz
from common.policies.selection import Selection, check_selection


class PolicyColumns(Protocol):
    """The columns these rules read."""

    selection: dict[str, Any]
    schedule: str
    tz: str
    rpo_seconds: int | None


def parse_selection(s: dict[str, Any] | None) -> Selection:
    """A policy's stored ``selection`` column as a ``Selection``."""
    s = s or {}
    return check_selection(s.get("volumes") or (), s.get("hosts") or (), s.get("selector"),
                           s.get("project"))


def selection_of(p: PolicyColumns) -> Selection:
    return parse_selection(p.selection)


def schedule_of(p: PolicyColumns) -> Schedule:
    return parse_schedule(p.schedule, p.tz)


#: the RPO of a policy without its own whose schedule is unusable (a row saved before
#: such schedules were refused): a daily policy's, so its volumes turn overdue and say so
UNUSABLE_SCHEDULE_RPO = timedelta(days=2)


def rpo_of(p: PolicyColumns) -> timedelta:
    if p.rpo_seconds:
        return timedelta(seconds=p.rpo_seconds)
    try:
        return default_rpo(schedule_of(p))
    except ValueError:
        return UNUSABLE_SCHEDULE_RPO


def tz_of(p: PolicyColumns) -> ZoneInfo:
    """The policy's time zone (retention's days and weeks), also when its schedule is
    unusable."""
    return parse_tz(p.tz)

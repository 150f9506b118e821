"""Previews for a policy being written (the console's form, before it is saved): the next
runs of a schedule in its time zone, and what a retention would keep and forget of the
volumes a selection picks now. Both use the rules the scheduler applies
(``common.policies``); ``PolicyService.retention_preview`` shows a saved policy's."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from common.db import Backup, Policy
from common.db.models import utcnow
from common.jobs.inputs import InvalidRequest
from common.jobs.policy_state import inventory, schedule_of
from common.jobs.policy_views import DecisionOut, PreviewOut
from common.policies.retention import decide, items_from_rows
from common.policies.rpo import default_rpo
from common.policies.schedule import format_duration, jitter_for, parse_schedule, parse_tz
from common.policies.selection import Selection
from common.policies.selection import select as select_volumes

#: how many runs a schedule preview shows at most
MAX_RUNS = 50
#: the largest jitter a policy may have (``PolicyBody.jitter_seconds``)
MAX_JITTER = 86400


class SchedulePreviewOut(BaseModel):
    schedule: str = Field(description="the schedule as stored (presets expanded: no)")
    tz: str
    interval: str = Field(description="the longest gap between two runs, e.g. 1d")
    default_rpo: str = Field(description="the RPO when the policy names none (twice the "
                             "interval)")
    runs: list[datetime] = Field(description="the next runs, in the policy's time zone")


def schedule_preview(schedule: str, tz: str = "UTC", count: int = 5, *,
                     jitter_seconds: int = 0, policy: str = "",
                     now: datetime | None = None) -> SchedulePreviewOut:
    """The next ``count`` runs of ``schedule`` in ``tz`` (with the jitter a policy named
    ``policy`` would get). InvalidRequest names ``schedule``, ``tz``, ``count`` or
    ``jitter_seconds``."""
    problems = []
    if isinstance(count, bool) or not 1 <= count <= MAX_RUNS:
        problems.append({"field": "count", "problem": f"ask for 1 to {MAX_RUNS} runs "
                         f"(got {count!r})"})
    if isinstance(jitter_seconds, bool) or not 0 <= jitter_seconds <= MAX_JITTER:
        problems.append({"field": "jitter_seconds", "problem": f"give 0 to {MAX_JITTER} "
                         f"seconds, as a policy's (got {jitter_seconds!r})"})
    zone: ZoneInfo | None = None
    try:
        zone = parse_tz(tz)
    except ValueError as e:
        problems.append({"field": "tz", "problem": str(e)})
    try:
        parsed = parse_schedule(schedule, "UTC")
    except ValueError as e:
        problems.append({"field": "schedule", "problem": str(e)})
    if problems or zone is None:
        raise InvalidRequest(problems)
    parsed = parse_schedule(schedule, tz)
    slots = parsed.upcoming(now or utcnow(), count)
    runs = [(s + jitter_for(policy, s, jitter_seconds)).astimezone(zone) for s in slots]
    return SchedulePreviewOut(schedule=parsed.expr, tz=tz,
                              interval=format_duration(parsed.interval()),
                              default_rpo=format_duration(default_rpo(parsed)), runs=runs)


def retention_groups(session: Session, selection: Selection, targets: Sequence[str],
                     retention: dict[str, Any] | None, tz: ZoneInfo, *,
                     owners: dict[tuple[str, str], Policy] | None = None
                     ) -> list[PreviewOut]:
    """For each volume ``selection`` picks now and each target: every backup there, kept
    or forgotten by ``retention`` (none: every backup is kept), and why. ``owners``: the
    volumes another policy backs up, with it — their groups show that policy's retention
    on its targets (the one applied; this one's never is)."""
    out = []
    for v in select_volumes(selection, inventory(session)):
        owner = (owners or {}).get(v.key)
        for target in owner.targets if owner is not None else targets:
            rules = (owner.retention if owner is not None else retention) or {
                "keep_last": -1}
            rows = backups_on(session, v.host, v.name, target)
            by_id = {b.id: b for b in rows}
            decisions = decide(items_from_rows(rows), rules,
                               tz if owner is None else schedule_of(owner).tz)
            backups = [DecisionOut(id=d.id, created_at=by_id[d.id].created_at,
                                   kind=by_id[d.id].kind, tags=list(by_id[d.id].tags or []),
                                   pinned=by_id[d.id].pinned, keep=d.keep, reasons=d.reasons)
                       for d in decisions]
            kept = sum(d.keep for d in decisions)
            out.append(PreviewOut(host=v.host, volume=v.name, target=target, keep=kept,
                                  forget=len(decisions) - kept, backups=backups,
                                  owner=owner.name if owner is not None else None))
    return out


def backups_on(session: Session, host: str, volume: str, target: str) -> list[Backup]:
    """Every backup (safety snapshots too) of a volume on a target, newest first."""
    q = (select(Backup).where(Backup.host == host, Backup.volume == volume,
                              Backup.target == target).order_by(Backup.created_at.desc()))
    return list(session.scalars(q))

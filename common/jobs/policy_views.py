"""What every front shows of policies: the policy view, what a run started, a retention
preview, an ``apply`` plan; and the policy, RPO and overdue flag of each volume (for
``GET /volumes`` and ``volkeeper volumes``). Built from the catalog by pure rules of
``common.policies``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from common.db import Backup, Policy, hosts
from common.db.models import utcnow
from common.jobs.views import JobOut
from common.policies.rpo import default_rpo, freshness
from common.policies.schedule import Schedule, format_duration, jitter_for, parse_schedule
from common.policies.scheduler import KINDS, jitter_key
from common.policies.selection import (
    Inventory,
    Selection,
    VolumeRef,
    check_selection,
    claims,
    volume_ref,
)


class MatchOut(BaseModel):
    host: str
    volume: str
    owner: str = Field(description="the policy that backs it up (first by name)")
    conflict: list[str] = Field(default_factory=list,
                                description="every policy matching it, when more than one")


class PolicyOut(BaseModel):
    name: str
    volumes: list[str]
    hosts: list[str]
    selector: str | None
    project: str | None
    schedule: str
    tz: str
    jitter_seconds: int
    targets: list[str]
    format: str | None
    retention: dict[str, Any]
    rpo: str = Field(description="effective RPO, e.g. 26h")
    rpo_default: bool = Field(description="true: twice the schedule's interval")
    verify_subset: float | None
    verify_schedule: str | None
    drill_schedule: str | None
    enabled: bool
    next_run_at: datetime | None
    last_run_at: datetime | None
    next_verify_at: datetime | None = Field(default=None, description="the next scheduled "
                                            "verify (none without a verify_schedule)")
    last_verify_at: datetime | None = None
    next_drill_at: datetime | None = Field(default=None, description="the next scheduled "
                                           "restore drill (none without a drill_schedule)")
    last_drill_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    matches: list[MatchOut] | None = Field(default=None, description="the volumes it "
                                           "selects now (shown for one policy)")


class SkippedOut(BaseModel):
    host: str
    volume: str
    reason: str


class RunOut(BaseModel):
    policy: str
    jobs: list[JobOut] = Field(description="the backups it queued (requested_by policy:NAME)")
    skipped: list[SkippedOut] = Field(description="selected volumes not backed up, and why")


class DecisionOut(BaseModel):
    id: str
    created_at: datetime
    kind: str
    tags: list[str]
    pinned: bool
    keep: bool
    reasons: list[str]


class PreviewOut(BaseModel):
    host: str
    volume: str
    target: str
    keep: int
    forget: int
    backups: list[DecisionOut]


class ChangeOut(BaseModel):
    name: str
    action: str = Field(description="create | update | delete | unchanged | kept (not in "
                        "the file; --prune deletes it)")
    changes: dict[str, list[Any]] = Field(default_factory=dict,
                                          description="field → [old, new]")


class ApplyOut(BaseModel):
    dry_run: bool
    changes: list[ChangeOut]


# --- a policy's rules from its row -------------------------------------------------------


def selection_of(p: Policy) -> Selection:
    return _selection(p.selection)


def _selection(s: dict[str, Any] | None) -> Selection:
    s = s or {}
    return check_selection(s.get("volumes") or (), s.get("hosts") or (), s.get("selector"),
                           s.get("project"))


def schedule_of(p: Policy) -> Schedule:
    return parse_schedule(p.schedule, p.tz)


def rpo_of(p: Policy) -> timedelta:
    if p.rpo_seconds:
        return timedelta(seconds=p.rpo_seconds)
    return default_rpo(schedule_of(p))


def next_run(p: Policy, now: datetime, kind: str = "backup") -> datetime | None:
    """When the policy's next ``kind`` run (backup, verify, drill) starts, as the
    scheduler computes it (slot plus jitter); None when disabled or not scheduled."""
    expr = getattr(p, KINDS[kind][0].key)
    if not p.enabled or not expr:
        return None
    slot = parse_schedule(expr, p.tz).next_after(now)
    return slot + jitter_for(jitter_key(p.name, kind), slot, p.jitter_seconds)


def policy_out(p: Policy, now: datetime | None = None,
               matches: list[MatchOut] | None = None) -> PolicyOut:
    s = p.selection or {}
    return PolicyOut(
        name=p.name, volumes=list(s.get("volumes") or []), hosts=list(s.get("hosts") or []),
        selector=s.get("selector"), project=s.get("project"), schedule=p.schedule, tz=p.tz,
        jitter_seconds=p.jitter_seconds, targets=list(p.targets), format=p.format,
        retention=dict(p.retention or {}), rpo=format_duration(rpo_of(p)),
        rpo_default=not p.rpo_seconds, verify_subset=p.verify_subset_percent,
        verify_schedule=p.verify_schedule, drill_schedule=p.drill_schedule,
        enabled=p.enabled, next_run_at=next_run(p, now or utcnow()),
        last_run_at=p.last_run_at, next_verify_at=next_run(p, now or utcnow(), "verify"),
        last_verify_at=p.verify_last_run_at, next_drill_at=next_run(p, now or utcnow(), "drill"),
        last_drill_at=p.drill_last_run_at, created_at=p.created_at, updated_at=p.updated_at,
        matches=matches)


# --- the inventory against the policies ------------------------------------------------


def inventory(session: Session, host: str | None = None) -> list[VolumeRef]:
    return [volume_ref(v.host, v.name, v.labels, v.containers)
            for v in hosts.list_volumes(session, host)]


def enabled_policies(session: Session) -> dict[str, Policy]:
    return {p.name: p for p in session.scalars(select(Policy).where(Policy.enabled))}


def enabled_selections(session: Session) -> dict[str, Selection]:
    """Name → selection of every enabled policy (two columns read, not whole rows)."""
    rows = session.execute(select(Policy.name, Policy.selection).where(Policy.enabled))
    return {name: _selection(sel) for name, sel in rows}


def volume_claims(session: Session, refs: list[VolumeRef] | Inventory, *,
                  also: Policy | None = None) -> dict[tuple[str, str], list[str]]:
    """(host, volume) → the enabled policies matching it (``also``: one more, say a
    disabled policy being shown), first by name first."""
    selections = enabled_selections(session)
    if also is not None:
        selections[also.name] = selection_of(also)
    return claims(selections, refs)


@dataclass(frozen=True)
class InventoryView:
    """The inventory and which enabled policies claim each volume, read once."""

    inventory: Inventory
    claims: dict[tuple[str, str], list[str]]


def inventory_view(session: Session) -> InventoryView:
    inv = Inventory(inventory(session))
    return InventoryView(inv, volume_claims(session, inv))


def selected(session: Session, p: Policy) -> tuple[list[VolumeRef],
                                                   dict[tuple[str, str], list[str]]]:
    """The volumes ``p`` selects now, and which policies claim each of them."""
    mine = Inventory(inventory(session)).select(selection_of(p))
    return mine, volume_claims(session, mine, also=p)


def matches_of(session: Session, p: Policy) -> list[MatchOut]:
    mine, claimed = selected(session, p)
    out = []
    for v in mine:
        names = claimed.get(v.key, [p.name])
        out.append(MatchOut(host=v.host, volume=v.name, owner=names[0],
                            conflict=names if len(names) > 1 else []))
    return out


def newest_good_backups(session: Session) -> dict[tuple[str, str], datetime]:
    """(host, volume) → the time of its newest good backup: a regular backup (not a
    safety snapshot) that no verification found damaged."""
    q = (select(Backup.host, Backup.volume, func.max(Backup.created_at))
         .where(Backup.kind == "backup")
         .where((Backup.verify_status.is_(None)) | (Backup.verify_status != "damaged"))
         .group_by(Backup.host, Backup.volume))
    return {(h, v): _aware(t) for h, v, t in session.execute(q)}


def volume_status(session: Session, refs: list[VolumeRef], now: datetime | None = None
                  ) -> dict[tuple[str, str], dict[str, Any]]:
    """(host, volume) → ``policy``, ``policy_conflict``, ``rpo_seconds``,
    ``last_good_backup_at``, ``overdue`` (None where no policy applies)."""
    now = now or utcnow()
    policies = enabled_policies(session)
    claimed = claims({n: selection_of(p) for n, p in policies.items()}, Inventory(refs))
    good = newest_good_backups(session)
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for ref in refs:
        names = claimed.get(ref.key, [])
        newest = good.get(ref.key)
        row: dict[str, Any] = {"policy": None, "policy_conflict": [], "rpo_seconds": None,
                               "last_good_backup_at": newest, "overdue": None}
        if names:
            p = policies[names[0]]
            rpo = rpo_of(p)
            row.update(policy=p.name, policy_conflict=names if len(names) > 1 else [],
                       rpo_seconds=int(rpo.total_seconds()),
                       overdue=freshness(newest, rpo, now, _aware(p.created_at)).overdue)
        out[ref.key] = row
    return out


def _aware(t: datetime) -> datetime:
    from datetime import UTC

    return t if t.tzinfo else t.replace(tzinfo=UTC)

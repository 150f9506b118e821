"""What every front shows of policies: the policy view, what a run started, a retention
preview, an ``apply`` plan; and the policy, RPO and overdue flag of each volume (for
``GET /volumes`` and ``volkeeper volumes``). Built from the catalog by pure rules of
``common.policies``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from common.db import Policy
from common.db.models import utcnow
from common.jobs.policy_consistency import shown
from common.jobs.policy_state import next_run, rpo_of, selected
from common.jobs.views import JobOut
from common.policies.schedule import format_duration
from common.policies.selection import VolumeRef


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
    stop_containers: bool = Field(default=False, description="stop the containers for "
                                  "each backup (a label on a container or the volume wins)")
    excludes: list[str] = Field(default_factory=list, description="glob patterns left out")
    snapshot: str | None = Field(default=None, description="auto, btrfs, zfs, lvm or off")
    dump: str | None = Field(default=None, description="back up this database's dump")
    dump_databases: list[str] = Field(default_factory=list, description="with dump: these "
                                      "databases, each alone (a container's "
                                      "volkeeper.dump-database label wins)")
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


def owned(name: str, volumes: list[VolumeRef], claimed: dict[tuple[str, str], list[str]],
          skipped: list[SkippedOut]) -> list[VolumeRef]:
    """The volumes of ``volumes`` policy ``name`` acts on: a volume another policy claims
    first goes to ``skipped`` with the conflict named."""
    mine = []
    for v in volumes:
        owners = claimed.get(v.key, [name])
        if owners[0] != name:
            skipped.append(SkippedOut(
                host=v.host, volume=v.name,
                reason=f"conflict: also matched by {', '.join(owners)}; policy "
                f"{owners[0]!r} backs it up"))
        else:
            mine.append(v)
    return mine


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
    owner: str | None = Field(default=None, description="set when another policy backs "
                              "the volume up (a conflict: the first by name): the "
                              "decisions are that policy's retention on its targets, the "
                              "one that applies")


class ChangeOut(BaseModel):
    name: str
    action: str = Field(description="create | update | delete | unchanged | kept (not in "
                        "the file; --prune deletes it)")
    changes: dict[str, list[Any]] = Field(default_factory=dict,
                                          description="field → [old, new]")
    forgets: int | None = Field(default=None, description="created, or its retention, "
                                "targets or selection changed: how many backups there "
                                "now its retention would forget after its next backup "
                                "(also those made by hand; pinned ones are kept; at most: "
                                "a volume another policy backs up is counted too)")


class ApplyOut(BaseModel):
    dry_run: bool
    changes: list[ChangeOut]


# --- views ------------------------------------------------------------------------------


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
        matches=matches, **shown(p))


def matches_of(session: Session, p: Policy) -> list[MatchOut]:
    mine, claimed = selected(session, p)
    out = []
    for v in mine:
        names = claimed.get(v.key, [p.name])
        out.append(MatchOut(host=v.host, volume=v.name, owner=names[0],
                            conflict=names if len(names) > 1 else []))
    return out

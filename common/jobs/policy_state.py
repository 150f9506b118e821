"""Policies against the catalog, without output models: a policy's rules from its row,
the inventory each enabled policy claims, and each volume's policy, RPO and overdue flag
(read by ``views.list_volumes``, the scheduler and ``policy_views``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from common.db import Backup, Host, Policy, Volume
from common.db.models import utcnow
from common.policies.rpo import default_rpo, freshness
from common.policies.schedule import Schedule, jitter_for, parse_schedule
from common.policies.scheduler import KINDS, jitter_key
from common.policies.selection import (
    Inventory,
    Selection,
    VolumeRef,
    check_selection,
    claims,
    volume_ref,
)

# --- a policy's rules from its row -------------------------------------------------------


def selection_of(p: Policy) -> Selection:
    return parse_selection(p.selection)


def parse_selection(s: dict[str, Any] | None) -> Selection:
    """A policy's stored ``selection`` column as a ``Selection``."""
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


# --- the inventory against the policies ------------------------------------------------


def inventory(session: Session, host: str | None = None) -> list[VolumeRef]:
    """The volumes of the last inventory (of ``host``), as the selection rules see them
    (four columns read, not whole rows: the scheduler reads all of them each burst)."""
    q = select(Volume.host, Volume.name, Volume.labels, Volume.containers).order_by(
        Volume.host, Volume.name)
    if host:
        q = q.where(Volume.host == host)
    return [volume_ref(h, n, labels, containers)
            for h, n, labels, containers in session.execute(q)]


def refs_of(rows: Iterable[Any]) -> list[VolumeRef]:
    """The policies' view of inventory rows already read (``common.db.Volume``)."""
    return [volume_ref(v.host, v.name, v.labels, v.containers) for v in rows]


def enabled_policies(session: Session) -> dict[str, Policy]:
    return {p.name: p for p in session.scalars(select(Policy).where(Policy.enabled))}


def enabled_selections(session: Session) -> dict[str, Selection]:
    """Name → selection of every enabled policy (two columns read, not whole rows)."""
    rows = session.execute(select(Policy.name, Policy.selection).where(Policy.enabled))
    return {name: parse_selection(sel) for name, sel in rows}


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


def inventory_stamp(session: Session) -> tuple[object, ...]:
    """What changes when the inventory or the policies do (every host's inventory time,
    the policies' count and newest change): a view read under the same stamp is current."""
    hosts_part = session.execute(select(func.count(Host.name), func.max(Host.inventory_at)))
    policies_part = session.execute(select(func.count(Policy.id), func.max(Policy.updated_at)))
    return (*hosts_part.one(), *policies_part.one())


def inventory_view(session: Session) -> InventoryView:
    inv = Inventory(inventory(session))
    return InventoryView(inv, volume_claims(session, inv))


def selected(session: Session, p: Policy) -> tuple[list[VolumeRef],
                                                   dict[tuple[str, str], list[str]]]:
    """The volumes ``p`` selects now, and which policies claim each of them."""
    mine = Inventory(inventory(session)).select(selection_of(p))
    return mine, volume_claims(session, mine, also=p)


def newest_good_backups(session: Session, only: tuple[str, str] | None = None
                        ) -> dict[tuple[str, str], datetime]:
    """(host, volume) → the time of its newest good backup: a regular backup (not a
    safety snapshot) that no verification found damaged (``only``: of that volume)."""
    q = (select(Backup.host, Backup.volume, func.max(Backup.created_at))
         .where(Backup.kind == "backup")
         .where((Backup.verify_status.is_(None)) | (Backup.verify_status != "damaged"))
         .group_by(Backup.host, Backup.volume))
    if only is not None:
        q = q.where(Backup.host == only[0], Backup.volume == only[1])
    return {(h, v): _aware(t) for h, v, t in session.execute(q)}


def volume_status(session: Session, refs: list[VolumeRef], now: datetime | None = None
                  ) -> dict[tuple[str, str], dict[str, Any]]:
    """(host, volume) → ``policy``, ``policy_conflict``, ``rpo_seconds``,
    ``last_good_backup_at``, ``overdue`` (None where no policy applies)."""
    now = now or utcnow()
    policies = enabled_policies(session)
    claimed = claims({n: selection_of(p) for n, p in policies.items()}, Inventory(refs))
    good = newest_good_backups(session, refs[0].key if len(refs) == 1 else None)
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

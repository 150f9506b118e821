"""Policies against the catalog, without output models: a policy's rules from its row,
the inventory each enabled policy claims, and each volume's policy, RPO and overdue flag
(read by ``views.list_volumes``, the scheduler and ``policy_views``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from common.db import Host, Policy, Volume
from common.db.rows import SessionRows
from common.jobs import reads
from common.policies.rules import parse_selection as parse_selection
from common.policies.rules import rpo_of as rpo_of
from common.policies.rules import schedule_of as schedule_of
from common.policies.rules import selection_of as selection_of
from common.policies.schedule import jitter_for, parse_schedule
from common.policies.scheduler import KINDS, jitter_key
from common.policies.selection import (
    Inventory,
    Selection,
    VolumeRef,
    claims,
    volume_ref,
)

# --- a policy's rules from its row (``common.policies.rules``) --------------------------


def next_run(p: Policy, now: datetime, kind: str = "backup") -> datetime | None:
    """When the policy's next ``kind`` run (backup, verify, drill) starts, as the
    scheduler computes it (slot plus jitter); None when disabled or not scheduled."""
    expr = getattr(p, KINDS[kind][0].key)
    if not p.enabled or not expr:
        return None
    try:
        slot = parse_schedule(expr, p.tz).next_after(now)
    except ValueError:  # a row saved before its schedule was refused: never scheduled
        return None
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
    """(host, volume) → the enabled policies matching it, first by name first (the first
    owns it). ``also``: one more, say a disabled policy being shown or run by hand — after
    the enabled ones, which own what they match (its run by hand backed up, and its
    retention forgot, a volume an enabled policy keeps by its own rules)."""
    selections = enabled_selections(session)
    if also is not None and also.enabled:
        selections[also.name] = selection_of(also)
    out = claims(selections, refs)
    if also is not None and not also.enabled:
        for key in claims({also.name: selection_of(also)}, refs):
            out.setdefault(key, []).append(also.name)
    return out


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
    """(host, volume) → the time of its newest good backup (``reads.newest_good_backups``)."""
    return reads.newest_good_backups(SessionRows(session), only)


def volume_status(session: Session, refs: list[VolumeRef], now: datetime | None = None
                  ) -> dict[tuple[str, str], dict[str, Any]]:
    """(host, volume) → ``policy``, ``policy_conflict``, ``rpo_seconds``,
    ``last_good_backup_at``, ``overdue`` (``reads.volume_status``)."""
    return reads.volume_status(SessionRows(session), refs, now)

"""Removing a host from volkeeper (``DELETE /hosts/{name}``, ``volkeeper hosts remove``):
a host whose worker will not come back (a typo'd ``--host``, a decommissioned machine, the
old name of a renamed one) otherwise stays in ``/health`` (degraded), in ``host_up`` (0)
and in the volume list for ever.

What goes: the host row and its volume inventory — so health, metrics, ``volkeeper
volumes`` and the policies no longer count it. What stays: its backups (the catalog names
their host as a string; they are still listed and restorable onto another host), its
finished jobs and migrations (history). A host that comes back simply registers again.

Refused (``Conflict``) while the host is online (its worker heartbeat is recent), has a
queued or running job, or is the source or destination of an unfinished migration (an
evacuation is a batch of those); in the embedded mode the current host — this machine —
is never removed (every command registers it again).

Policies whose selection names the host (``hosts``) are not changed behind the user's
back: the removal is refused naming each one and what would change, unless the caller
asks for those changes (``update_policies``; CLI ``--update-policies``, REST
``?update_policies=true``), made in the same transaction and each audited
(``policy.update``):

- a policy naming other hosts too has this one taken out of its ``hosts``;
- a policy naming only this host is *disabled*, its selection kept as it was — taking
  the host out would leave it selecting nothing, or (the criteria all apply) widen it to
  its volumes on every host. Re-point or delete it later. One already disabled is left
  alone (nothing to change; it does not refuse the removal).

The answer lists the changes (``policies_changed``) and the policies whose selection
still names the host (``policies``: the disabled ones)."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from common.audit import LOCAL_ACTOR, record_beside
from common.config import Settings
from common.db import Backup, Job, JobState, hosts
from common.db.clock import now as db_time
from common.db.migration_rows import FINAL_STATES, Migration
from common.db.models import Host, Policy, Volume, utcnow
from common.errors import Conflict
from common.jobs.views import OutModel

#: what the removal does to a policy naming the host
Change = Literal["host_dropped", "disabled"]
_SAID = {"host_dropped": "names other hosts too: it would be taken out of its hosts",
         "disabled": "names only this host: it would be disabled"}


class PolicyChangeOut(OutModel):
    name: str
    #: ``host_dropped``: taken out of its ``hosts``; ``disabled``: it named only this host
    #: (its selection is kept)
    change: Change
    #: its ``hosts`` after the change
    hosts: list[str]


class HostRemovedOut(OutModel):
    name: str
    #: inventory rows removed with it
    volumes: int
    #: its backups, kept in the catalog (``volkeeper backups --host NAME``)
    backups_kept: int
    #: policies whose selection still names it (disabled: they select nothing)
    policies: list[str]
    #: the policies this removal changed (``update_policies``)
    policies_changed: list[PolicyChangeOut] = []


def _refuse_busy(s: Session, name: str) -> None:
    active = list(s.execute(
        select(Job.id, Job.state).where(Job.host == name,
                                        Job.state.in_((JobState.queued, JobState.running)))
        .order_by(Job.created_at).limit(5)))
    if active:
        ids = ", ".join(f"{i} ({JobState(st)})" for i, st in active)
        raise Conflict(
            f"host {name!r} has unfinished jobs: {ids}",
            "cancel a queued one (`volkeeper cancel ID`); a running one whose worker is "
            "gone fails once VOLKEEPER_STALE_JOB_SECONDS pass without its heartbeat, or "
            "release it now (`volkeeper job ID --release`); then remove the host")
    moving = list(s.execute(
        select(Migration.id, Migration.batch).where(
            or_(Migration.source_host == name, Migration.dest_host == name),
            Migration.state.not_in(FINAL_STATES))
        .order_by(Migration.created_at).limit(5)))
    if moving:
        ids = ", ".join(m if not batch else f"{m} (evacuation {batch})" for m, batch in moving)
        raise Conflict(
            f"host {name!r} is part of unfinished migrations: {ids}",
            "let them end, or stop one (`volkeeper migration cancel ID`); then remove the "
            "host")


def _policy_plan(s: Session, name: str) -> list[tuple[Policy, Change]]:
    """The policies naming host ``name`` that its removal changes, and how (the module)."""
    plan: list[tuple[Policy, Change]] = []
    for p in s.scalars(select(Policy).order_by(Policy.name)):
        named = list((p.selection or {}).get("hosts") or [])
        if name not in named:
            continue
        if any(h != name for h in named):
            plan.append((p, "host_dropped"))
        elif p.enabled:
            plan.append((p, "disabled"))
    return plan


def _change_policies(s: Session, name: str, plan: list[tuple[Policy, Change]],
                     actor: str) -> list[PolicyChangeOut]:
    changed = []
    for p, change in plan:
        selection = dict(p.selection or {})
        if change == "host_dropped":
            selection["hosts"] = [h for h in selection.get("hosts") or [] if h != name]
            p.selection = selection
            details: dict[str, object] = {"hosts": selection["hosts"]}
        else:
            p.enabled = False
            details = {"enabled": False}
        p.updated_at = utcnow()
        record_beside(s, actor, "policy.update", p.name,
                      details | {"reason": f"host {name} removed"}, "ok", same=True)
        changed.append(PolicyChangeOut(name=p.name, change=change,
                                       hosts=list(selection.get("hosts") or [])))
    s.flush()
    return changed


def remove_host(s: Session, settings: Settings, name: str, *,
                update_policies: bool = False, actor: str = LOCAL_ACTOR) -> HostRemovedOut:
    """Remove host ``name`` and its inventory, keeping its backups (see the module);
    ``update_policies``: also change the policies naming it (else they refuse it).
    ``NotFound`` for an unknown host, ``Conflict`` when it may not be removed."""
    if settings.mode == "embedded" and name == settings.host_name:
        raise Conflict(
            f"host {name!r} is this machine (VOLKEEPER_HOST_NAME); it cannot be removed",
            "remove an old name this machine had (`volkeeper hosts` lists them)")
    host = hosts.get_host(s, name)
    offline_after = timedelta(seconds=settings.host_offline_after_seconds)
    now = db_time(s)
    online_hint = (f"stop its worker first: a host counts as offline "
                   f"{settings.host_offline_after_seconds:g}s after its last heartbeat "
                   "(VOLKEEPER_HOST_OFFLINE_AFTER_SECONDS)")
    if hosts.is_online(host, offline_after, now):
        raise Conflict(f"host {name!r} is online (its worker's last heartbeat was at "
                       f"{host.last_seen_at.isoformat(timespec='seconds')})", online_hint)
    _refuse_busy(s, name)
    plan = _policy_plan(s, name)
    if plan and not update_policies:
        said = "; ".join(f"{p.name} ({_SAID[change]})" for p, change in plan)
        raise Conflict(
            f"host {name!r} is named by policies: {said}",
            "remove it with --update-policies (REST: ?update_policies=true) to make "
            "those changes too, or change the policies first (`volkeeper policy update "
            "NAME --host ...`)")
    volumes = s.scalar(select(func.count()).select_from(Volume).where(Volume.host == name))
    kept = s.scalar(select(func.count()).select_from(Backup).where(Backup.host == name))
    changed = _change_policies(s, name, plan, actor)
    policies = sorted(p.name for p in s.scalars(select(Policy))
                      if name in ((p.selection or {}).get("hosts") or []))
    s.execute(delete(Volume).where(Volume.host == name)
              .execution_options(synchronize_session=False))
    # only while still offline: a worker that registered or sent a heartbeat since the
    # check above keeps its host (the delete removes nothing)
    gone = s.execute(delete(Host).where(Host.name == name,
                                        Host.last_seen_at <= now - offline_after)
                     .execution_options(synchronize_session=False))
    if not gone.rowcount:  # type: ignore[attr-defined]  # (the session is rolled back with the error)
        raise Conflict(f"host {name!r} came online while it was being removed", online_hint)
    return HostRemovedOut(name=name, volumes=volumes or 0, backups_kept=kept or 0,
                          policies=policies, policies_changed=changed)

"""A policy's scheduled checks: its ``verify_schedule`` reads back each selected volume's
newest good backup on the policy's first target (a repository backup: a random
``verify_subset_percent`` of its data, or the structure check alone when none is set; an
archive: a plain verify, always whole), its ``drill_schedule`` restores that backup into
a scratch volume and compares it. Both go through the job services exactly as
``volkeeper verify`` / ``volkeeper drill`` (same validation, same 409), with
``requested_by`` ``policy:NAME``: the results are in the job history like manual ones
and a failure is notified once (``common.notify``). A volume with no good backup there
yet, another policy backs up, or that is busy is skipped and named; every run is audited
(``policy.verify`` / ``policy.drill``).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from common.audit import LOCAL_ACTOR, record
from common.db import Backup, Job, Policy
from common.errors import Conflict, VolkeeperError
from common.formats import traits_of
from common.jobs.policies import PolicyService
from common.jobs.policy_runs import RunResult, not_found, requested_by
from common.jobs.policy_state import InventoryView, selected, selection_of
from common.jobs.policy_views import SkippedOut, owned

CHECKS = ("verify", "drill")


def run_check(service: PolicyService, name: str, kind: str, *, actor: str = LOCAL_ACTOR,
              view: InventoryView | None = None, refuse_busy: bool = False) -> RunResult:
    """Queue the policy's ``kind`` (``verify`` or ``drill``) of the newest good backup of
    every volume it selects and backs up — on its cadence (the scheduler) or now
    (``volkeeper policy verify|drill NAME``: ``refuse_busy``, refused with 409 like a
    single verify when every volume's check is busy). ``view``: the inventory and claims
    read once for a tick. Raises NotFound for an unknown policy."""
    if kind not in CHECKS:
        raise ValueError(f"unknown check {kind!r}")
    try:
        result = _run(service, name, kind, view, refuse_busy)
    except VolkeeperError as e:
        record(service.db, actor, f"policy.{kind}", name, {}, f"error: {e.code}: {e.message}")
        raise
    outcome = "queued" if result.jobs else "skipped" if result.skipped else "ok"
    record(service.db, actor, f"policy.{kind}", name,
           {"job_ids": [j.id for j in result.jobs],
            "skipped": [f"{x.host}/{x.volume}: {x.reason}" for x in result.skipped]},
           outcome)
    return result


def _run(service: PolicyService, name: str, kind: str, view: InventoryView | None,
         refuse_busy: bool) -> RunResult:
    result = RunResult(policy=name)
    with service.db.session() as s:
        p = s.scalar(select(Policy).where(Policy.name == name))
        if p is None:
            raise not_found(name)
        if view is not None and p.enabled:
            mine = view.inventory.select(selection_of(p))
            claimed = view.claims
        else:
            mine, claimed = selected(s, p)
        target, subset = p.targets[0], p.verify_subset_percent
        todo: list[tuple[str, str, Backup | None]] = []
        for v in owned(name, mine, claimed, result.skipped):
            todo.append((v.host, v.name, newest_good_backup(s, v.host, v.name, target)))
    busy = 0
    for host, volume, backup in todo:
        if backup is None:
            result.skipped.append(SkippedOut(
                host=host, volume=volume,
                reason=f"no good backup on target {target!r} yet: nothing to {kind}"))
            continue
        try:
            result.jobs.append(_submit(service, name, kind, backup, subset))
        except VolkeeperError as e:  # busy (409), host offline, backup forgotten meanwhile
            busy += isinstance(e, Conflict)
            result.skipped.append(SkippedOut(host=host, volume=volume, reason=e.message))
    if refuse_busy and busy and not result.jobs and busy == len(result.skipped):
        raise Conflict(f"policy {name!r}: the {kind} of every selected volume is busy ("
                       + "; ".join(x.reason for x in result.skipped) + ")",
                       f"wait for the running jobs and run `volkeeper policy {kind} "
                       f"{name}` again")
    return result


def _submit(service: PolicyService, name: str, kind: str, backup: Backup,
            subset: float | None) -> Job:
    by = requested_by(name)
    if kind == "drill":
        return service.ops.submit_drill(backup_id=backup.id, requested_by=by)
    if not traits_of(backup.format).subset_verify:
        subset = None  # an archive is one stream: always verified whole
    return service.ops.submit_verify(backup_id=backup.id, requested_by=by, subset=subset)


def newest_good_backup(s: Session, host: str, volume: str, target: str) -> Backup | None:
    """The newest regular backup (not a safety snapshot) of ``volume`` on ``target`` that
    no verification found damaged."""
    q = (select(Backup).where(Backup.host == host, Backup.volume == volume,
                              Backup.target == target, Backup.kind == "backup")
         .where((Backup.verify_status.is_(None)) | (Backup.verify_status != "damaged"))
         .order_by(Backup.created_at.desc()).limit(1))
    return s.scalar(q)

"""Running policies now: back up every volume a policy owns to its first target, through
the backup checks of the job services (same validation, same 409 for a busy volume, jobs
``requested_by`` ``policy:NAME``), each run audited (``policy.run``).

Any number of policies run together (``run_policies``: the scheduler's burst of due
runs, or ``volkeeper policy run NAME``) are recorded in **one transaction** — every job
row, every ``backup`` audit entry and every ``policy.run`` entry — and their task messages
are sent after it committed: on SQLite each commit waits for an fsync, so a burst of 1,000
due backups costs one instead of ~3,000.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from common.audit import record_all
from common.db import Job, Policy
from common.errors import Conflict, NotFound, VolkeeperError
from common.jobs.backup_checks import BackupRequest, check_format, queue_backups
from common.jobs.names import TASK_BACKUP
from common.jobs.operations import OperationsService
from common.jobs.policy_consistency import shown
from common.jobs.policy_state import InventoryView, parse_selection, selected
from common.jobs.policy_views import SkippedOut, owned

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What ``run`` started (jobs) and what it did not, with why."""

    policy: str
    jobs: list[Job] = field(default_factory=list)
    skipped: list[SkippedOut] = field(default_factory=list)


def requested_by(policy: str) -> str:
    return f"policy:{policy}"


def not_found(name: str) -> NotFound:
    return NotFound("policy", name, "list policies with `volkeeper policy list`")


def run_policies(ops: OperationsService, names: list[str], *, actor: str,
                 view: InventoryView | None = None, refuse_busy: bool = True
                 ) -> dict[str, RunResult | VolkeeperError]:
    """Run the policies ``names`` now; per name its result or why it was refused. A volume
    another policy owns, whose host is offline, or that is busy is skipped and named; when
    every selected volume of a policy is busy its run is refused (409) like a single
    backup — unless not ``refuse_busy`` (the scheduler): then it is recorded as skipped.
    ``view``: the inventory and claims to use (the scheduler reads them once a tick)."""
    out: dict[str, RunResult | VolkeeperError] = {}
    try:
        with ops.db.session() as s:
            columns = (Policy.name, Policy.enabled, Policy.selection, Policy.format,
                       Policy.targets, Policy.stop_containers, Policy.excludes,
                       Policy.snapshot, Policy.dump,
                       Policy.dump_databases)  # columns, not rows: a burst reads 1,000
            policies = {p.name: p for k in range(0, len(names), 500) for p in s.execute(
                select(*columns).where(Policy.name.in_(names[k:k + 500])))}
            requests: list[BackupRequest] = []
            owner: list[RunResult] = []
            for name in names:
                p = policies.get(name)
                if p is None:
                    out[name] = not_found(name)
                    continue
                result = out[name] = RunResult(policy=name)
                if view is not None and p.enabled:
                    mine = view.inventory.select(parse_selection(p.selection))
                    claimed = view.claims
                else:
                    mine, claimed = selected(s, s.scalars(select(Policy).where(
                        Policy.name == name)).one())
                try:
                    check_format(p.format or ops.settings.default_format)
                except VolkeeperError as e:
                    out[name] = e
                    continue
                how = shown(p)
                for v in owned(name, mine, claimed, result.skipped):
                    requests.append(BackupRequest(
                        volume=v.name, host=v.host, target=p.targets[0], fmt=p.format,
                        requested_by=requested_by(name), policy=name,
                        stop_containers=how["stop_containers"],
                        excludes=tuple(how["excludes"]), snapshot=how["snapshot"],
                        dump=how["dump"], dump_databases=tuple(how["dump_databases"])))
                    owner.append(result)
            busy: dict[str, list[Conflict]] = {}
            for req, result, made in zip(requests, owner, queue_backups(
                    s, ops.settings, requests), strict=True):
                if isinstance(made, Job):
                    result.jobs.append(made)
                    continue
                if isinstance(made, Conflict):
                    busy.setdefault(result.policy, []).append(made)
                result.skipped.append(SkippedOut(host=req.host, volume=req.volume,
                                                 reason=made.message))
            for name, res in out.items():
                if isinstance(res, RunResult) and refuse_busy:
                    out[name] = _refused(res, busy.get(name, []))
            record_all(s, (_entry(actor, name, r) for name, r in out.items()))
    except Exception as e:  # nothing was recorded: say so for each (one commit), then raise
        _refused_all(ops, actor, names, e)
        raise
    ops.dispatch_queued([j for r in out.values() if isinstance(r, RunResult)
                         for j in r.jobs], TASK_BACKUP)
    return out


def _refused(result: RunResult, busy: list[Conflict]) -> RunResult | VolkeeperError:
    if busy and not result.jobs and len(busy) == len(result.skipped):
        return Conflict(f"policy {result.policy!r}: every selected volume is busy ("
                        + "; ".join(e.message for e in busy) + ")",
                        busy[0].hint or "wait for the running jobs and run it again")
    return result


def _entry(actor: str, name: str, res: RunResult | VolkeeperError
           ) -> tuple[str, str, str, dict[str, Any], str]:
    """The ``policy.run`` audit entry of a run."""
    if isinstance(res, VolkeeperError):
        return actor, "policy.run", name, {}, f"error: {res.code}: {res.message}"
    outcome = "queued" if res.jobs else "skipped" if res.skipped else "ok"
    return (actor, "policy.run", name,
            {"job_ids": [j.id for j in res.jobs],
             "skipped": [f"{x.host}/{x.volume}: {x.reason}" for x in res.skipped]}, outcome)


def _refused_all(ops: OperationsService, actor: str, names: list[str], e: Exception) -> None:
    try:
        with ops.db.session() as s:
            record_all(s, ((actor, "policy.run", n, {}, f"error: {_error(e)}")
                           for n in names))
    except Exception as again:  # noqa: BLE001 - the audit must not hide the first error
        log.error("could not write the audit log (policy.run of %d policies by %s): %s",
                  len(names), actor, again)


def _error(e: Exception) -> str:
    return f"{e.code}: {e.message}" if isinstance(e, VolkeeperError) else str(e)

"""The steps of a migration, in order: what each one queues (a child job through the job
services, on the host it touches) and what its finished job adds to the migration's
report. ``migration_flow.Coordinator`` walks these tables."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from common.db import Job, jobs
from common.db.migration_rows import Migration
from common.errors import VolkeeperError
from common.jobs import migration_catchup as catchup
from common.jobs.names import MIGRATION_LABEL, TASK_MIGRATION_STEP
from common.jobs.operations import OperationsService


@dataclass(frozen=True)
class Step:
    name: str
    phase: str
    applies: Callable[[Migration], bool]
    submit: Callable[[OperationsService, Migration], Job]


def actor(m: Migration) -> str:
    return f"migration:{m.id}"


def create_options(m: Migration) -> dict[str, Any]:
    return {"driver": m.driver, "driver_opts": dict(m.driver_opts or {}),
            "labels": {MIGRATION_LABEL: m.id}}


def queue_step(ops: OperationsService, m: Migration, kind: str, *, host: str, volume: str,
               target: str | None = None, backup_id: str | None = None,
               params: dict[str, Any] | None = None, lock: str | None = None) -> Job:
    """Queue one of the migration's own steps (``migration_steps``) as a job."""
    with ops.db.session() as s:
        job = jobs.create_job(s, kind=kind, host=host, volume=volume, target=target,
                              backup_id=backup_id, requested_by=actor(m), lock=lock,
                              params={"migration": m.id, **(params or {})})
    return ops._dispatch(job, TASK_MIGRATION_STEP)


def report_of(m: Migration, key: str) -> Any:
    """One field of the migration's report (None when it is not there yet)."""
    return (m.report or {}).get(key)


def _recreating(m: Migration) -> bool:
    return bool(report_of(m, "recreate_containers") and report_of(m, "containers_stopped"))


def _catchup_round(n: int) -> tuple[Step, Step]:
    """Round N of the catch-up (``migration_catchup``): the running source backed up,
    then, if it changed, that snapshot synced onto the destination."""
    return (
        Step(f"catchup.backup.{n}", "catch-up", lambda m: catchup.backup_due(m, n),
             lambda ops, m: queue_step(
                 ops, m, "migration-catchup", host=m.source_host, volume=m.source_volume,
                 target=m.via, params={"since": catchup.since(m, n), "round": n})),
        Step(f"catchup.apply.{n}", "catch-up", lambda m: catchup.apply_due(m, n),
             lambda ops, m: queue_step(
                 ops, m, "migration-sync", host=m.dest_host, volume=m.dest_volume,
                 backup_id=catchup.backup_of(m, n),
                 params={"create": create_options(m), "round": n})))


FORWARD = (
    Step("precopy.backup", "pre-copy", lambda m: True, lambda ops, m: ops.submit_backup(
        volume=m.source_volume, host=m.source_host, target=m.via, fmt="repo",
        requested_by=actor(m), keep_trees=True)),
    Step("precopy.restore", "pre-copy", lambda m: True, lambda ops, m: ops._queue_restore(
        backup_id=report_of(m, "precopy_backup_id"), into=m.dest_volume, host=m.dest_host,
        requested_by=actor(m), mode="new", stop_containers=False,
        create=create_options(m), record_for=m.id)),
    *(step for n in range(1, catchup.ROUNDS + 1) for step in _catchup_round(n)),
    Step("cutover.backup", "cut-over", lambda m: True, lambda ops, m: queue_step(
        ops, m, "cutover", host=m.source_host, volume=m.source_volume, target=m.via,
        params={"stop": m.cutover == "stop"})),
    # one job on the destination applies and then verifies (``migration_steps.sync``'s
    # ``params.verify``): the verify step names that job once it has begun its verify
    Step("cutover.apply", "cut-over", lambda m: True, lambda ops, m: queue_step(
        ops, m, "migration-sync", host=m.dest_host, volume=m.dest_volume,
        backup_id=report_of(m, "final_backup_id"),
        params={"create": create_options(m), "verify": _verify_params(m)})),
    Step("verify", "verify", lambda m: True, lambda ops, m: _carried_verify(ops, m) or
         queue_step(ops, m, "migration-verify", host=m.dest_host, volume=m.dest_volume,
                    backup_id=report_of(m, "final_backup_id"), params=_verify_params(m))),
    Step("finish.capture", "finish",
         lambda m: _recreating(m) and m.dest_host != m.source_host,
         lambda ops, m: queue_step(
             ops, m, "migration-capture", host=m.source_host, volume=m.source_volume,
             lock=f"capture/{uuid.uuid4().hex}",
             params={"containers": report_of(m, "containers_stopped"),
                     "dest": m.dest_volume, "to_host": m.dest_host})),
    Step("finish.recreate", "finish", _recreating, lambda ops, m: queue_step(
        ops, m, "migration-recreate", host=m.dest_host, volume=m.dest_volume,
        params={"containers": report_of(m, "containers_stopped"),
                "source": m.source_volume,
                "capture": (m.steps or {}).get("finish.capture")})),
    Step("finish.retire", "finish", lambda m: m.remove_source, lambda ops, m: queue_step(
        ops, m, "migration-retire", host=m.source_host, volume=m.source_volume,
        target=m.via)),
)

ROLLBACK = (  # the source's side first: its containers run again while the
    # destination's host may still be away (its removal waits for it)
    Step("rollback.recreated", "rollback",
         lambda m: bool(report_of(m, "containers_recreated")),
         lambda ops, m: queue_step(ops, m, "migration-recreate", host=m.dest_host,
                                   volume=m.dest_volume,
                                   params={"undo": report_of(m, "containers_recreated")})),
    Step("rollback.check_source", "rollback",
         lambda m: bool(report_of(m, "source_removal_unknown")),
         lambda ops, m: queue_step(ops, m, "migration-exists", host=m.source_host,
                                   volume=m.source_volume,
                                   lock=f"exists/{uuid.uuid4().hex}")),
    Step("rollback.restore_source", "rollback",
         lambda m: bool(report_of(m, "source_removed")),
         lambda ops, m: ops._queue_restore(
             backup_id=_safety_backup(m), into=m.source_volume,
             host=m.source_host, requested_by=actor(m), mode="new", stop_containers=False)),
    Step("rollback.start_containers", "rollback",
         lambda m: bool(report_of(m, "containers_stopped")),
         lambda ops, m: queue_step(ops, m, "migration-start", host=m.source_host,
                                   volume=m.source_volume, lock=f"start/{uuid.uuid4().hex}",
                                   params={"containers": report_of(m, "containers_stopped")})),
    Step("rollback.remove_destination", "rollback",
         lambda m: "precopy.restore" in (m.steps or {}),
         # a succeeded one rolled back on request: the destination may hold what the
         # application wrote since; backed up (pinned) before it is removed
         lambda ops, m: queue_step(ops, m, "migration-remove", host=m.dest_host,
                                   volume=m.dest_volume,
                                   target=m.via if m.rollback_requested_by else None)),
)


def _verify_params(m: Migration) -> dict[str, Any]:
    return {"baseline": True, "durable": m.remove_source}


def carried(step: str, job: Job) -> str | None:
    """The later step that ``step``'s job went on to run itself: "verify" for a
    cut-over's apply that began its verify (its result's ``verify``: an apply queued
    before the two were one job never has it); else None."""
    if step == "cutover.apply" and isinstance((job.result or {}).get("verify"), dict):
        return "verify"
    return None


def ran_two(job: Job) -> bool:
    """Whether ``job`` is a cut-over's apply that also ran the verify (``carried``)."""
    return job.kind == "migration-sync" and carried("cutover.apply", job) is not None


def step_result(step: str, job: Job) -> dict[str, Any]:
    """What ``step`` itself did, from its job's result: where one job ran two steps
    (``ran_two``) the verify's is the result's ``verify``, the apply's the rest."""
    r = dict(job.result or {})
    if ran_two(job):
        v = r.pop("verify")
        return dict(v) if step == "verify" else r
    return r


def _carried_verify(ops: OperationsService, m: Migration) -> Job | None:
    """The cut-over's apply job when it ran the verify too (else the verify is queued as
    a job of its own: an apply queued before)."""
    job_id = (m.steps or {}).get("cutover.apply")
    if job_id is None:
        return None
    with ops.db.session() as s:
        job = jobs.get_job(s, job_id)
        s.expunge(job)
    return job if carried("cutover.apply", job) else None


def span(step: str, job: Job) -> tuple[str, datetime | None, datetime | None]:
    """A step's own state, start and end: its job's, except where one job ran two steps
    (``carried``): the first ends, succeeded, where the second began (``verify.started_at``
    in the job's result)."""
    began = job.started_at or job.created_at
    state, end = str(job.state), job.finished_at
    if not ran_two(job):
        return state, began, end
    mid = _when((job.result or {})["verify"].get("started_at"), began)
    if step == "cutover.apply":
        return "succeeded", began, mid or end
    return state, mid or began, end


def _when(text: object, like: datetime) -> datetime | None:
    """The ISO time ``text`` as aware or naive (UTC) as ``like`` (the database's)."""
    try:
        t = datetime.fromisoformat(str(text))
    except ValueError:
        return None
    t = t if t.tzinfo else t.replace(tzinfo=UTC)
    return t if like.tzinfo else t.astimezone(UTC).replace(tzinfo=None)


def _safety_backup(m: Migration) -> str:
    backup_id = report_of(m, "safety_backup_id")
    if not backup_id:
        raise VolkeeperError(f"the source {m.source_host}/{m.source_volume} is gone and "
                             "no safety backup of it was recorded",
                             "restore it from its latest backup (volkeeper backups); the "
                             "destination is kept")
    return str(backup_id)


def rolling_back(m: Migration) -> bool:
    return bool(report_of(m, "failure") or m.rollback_requested_by)


def absorb(m: Migration, step: str, job: Job) -> dict[str, Any]:
    """What a finished child job adds to the migration's report."""
    r = job.result or {}
    if step == "precopy.backup":
        return {"precopy_backup_id": job.backup_id}
    if step.startswith("catchup."):
        return catchup.absorb(m, step, job)
    if step == "cutover.backup":
        return {"final_backup_id": job.backup_id,
                "containers_stopped": r.get("containers_stopped") or [],
                "stopped_at": r.get("stopped_at")}
    if step == "cutover.apply":
        return {"apply_method": r.get("method")}
    if step == "finish.capture":
        return {"containers_left": r.get("skipped") or []}
    if step == "finish.recreate":
        return {"containers_recreated": r.get("recreated") or []}
    if step == "rollback.recreated":
        return {"containers_recreated": []}
    if step == "finish.retire":
        return {"safety_backup_id": r.get("safety_backup_id"), "source_removed": True}
    if step == "rollback.check_source":
        return {"source_removal_unknown": False, "source_removed": not r.get("exists")}
    if step == "rollback.restore_source":
        return {"source_removed": False, "source_restored": True}
    if step == "rollback.remove_destination":
        return {k: r[f] for k, f in (("destination_backup_id", "backup_id"),
                                     ("destination_files_left_in", "files_left_in"))
                if r.get(f)}
    if step == "rollback.start_containers":
        return {"containers_started": r.get("started") or []}
    return {}

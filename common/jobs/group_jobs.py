"""The job body of a group backup (``groups``): the group's volumes in one stop window
(``common.engine.group_backup``: members dumped, read from snapshots or live), the
containers about to be stopped and the snapshots about to be taken recorded on the job
first (the host's recovery starts and drops them after a crash), then one catalog row per
volume, tied together by the group id (the job's id)."""

from __future__ import annotations

from common.db.models import Job
from common.engine import group_backup as group_engine
from common.jobs import record
from common.jobs.context import JobContext
from common.jobs.groups import busy_members
from common.jobs.runner import Outcome
from common.progress import ProgressTracker


def group_backup(ctx: JobContext, job: Job, tracker: ProgressTracker) -> Outcome:
    """Back up the group's volumes; the result names each member's backup."""
    assert job.target is not None
    volumes = [str(v) for v in job.params.get("volumes") or []]
    with ctx.db.session() as s:  # a member taken by a single job since the submission
        busy_members(s, job.host, volumes, exclude=job.id)
    with ctx.open_target(job.target) as backend:
        done = group_engine.group_backup(
            ctx.docker, backend, host=job.host, volumes=volumes,
            fmt=job.params.get("format", ctx.settings.default_format), job_id=job.id,
            tracker=tracker, settings=ctx.settings_for(job.target),
            stop_containers=bool(job.params.get("stop_containers")),
            excludes=job.params.get("excludes") or (), snapshot=job.params.get("snapshot"),
            on_snapshots=lambda rs: record.snapshots_taking(ctx, job.id, rs),
            on_stopping=lambda cs: record.containers_stopping(ctx, job.id, cs),
            on_started=lambda: record.containers_started(ctx, job.id))
    ids = record.group_members(ctx, job, done.stored, {
        m.info.name: m.dumps.as_result() for m in done.members if m.dumps})
    result = done.as_result()
    for member, backup_id in zip(result["members"], ids, strict=True):
        member["backup_id"] = backup_id
    return Outcome(result | {"group_id": job.id, "backup_ids": ids})




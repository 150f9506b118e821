"""Job bodies that work on a volume of this host: backup, restore (into a new or empty
volume, or replacing its content), a restore's dry run (validate) and a restore drill.

A body takes the context, the job row and its progress tracker, calls the engine and
hands the engine's outcome to ``record``; what it returns goes on the job row."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable

from common.db import Backup
from common.db.models import Job
from common.engine.records import BackupOutcome, StoredBackup
from common.errors import Damaged, IntegrityError, Refused, RolledBack, VolkeeperError
from common.jobs import record
from common.jobs.context import JobContext
from common.jobs.runner import Outcome
from common.progress import ProgressTracker


def backup(ctx: JobContext, job: Job, tracker: ProgressTracker) -> Outcome:
    """Back up the volume between its hooks, its containers stopped when asked or
    labelled: what is about to be stopped is recorded on the job first (``host``'s
    recovery starts it again after a crash)."""
    from common.engine import backup as backup_engine

    assert job.target is not None
    if job.params.get("keep_trees"):  # a migration's pre-copy: its catch-up follows here
        return _precopy(ctx, job, tracker)
    with ctx.open_target(job.target) as backend:
        done = backup_engine.consistent_backup(
            ctx.docker, backend, host=job.host, volume=job.volume,
            fmt=job.params.get("format", ctx.settings.default_format), job_id=job.id,
            tracker=tracker, settings=ctx.settings_for(job.target),
            stop_containers=bool(job.params.get("stop_containers")),
            excludes=job.params.get("excludes") or (), dump=job.params.get("dump"),
            dump_databases=job.params.get("dump_databases"),
            on_stopping=lambda cs: record.containers_stopping(ctx, job.id, cs),
            on_started=lambda: record.containers_started(ctx, job.id),
            snapshot=job.params.get("snapshot"), labels_first=bool(job.params.get("policy")),
            on_snapshot=lambda r: record.snapshots_taking(ctx, job.id, [r] if r else []))
    backup_id = record.backup(ctx, job, done.outcome,
                              done.dumps.as_result() if done.dumps else None)
    return Outcome(done.as_result() | {"backup_id": backup_id}, backup_id)


def _precopy(ctx: JobContext, job: Job, tracker: ProgressTracker) -> Outcome:
    """A migration's pre-copy: a live copy of every file, as the catch-up's and the
    cut-over's backups (the volume's backup labels — stop-during-backup, hooks, excludes,
    dump — are not the migration's: its cut-over is the one stop, and the destination gets
    all files), keeping its trees and index for the catch-up (``engine.catchup``)."""
    from common.engine import backup as backup_engine
    from common.engine.catchup import precopy_keeping

    assert job.target is not None
    with ctx.open_target(job.target) as backend, precopy_keeping():
        out = backup_engine.backup_volume(
            ctx.docker, backend, host=job.host, volume=job.volume, fmt="repo",
            job_id=job.id, tracker=tracker, settings=ctx.settings_for(job.target))
    backup_id = record.backup(ctx, job, out)
    return Outcome(out.as_result() | {"backup_id": backup_id}, backup_id)


# The backup side (the engine's backup with its hooks) and the restore side (restore,
# replace, validate, drill) load with their first job: a one-shot command does without
# the other.


Body = Callable[[JobContext, Job, ProgressTracker], Outcome]


def _marks_damage(body: Body) -> Body:
    """A restore or drill that finds its backup's stored data damaged (IntegrityError: an
    archive's checksum, an authentication tag, a manifest) marks the backup damaged as a
    verification would: retention and the RPO stop counting it as a good backup and
    ``volkeeper backups`` shows it. Not a policy refusal (``Refused``: a device node, a
    hostile member) nor a drill's own comparison (the scratch volume's filesystem may be
    what differs): those say nothing of the stored bytes."""

    @functools.wraps(body)
    def run(ctx: JobContext, job: Job, tracker: ProgressTracker) -> Outcome:
        try:
            return body(ctx, job, tracker)
        except IntegrityError as e:
            if job.backup_id is not None and not isinstance(e, Refused | Damaged):
                record.damage_found(ctx, job, job.backup_id)
            raise

    return run


@_marks_damage
def restore(ctx: JobContext, job: Job, tracker: ProgressTracker) -> Outcome:
    from common.engine import restore as restore_engine

    b = ctx.job_backup(job)
    if job.params.get("mode") == "replace":
        return replace(ctx, job, b, tracker)
    if job.params.get("dump_into"):
        from common.engine import dump_restore

        with ctx.open_target(b.target) as backend:
            loaded = dump_restore.load_dump(
                ctx.docker, backend, StoredBackup.from_row(b),
                container=job.params["dump_into"], source=job.params.get("dump_from"),
                database=job.params.get("database"),
                replace_database=bool(job.params.get("replace_database")), tracker=tracker,
                settings=ctx.settings_for(b.target))
        return Outcome({"loaded": [x.as_result() for x in loaded]})
    walk = None
    index: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if job.params.get("record_for"):  # a migration's pre-copy: its verify baseline,
        from common.engine.catchup import destination_index
        from common.jobs.migration_steps import PrecopyRecord  # walked inside the restore

        walk = PrecopyRecord(tracker)
        index = destination_index()  # kept for the migration's syncs on this worker
    with ctx.open_target(b.target) as backend, index:
        out = restore_engine.restore_backup(
            ctx.docker, backend, StoredBackup.from_row(b), volume=job.volume,
            tracker=tracker, settings=ctx.settings_for(b.target), host=job.host,
            paths=job.params.get("paths"),
            on_writing=lambda created: record.restore_writing(ctx, job.id, created),
            then=walk.walk if walk is not None else None,
            **(job.params.get("create") or {}))
    if walk is not None:
        from common.jobs.migration_steps import record_restored

        return Outcome(out.as_result() | record_restored(ctx, job, tracker, walk)
                       | {"record_seconds": round(walk.seconds, 3)})
    return Outcome(out.as_result())


def replace(ctx: JobContext, job: Job, b: Backup, tracker: ProgressTracker) -> Outcome:
    """Replace the volume's content with backup ``b``, after a safety snapshot that a
    failure (or a crash: ``host.recover_interrupted``) puts back."""
    from common.engine import replace as replace_engine

    safety_id: str | None = None

    def on_safety(safety: BackupOutcome) -> None:
        nonlocal safety_id
        safety_id = record.safety_snapshot(ctx, job, b.target, safety)

    try:
        with ctx.open_target(b.target) as backend:
            out = replace_engine.replace_volume(
                ctx.docker, backend, StoredBackup.from_row(b), volume=job.volume,
                host=job.host, job_id=job.id,
                stop_containers=bool(job.params.get("stop_containers")), tracker=tracker,
                settings=ctx.settings_for(b.target), on_safety=on_safety,
                on_stopping=lambda cs: record.containers_stopping(ctx, job.id, cs),
                on_started=lambda: record.containers_started(ctx, job.id))
    except RolledBack as e:
        e.result |= {"safety_backup_id": safety_id, "replace_state": "rolled_back"}
        raise
    except VolkeeperError as e:
        if safety_id is not None:  # failed while rolling back: keep the marker
            e.result = {"safety_backup_id": safety_id,  # type: ignore[attr-defined]
                        "replace_state": "rollback_failed"}
        raise
    return Outcome(out.as_result() | {"safety_backup_id": safety_id, "replace_state": "done"})


def validate(ctx: JobContext, job: Job, tracker: ProgressTracker) -> Outcome:
    from common.engine import validate as validate_engine

    b = ctx.job_backup(job)
    with ctx.open_target(b.target) as backend:
        v = validate_engine.validate_restore(
            ctx.docker, backend, StoredBackup.from_row(b), host=job.host,
            volume=job.volume, settings=ctx.settings_for(b.target),
            mode=job.params.get("mode", "new"),
            stop_containers=bool(job.params.get("stop_containers")),
            paths=job.params.get("paths"))
    return Outcome(v.as_result())


@_marks_damage
def drill(ctx: JobContext, job: Job, tracker: ProgressTracker) -> Outcome:
    from common.engine import drill as drill_engine

    b = ctx.job_backup(job)
    with ctx.open_target(b.target) as backend:
        out = drill_engine.run_drill(
            ctx.docker, backend, StoredBackup.from_row(b), host=job.host,
            scratch=job.params["scratch_volume"], tracker=tracker,
            settings=ctx.settings_for(b.target))
    if not out.passed:
        raise Damaged(out.summary(), out.as_result(),
                      "verify the backup (volkeeper verify) and back the volume up again")
    return Outcome(out.as_result())

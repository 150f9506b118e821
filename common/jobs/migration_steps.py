"""The job bodies of a migration's own steps; each runs on the worker of the host it
works on, as an ordinary job (progress, heartbeat, cancel, recovery). The migration's
coordinator (``migration_flow``) queues them beside ordinary backup and restore jobs.

Kinds: ``migration-check`` (a quick task: one side's validation), ``cutover`` (stop the
source's containers, the final backup; they stay stopped), ``migration-catchup`` (a
catch-up round's backup of the running source, compared with the snapshot before it),
``migration-sync`` (apply a catch-up's or the final snapshot to the destination),
``migration-verify`` (the drill's comparison of the destination with the final
snapshot), ``migration-retire`` (``--remove-source``: a pinned backup of the source, then
the source removed), ``migration-remove`` (a rollback removes the destination it
created), ``migration-start`` (start the stopped containers again), ``migration-exists``
(is the source still there, after a ``migration-retire`` that did not finish)."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.db import catalog, jobs
from common.db.models import Backup, Job, utcnow
from common.docker import recreate as containers
from common.engine import migrate as engine
from common.engine.access import bound_dir
from common.engine.backup import backup_volume
from common.engine.catchup import catchup_backup, destination_index, forget_index
from common.engine.flush import flush_behind, flushing, write_out
from common.engine.records import StoredBackup
from common.engine.repo import load_backup
from common.engine.repo_verify import Seen, compare_tree
from common.errors import Conflict, Damaged, NotFound, StorageError
from common.formats import traits_of
from common.hooks import start_again
from common.jobs import record
from common.jobs.context import JobContext
from common.jobs.migration_state import (
    ROOT_META,
    boot_id,
    forget,
    held_path,
    hold,
    load_record,
    save_record,
    state_file,
    take_held,
)
from common.jobs.names import MIGRATION_LABEL
from common.jobs.owners import worker_name
from common.jobs.runner import Outcome
from common.progress import ProgressTracker
from common.repository import Repository
from common.repository.core.snapshot import Snapshot
from common.secretbox import seal, unseal
from common.storage.base import Backend

if TYPE_CHECKING:
    from common.archive import VerifyReport


def check(ctx: JobContext, job: Job, tracker: ProgressTracker) -> Outcome:
    """One side's validation: ``params.side`` is "source" or "destination"; both check
    that the via target (``job.target``) is reachable from this host."""
    p = job.params
    if p.get("side") == "source":
        out = engine.check_source(ctx.docker, job.volume, ctx.settings)
    else:
        out = engine.check_destination(ctx.docker, job.volume, p.get("driver") or "local",
                                       p.get("driver_opts") or {}, p.get("need_bytes"),
                                       ctx.settings, images=p.get("images"), host=job.host)
    out["checks"].append(_target_check(ctx, job.target))
    return Outcome(out)


def _target_check(ctx: JobContext, target: str | None) -> dict[str, Any]:
    name = f"target {target}"
    try:
        assert target is not None
        with ctx.open_target(target) as backend:
            backend.check()
    except Exception as e:  # noqa: BLE001 - reported as the check's outcome
        return {"name": name, "ok": False, "detail": f"target {target!r} is not reachable "
                f"from host {ctx.host}: {e}"}
    return {"name": name, "ok": True, "detail": f"reachable from host {ctx.host}"}


def cutover(ctx: JobContext, job: Job, tracker: ProgressTracker) -> Outcome:
    assert job.target is not None
    with ctx.open_target(job.target) as backend:
        done = engine.cutover_backup(
            ctx.docker, backend, host=job.host, volume=job.volume, job_id=job.id,
            tracker=tracker, settings=ctx.settings_for(job.target),
            stop=bool(job.params.get("stop")),
            on_stopping=lambda cs: record.containers_stopping(ctx, job.id, cs))
    backup_id = record.backup(ctx, job, done.backup)
    record.containers_started(ctx, job.id)  # the migration owns them now (its record)
    return Outcome(done.as_result() | {"backup_id": backup_id}, backup_id)


def catchup(ctx: JobContext, job: Job, tracker: ProgressTracker) -> Outcome:
    """A catch-up round: back the source up while it runs (nothing stopped), compared
    with ``params.since`` (the backup before it): the coordinator applies it only when
    something changed (``migration_plan``)."""
    assert job.target is not None
    with ctx.db.session() as s:
        since = StoredBackup.from_row(catalog.get_backup(s, str(job.params["since"])))
    tracker.set_phase(f"catch-up round {job.params.get('round', 1)}")
    with ctx.open_target(job.target) as backend:
        done = catchup_backup(ctx.docker, backend, host=job.host, volume=job.volume,
                              job_id=job.id, tracker=tracker,
                              settings=ctx.settings_for(job.target), since=since)
    backup_id = record.backup(ctx, job, done.backup)
    return Outcome(done.as_result() | {"backup_id": backup_id}, backup_id)


def sync(ctx: JobContext, job: Job, tracker: ProgressTracker) -> Outcome:
    """Apply the job's backup to the destination; what the sync writes goes into the
    pre-copy's record here, if any (``sync_volume``'s ``record``): the verify trusts it
    (in this boot only: nothing waits for the writeback, ``migration_state``).

    The snapshot the destination holds (``migration_state``: written after the pre-copy's restore
    and after each apply, when they left it exactly equal to their snapshot) lets the
    sync skip what did not change since (``sync_volume``'s ``held``); it is forgotten
    before the sync starts, so a sync that stops part-way is followed by a full walk.

    With ``params.verify`` (the cut-over's apply: ``verify``'s params) the same job then
    verifies the destination (``_then_verify``): one job on the destination for the
    cut-over's two steps, the repository, its index and the record loaded once."""
    b = ctx.job_backup(job)
    backup = StoredBackup.from_row(b)
    create = job.params.get("create") or {}
    state = state_file(ctx.settings.home, str(job.params.get("migration")))
    trusted = load_record(state) if state.is_file() else None
    held = take_held(state) if trusted is not None else None
    then = job.params.get("verify")
    settings = ctx.settings_for(b.target)
    where = engine.volume_path(ctx.docker, job.volume, ctx.settings)
    with ctx.open_target(b.target) as backend, destination_index():
        opened = load_backup(backend, backup, settings) \
            if not traits_of(backup.format).archive else None
        out = engine.apply_final(
            ctx.docker, backend, backup, job.volume, settings, tracker,
            driver=create.get("driver") or "local",
            driver_opts=create.get("driver_opts") or {}, labels=create.get("labels") or {},
            record=trusted, held=held, opened=opened, path=where)
        if isinstance(then, dict):  # (a full restore recreated the volume: looked up again)
            return _then_verify(ctx, job, tracker, backend, b, out, then, opened,
                                trusted if then.get("baseline") else None,
                                where if out.get("method") == "sync" else None)
    if trusted is not None and out.get("method") == "sync":
        save_record(state, trusted)
        if not out.get("warnings"):
            hold(state, backup.snapshot_id)
    return Outcome(out)


def _then_verify(ctx: JobContext, job: Job, tracker: ProgressTracker, backend: Backend,
                 b: Backup, applied: dict[str, Any], params: dict[str, Any],
                 opened: tuple[Repository, Snapshot] | None, trusted: Seen | None,
                 where: Path | None) -> Outcome:
    """The verify right after the apply, in its job: the record the apply just updated
    is trusted as it is in memory (not written out and read back: only this job used it
    after the apply), the repository opened once. The apply's result is kept in the job
    (``verify.started_at`` marks where the verify began) before the verify starts, so
    the migration tells a failure of either step (``migration_plan.carried``); the
    verify's own result is ``result.verify``. A difference fails the job as a verify
    job's would, with both results."""
    began = time.monotonic()
    started = {"started_at": utcnow().isoformat()}
    with ctx.db.session() as s:
        jobs.update_result(s, job.id, applied | {"verify": started},
                           worker=worker_name(ctx.host))
    try:
        done = _verify(ctx, job, tracker, backend, b, trusted, opened,
                       durable=bool(params.get("durable", True)), where=where)
    except Damaged as e:
        raise Damaged(e.message, applied | {"verify": started | e.result | {
            "seconds": round(time.monotonic() - began, 3)}}, e.hint) from None
    return Outcome(applied | {"verify": started | done | {
        "seconds": round(time.monotonic() - began, 3)}})


def verify(ctx: JobContext, job: Job, tracker: ProgressTracker) -> Outcome:
    """Compare the destination with the job's backup; any difference fails the job (and
    so the migration, which rolls back). With ``params.baseline`` it trusts what the
    pre-copy's restore recorded in this host's migration state (``record_restored``):
    every entry's metadata is compared, the content is read only of the files whose stat
    changed since, or not matched then (``compare_tree``). The destination's file system
    is flushed beside the comparison: with ``params.durable`` (``--remove-source``: the
    finish removes the source) the job ends when it is on disk; otherwise the flush goes
    on behind the job's end, outside the downtime (the source is kept, and a volume an
    application can use needs no writeback first: as after any restore). A cut-over's
    apply queued since session 13 runs this itself (``sync``'s ``params.verify``); this
    job is what an apply queued before runs after it."""
    b = ctx.job_backup(job)
    state = state_file(ctx.settings.home, str(job.params.get("migration")))
    trusted = load_record(state) if job.params.get("baseline") else None
    with ctx.open_target(b.target) as backend:
        return Outcome(_verify(ctx, job, tracker, backend, b, trusted, None,
                               durable=bool(job.params.get("durable", True))))


def _verify(ctx: JobContext, job: Job, tracker: ProgressTracker, backend: Backend,
            b: Backup, trusted: Seen | None, opened: tuple[Repository, Snapshot] | None,
            *, durable: bool, where: Path | None = None) -> dict[str, Any]:
    """``verify``'s comparison (and ``sync``'s after its apply): its result, or Damaged.
    ``where``: the volume's path, when the caller has looked it up."""
    state = state_file(ctx.settings.home, str(job.params.get("migration")))
    seen: Seen = {}
    tracker.set_phase("comparing")
    dest = [where or engine.volume_path(ctx.docker, job.volume, ctx.settings)]
    # meanwhile what the cut-over's sync wrote goes to disk (``engine.flush``); a durable
    # verify (also a job queued before ``durable`` existed) waits for it at the end
    flush_behind(dest)
    report = engine.compare(ctx.docker, backend, StoredBackup.from_row(b), job.volume,
                            ctx.settings_for(b.target), tracker, trusted=trusted,
                            seen=seen, opened=opened, path=dest[0])
    result = {"ok": report.ok, "entries_checked": report.entries_checked,
              "files_trusted": sum(1 for k, v in seen.items()
                                   if trusted and tuple(trusted.get(k) or ()) == v),
              "problems": report.problems[:50], "problem_count": report.problem_count}
    if not report.ok:
        raise Damaged(f"the destination volume {job.volume!r} differs from the "
                      f"snapshot: {'; '.join(report.problems[:3])}", result,
                      "the migration is rolled back; look for what writes into the "
                      "destination, then migrate again")
    if durable:
        _written_out(job.volume, dest)
    forget(state)
    forget_index()  # the migration's index kept on this worker (``destination_index``)
    return result


def _written_out(volume: str, dest: list[Path | None]) -> None:
    """Make sure the verified destination is on disk before the finish may remove the
    source: its file system synced (every file system where its path is not known), a
    write error reported by the kernel failing the verify (and so the migration, which
    rolls back and keeps the source)."""
    try:
        paths = [p for p in dest if p is not None]
        if paths:
            write_out(paths)
        else:
            os.sync()
    except OSError as e:
        raise StorageError(f"the destination volume {volume!r} could not be written out to "
                           f"disk ({e.strerror or e}); the source is kept",
                           "look at the destination host's disk (dmesg, free space), then "
                           "migrate again") from None


@contextlib.contextmanager
def _written_back(paths: list[Path | None]) -> Iterator[None]:
    """What was written into ``paths`` goes to disk beside the block. Not waited for:
    the record and the held snapshot count only until the next reboot
    (``migration_state``), so a crash before the writeback leaves nothing vouched for;
    where the boot id cannot be read the block's end waits for it, so that the pre-copy
    is on disk when its job ends."""
    if boot_id() is None:
        with flushing(paths):
            yield
    else:
        flush_behind(paths)
        yield


class PrecopyRecord:
    """The pre-copy restore's record walked inside the restore (``restore_backup``'s
    ``then``): right after its last file, under its lock, with the repository, snapshot
    and index it restored from — no second opening, lock or index load. ``walk`` leaves
    the report and what it saw here for ``record_restored``."""

    def __init__(self, tracker: ProgressTracker) -> None:
        self.tracker = tracker
        self.seen: Seen = {}
        self.report: VerifyReport | None = None
        self.path: Path | None = None
        self.snapshot_id = ""
        self.seconds = 0.0

    def walk(self, repo: Repository, snap: Snapshot, path: Path) -> None:
        began = time.monotonic()
        self.path, self.snapshot_id = path, snap.id.hex()
        with _written_back([path]):
            self.report = compare_tree(repo, snap, path, self.tracker, seen=self.seen,
                                       written=True, load_index=False)
        self.seconds = time.monotonic() - began


def record_restored(ctx: JobContext, job: Job, tracker: ProgressTracker,
                    walked: PrecopyRecord | None = None) -> dict[str, Any]:
    """Right after the pre-copy's restore (the same job, on the destination host): what it
    wrote, with the stat it left — the baseline of the verify after the cut-over, which
    reads only the files whose stat changed since (no separate check walks the volume
    again before the cut-over: it would repeat this walk, and its differences would not
    stop the migration either — the cut-over's sync makes the destination equal). The
    restore verified every blob as it wrote it, so the content is the snapshot's without
    reading it again; the metadata and sizes are compared here. What this cannot see: a
    write into the new volume while the restore itself runs (the volume is new, locked,
    and no container uses it). ``walked``: the walk already made inside the restore
    (``PrecopyRecord``); without one (the restore went through the Docker API, or the
    backup is no repository snapshot) the volume is compared here.

    What the restore wrote is flushed beside the walk (``_written_back``), so the
    cut-over's stop does not wait for that writeback (``engine.flush``) and little of it
    is left when the catch-up's backup starts (beside it on a host that is both source
    and destination)."""
    if walked is not None and walked.report is not None:
        report, seen, snapshot = walked.report, walked.seen, walked.snapshot_id
    else:
        b = ctx.job_backup(job)
        seen = {}
        snapshot = b.snapshot_id or ""
        with ctx.open_target(b.target) as backend, \
                _written_back([engine.volume_path(ctx.docker, job.volume, ctx.settings)]):
            report = engine.compare(ctx.docker, backend, StoredBackup.from_row(b),
                                    job.volume, ctx.settings_for(b.target), tracker,
                                    seen=seen, written=True)
    keep_record(state_file(ctx.settings.home, str(job.params.get("record_for"))), report,
                seen, snapshot)
    return {"files_recorded": len(seen), "record_problems": report.problems[:10]}


def keep_record(state: Path, report: VerifyReport, seen: Seen, snapshot: str) -> None:
    """Save the pre-copy's record ``seen`` as the migration's ``state``; when its
    comparison found nothing (the root's own metadata aside, which a bind volume's
    directory may not keep and every sync sets again) the destination holds ``snapshot``
    exactly: the next sync trusts that (``migration_state.hold``)."""
    held_path(state).unlink(missing_ok=True)
    save_record(state, seen)
    if report.problem_count == len(report.problems) and all(
            p.startswith(ROOT_META) for p in report.problems):
        hold(state, snapshot)


def _pinned_backup(ctx: JobContext, job: Job, tracker: ProgressTracker, tag: str,
                   key: str) -> str:
    """A backup of ``job.volume`` to ``job.target``, pinned (retention keeps it) and
    tagged ``tag``; its id noted on the job's result as ``key`` before anything else."""
    assert job.target is not None
    with ctx.open_target(job.target) as backend:
        out = backup_volume(ctx.docker, backend, host=job.host, volume=job.volume,
                            fmt="repo", job_id=job.id, tracker=tracker,
                            settings=ctx.settings_for(job.target))
    backup_id = record.backup(ctx, job, out)
    with ctx.db.session() as s:
        catalog.label_backup(s, backup_id, add=[tag], pinned=True)
        jobs.update_result(s, job.id, {key: backup_id}, worker=worker_name(ctx.host))
    return backup_id


def retire(ctx: JobContext, job: Job, tracker: ProgressTracker) -> Outcome:
    """A last backup of the source, pinned (retention keeps it), then the source removed."""
    # noted before the removal: a kill from here on leaves the source maybe removed, and
    # the rollback restores it from this backup if it is gone (``exists``)
    backup_id = _pinned_backup(ctx, job, tracker, "migration-safety", "safety_backup_id")
    tracker.set_phase("removing the source")
    ctx.docker.remove_volume(job.volume)
    return Outcome({"safety_backup_id": backup_id, "removed": job.volume}, backup_id)


def exists(ctx: JobContext, job: Job, tracker: ProgressTracker) -> Outcome:
    """Whether ``job.volume`` exists on this host (a rollback after a ``finish.retire``
    that did not finish: was the source removed?)."""
    try:
        ctx.docker.volume(job.volume)
    except NotFound:
        return Outcome({"exists": False})
    return Outcome({"exists": True})


def remove(ctx: JobContext, job: Job, tracker: ProgressTracker) -> Outcome:
    """Remove the destination volume — only one this migration created (its label) — and
    this host's state of the migration (its record and held snapshot: ``forget``; the
    index its jobs kept in this worker: ``forget_index``). With a target (the rollback of
    a succeeded migration: the application may have written into the destination since)
    a pinned backup of it (tag ``migration-rollback``) is taken first, so nothing written
    there is lost."""
    tracker.set_phase("removing the destination")
    forget(state_file(ctx.settings.home, str(job.params.get("migration"))))
    forget_index()
    try:
        info = ctx.docker.volume(job.volume)
    except NotFound:
        return Outcome({"removed": False, "detail": "the destination did not exist"})
    if info.labels.get(MIGRATION_LABEL) != job.params.get("migration"):
        raise Conflict(f"volume {job.volume!r} was not created by migration "
                       f"{job.params.get('migration')}; it is left alone",
                       "remove it by hand if it is not needed")
    # a bind volume's files stay in its device directory when the volume goes: never
    # deleted here (they may be someone's), named in the report instead
    bound = bound_dir(ctx.docker, job.volume)
    result: dict[str, Any] = {"removed": True}
    backup_id = None
    if job.target is not None:
        tracker.set_phase("backing up the destination")
        backup_id = _pinned_backup(ctx, job, tracker, "migration-rollback", "backup_id")
        result["backup_id"] = backup_id
        tracker.set_phase("removing the destination")
    ctx.docker.remove_volume(job.volume)
    with contextlib.suppress(OSError):  # (the directory gone too: nothing left)
        if bound is not None and any(bound.iterdir()):
            result["files_left_in"] = str(bound)
    return Outcome(result, backup_id)


def recreate(ctx: JobContext, job: Job, tracker: ProgressTracker) -> Outcome:
    """``--recreate-containers``: the containers stopped for the cut-over recreated on
    the destination (``job.volume``) and started — on this host from their own
    configuration, or, with ``params.capture`` (another host), from the creation bodies
    that ``capture`` job took on the source host; with ``params.undo`` (a rollback) the
    recreated ones removed (and, on one host, the old ones given their names back)."""
    p = job.params
    if p.get("undo"):
        tracker.set_phase("putting the old containers back")
        for done in reversed(p["undo"]):
            containers.undo(ctx.docker, done)
        return Outcome({"undone": [d["name"] for d in p["undo"]]})
    tracker.set_phase("recreating containers")
    made: list[dict[str, str]] = []
    try:
        if p.get("capture"):
            for c in _captured(ctx, str(p["capture"])):
                _need_image(ctx, c["name"], str(c["body"].get("Image") or ""))
                made.append({"name": c["name"], "old_id": c["old_id"], "other_host": "1",
                             "new_id": containers.create(ctx.docker, c["name"], c["body"],
                                                         start=True)})
        else:
            for c in reversed(p.get("containers") or []):  # started in reverse stop order
                made.append(containers.recreate(
                    ctx.docker, c["id"], p["source"], job.volume,
                    f"{c['name']}-pre-migration-{p['migration']}", start=True))
    except Exception:
        for done in reversed(made):
            containers.undo(ctx.docker, done)
        raise
    return Outcome({"recreated": made})


def capture(ctx: JobContext, job: Job, tracker: ProgressTracker) -> Outcome:
    """Across hosts: each container stopped for the cut-over as a creation body for the
    destination host, sealed (its environment may hold secrets). One that also mounts
    another volume or a host path is left (stopped, here): on the destination that would
    be created empty."""
    p = job.params
    bodies: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    for c in reversed(p.get("containers") or []):
        info = containers.inspect(ctx.docker, c["id"])
        others = sorted({str(m.get("Name") or m.get("Source")) for m in info.get("Mounts")
                         or [] if m.get("Type") in ("volume", "bind")
                         and m.get("Name") != job.volume})
        if others:
            skipped.append({"name": c["name"], "reason": f"it also mounts {', '.join(others)}"
                            f": recreate it on host {p['to_host']} by hand once that is there"})
            continue
        bodies.append({"name": c["name"], "old_id": str(info["Id"]),
                       "body": containers.creation_body(info, job.volume, p["dest"])})
    return Outcome({"sealed": seal({"containers": bodies}, ctx.settings),
                    "containers": [b["name"] for b in bodies], "skipped": skipped})


def _captured(ctx: JobContext, job_id: str) -> list[dict[str, Any]]:
    with ctx.db.session() as s:
        sealed = dict((jobs.get_job(s, job_id).result or {}).get("sealed") or {})
    return list(unseal(sealed, ctx.settings).get("containers") or []) if sealed else []


def _need_image(ctx: JobContext, name: str, image: str) -> None:
    try:
        ctx.docker.client.images.get(image)
    except Exception:  # noqa: BLE001 - docker's NotFound (or an odd reference)
        raise Conflict(f"image {image!r} of container {name!r} is not on host {ctx.host}",
                       f"pull or load it on {ctx.host}, then migrate again") from None


def start(ctx: JobContext, job: Job, tracker: ProgressTracker) -> Outcome:
    tracker.set_phase("starting containers")
    started = start_again(ctx.docker, job.params.get("containers") or [])
    return Outcome({"started": started})


BODIES = {"migration-check": check, "cutover": cutover, "migration-catchup": catchup,
          "migration-sync": sync,
          "migration-verify": verify, "migration-retire": retire,
          "migration-remove": remove, "migration-start": start,
          "migration-recreate": recreate, "migration-exists": exists,
          "migration-capture": capture}


def run(ctx: JobContext, job: Job, tracker: ProgressTracker) -> Outcome:
    """The migration step task's body: the step of ``job.kind``."""
    return BODIES[job.kind](ctx, job, tracker)

"""Archive objects a killed job left in storage without a catalog row.

An archive backup — and the ``tar.zst`` safety snapshot a replace-restore takes first, and
an archive copied to another target — is stored before it is cataloged. A worker killed
between the two leaves the archive and its manifest behind with no catalog row: nothing
lists, expires or forgets them (a safety snapshot is a whole copy of the volume's previous
content), found by the kill drill (``benchmarks/kill_drill.py``). (The next copy of the
same backup keeps a copy's leftovers when they are the same objects, so they are left alone
while a copy to that target is queued or running.) A backup's or a safety snapshot's keys
end in ``-<job id><ext>`` (``formats.archive.archive_key``), a copy's are its source's; so
once such a job has failed and the process that ran it is known dead (``owners.is_dead``:
it can no longer upload or catalog anything), the host's worker removes those of its keys
the catalog does not know on that target, and notes them on the job
(``result["leftovers"]``, which also marks it as done). A group backup (``group-backup``)
stores its members one after the other and catalogs them together at the end: a killed one
leaves the archives of the members stored so far, under each member volume's prefix,
removed the same way.
Repository backups need nothing of this: a killed backup's packs are indexed and re-used, and a
snapshot without a catalog row is adopted with ``volkeeper snapshots --adopt``.
"""

from __future__ import annotations

import logging

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from common.db import Backup, Job, JobState
from common.db.clock import now as db_time
from common.errors import NotFound, VolkeeperError
from common.jobs import owners
from common.jobs.context import JobContext
from common.jobs.host_rows import LEFTOVER_KINDS, LEFTOVERS_WITHIN, leftover_plan
from common.storage.base import Backend

log = logging.getLogger(__name__)
#: failed jobs this recent are looked at (older ones were, by the worker of their time)
WITHIN = LEFTOVERS_WITHIN


def remove_leftovers(ctx: JobContext) -> list[str]:
    """Remove the uncataloged archive objects of this host's failed jobs whose process is
    known dead; returns the keys removed."""
    with ctx.db.session() as s:
        since = db_time(s) - WITHIN
        q = select(Job).where(Job.host == ctx.host, Job.state == JobState.failed,
                              Job.kind.in_(LEFTOVER_KINDS),
                              Job.finished_at > since)
        todo = []
        for job in s.scalars(q):
            if "leftovers" in (job.result or {}):
                continue
            source = s.get(Backup, job.backup_id) if job.backup_id else None
            plan = leftover_plan(job, source)
            if plan is not None and owners.is_dead(s, job) \
                    and not (job.kind == "copy" and _copying(s, job, plan[0])):
                todo.append((job.id, *plan))
    removed: list[str] = []
    for job_id, target, prefixes, exact in todo:
        try:
            keys = _remove(ctx, job_id, target, prefixes, exact)
        except VolkeeperError as e:
            _could_not_look(ctx, job_id, target, e)
            continue
        with ctx.db.session() as s:
            row = s.get(Job, job_id)
            if row is not None:
                row.result = {**(row.result or {}), "leftovers": keys}
        for key in keys:
            log.warning("job %s: removed %s from target %s (stored, never cataloged: its "
                        "worker died in between)", job_id, key, target)
        removed += keys
    return removed


def _copying(s: Session, job: Job, target: str) -> bool:
    """Whether another copy of ``job``'s backup to ``target`` is queued or running: a
    copy's keys are its source's, and the next copy keeps what an earlier one left when
    it is the same (``archive_objects.copy``), so they are not removed under it (looked
    at again by a later pass)."""
    active = s.scalars(select(Job).where(
        Job.state.in_((JobState.queued, JobState.running)),
        Job.kind.in_(("copy", "migrate-target"))))
    return any((j.params or {}).get("destination") == target
               and (j.kind != "copy" or j.backup_id == job.backup_id) for j in active)


def _could_not_look(ctx: JobContext, job_id: str, target: str, e: VolkeeperError) -> None:
    """Say so once per job and problem: the look is tried again at every start (each
    embedded command), which must not repeat the same warning for two days; the problem
    is noted on the job (``result["leftovers_error"]``)."""
    problem = str(e)
    with ctx.db.session() as s:
        row = s.get(Job, job_id)
        said = (row.result or {}).get("leftovers_error") if row is not None else None
        if row is not None and said != problem:
            row.result = {**(row.result or {}), "leftovers_error": problem}
    (log.info if said == problem else log.warning)(
        "job %s: could not look for objects it left in %s: %s", job_id, target, problem)


def _remove(ctx: JobContext, job_id: str, target: str, prefixes: list[str],
            exact: list[str]) -> list[str]:
    with ctx.open_target(target) as backend:
        if exact:
            mine = [k for k in exact if k and _exists(backend, k)]
        else:
            mine = [o.key for prefix in prefixes for o in backend.list(prefix)
                    if f"-{job_id}." in o.key.rsplit("/", 1)[-1]]
        gone: list[str] = []
        if mine:
            with ctx.db.session() as s:
                rows = s.execute(select(Backup.key, Backup.manifest_key).where(
                    Backup.target == target,
                    or_(Backup.key.in_(mine), Backup.manifest_key.in_(mine)))).all()
            known = {k for row in rows for k in row}
            gone = [k for k in mine if k not in known]
            for key in gone:
                backend.delete(key)
        # and the unfinished upload the kill cut short (a local target's partial file)
        for prefix in prefixes:
            gone += backend.discard_partials(prefix, f"-{job_id}.")
        return gone


def _exists(backend: Backend, key: str) -> bool:
    try:
        backend.stat(key)
    except NotFound:
        return False
    return True

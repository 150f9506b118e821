"""Which catalog row is "the copy already there" of an archive backup: the same sha256
*and* key (a copy keeps its source's key). Two backups of a volume that did not change in
between are byte-identical archives under keys of their own (times, jobs): copying the
second after the first must catalog it (it was stored, and left unlisted and never
forgotten before; a policy's copy target kept only its first copy), and migrate-target
must not take the first's copy for the second's."""

from __future__ import annotations

from common.db import Backup, JobState, catalog, jobs
from common.engine.records import CopyOutcome
from common.jobs import record
from common.jobs.context import JobContext
from common.jobs.target_migration import _copy_on
from tests.unit.jobs.test_fencing import ctx

__all__ = ["ctx"]

SHA = "blake3:" + "ab" * 32


def _archive(ctx: JobContext, target: str, key: str) -> Backup:
    with ctx.db.session() as s:
        row = catalog.add_backup(s, job_id=key[-4:], host="h1", volume="data", target=target,
                                 format="tar.zst", key=key, manifest_key=key + ".manifest",
                                 stored_bytes=9, logical_bytes=9, file_count=1,
                                 checksum=SHA)
        s.expunge(row)
        return row


def _copy(ctx: JobContext, source: Backup) -> tuple[str, bool]:
    with ctx.db.session() as s:
        job = jobs.create_job(s, kind="copy", host="h1", volume="data", target="local",
                              backup_id=source.id, params={"destination": "other"})
        jobs.start_job(s, job.id, "w1")
        job = jobs.get_job(s, job.id)
    out = CopyOutcome(key=source.key, manifest_key=source.manifest_key, checksum=SHA,
                      stored_bytes=9)
    made = record.copy(ctx, job, source, "other", out)
    with ctx.db.session() as s:
        jobs.finish_job(s, job.id, JobState.succeeded, worker="w1")
    return made


def test_identical_archives_of_two_backups_are_two_copies(ctx: JobContext) -> None:
    with ctx.db.session() as s:
        catalog.ensure_target(s, "other", "file:///nowhere")
    first = _archive(ctx, "local", "volkeeper/archives/h1/data/20260101T000000Z-j1.tar.zst")
    second = _archive(ctx, "local", "volkeeper/archives/h1/data/20260102T000000Z-j2.tar.zst")
    first_copy, there = _copy(ctx, first)
    assert not there
    second_copy, there = _copy(ctx, second)
    assert not there and second_copy != first_copy
    assert _copy(ctx, second) == (second_copy, True)  # the same one again: no second row
    with ctx.db.session() as s:
        copies = s.query(Backup).filter(Backup.target == "other").all()
        assert sorted(b.key for b in copies) == sorted([first.key, second.key])
        found = _copy_on(s, second, "other")
        assert found is not None and found.id == second_copy

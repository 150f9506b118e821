"""A repair with --forget-broken rewrites broken snapshots without their broken files:
the catalog's backups follow them to the new snapshots and carry their ``repaired`` tag,
so `volkeeper backups` does not show a backup that lost files as an untouched one."""

from __future__ import annotations

from common.db import Backup, jobs
from common.jobs import record
from common.jobs.context import JobContext
from common.repository import ids
from tests.unit.jobs.test_fencing import ctx

__all__ = ["ctx"]

OLD, NEW, OTHER = "aa" * 32, "bb" * 32, "cc" * 32


def _repo_backup(ctx: JobContext, snapshot: str, tags: list[str]) -> str:
    from common.db import catalog

    with ctx.db.session() as s:
        return catalog.add_backup(
            s, job_id="j" + snapshot[:4], host="h1", volume="data", target="local",
            format="repo", key=ids.snapshot_key(bytes.fromhex(snapshot)), manifest_key="",
            stored_bytes=1, logical_bytes=1, file_count=1, checksum="",
            snapshot_id=snapshot, tags=tags).id


def test_rewritten_snapshots_move_their_backups_and_tag_them_repaired(
        ctx: JobContext) -> None:
    broken = _repo_backup(ctx, OLD, ["before-upgrade"])
    whole = _repo_backup(ctx, OTHER, [])
    with ctx.db.session() as s:
        job = jobs.create_job(s, kind="repair", host="h1", volume="", target="local")
        jobs.start_job(s, job.id, "w1")
        job = jobs.get_job(s, job.id)
    assert record.repaired_snapshots(ctx, job, {OLD: NEW}) == 1
    with ctx.db.session() as s:
        row, untouched = s.get(Backup, broken), s.get(Backup, whole)
        assert row is not None and untouched is not None
        assert row.snapshot_id == NEW and row.key == ids.snapshot_key(bytes.fromhex(NEW))
        assert row.tags == ["before-upgrade", "repaired"]
        assert untouched.snapshot_id == OTHER and untouched.tags == []

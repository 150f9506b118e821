"""Archive objects a killed job stored but never cataloged (found by the kill drill: a
replace killed between its safety snapshot's upload and its catalog row left a whole copy
of the volume in the target, listed nowhere) are removed by the host once the job failed
and its process is known dead; cataloged objects, other jobs' and live ones' are kept."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from common.config import Settings
from common.db import JobState, catalog, jobs
from common.db.migrate import upgrade
from common.jobs.context import JobContext
from common.jobs.leftovers import remove_leftovers
from common.storage.local import LocalBackend

DEAD = f"h1@{socket.gethostname()}:{2**22 - 7}"  # a pid no process has (near pid_max)
ALIVE = f"h1@{socket.gethostname()}:{os.getppid()}"


def _failed_job(ctx: JobContext, kind: str, worker: str, **fields: object) -> str:
    with ctx.db.session() as s:
        job_id = jobs.create_job(s, kind=kind, host="h1", volume="vol", target="local",
                                 **fields).id  # type: ignore[arg-type]
    with ctx.db.session() as s:
        assert jobs.start_job(s, job_id, worker) is not None
    with ctx.db.session() as s:
        jobs.finish_job(s, job_id, JobState.failed, worker=worker, error="killed")
    return job_id


def _archive(store: LocalBackend, area: str, job_id: str) -> list[str]:
    key = f"volkeeper/{area}/h1/vol/20260101T000000Z-{job_id}.tar.zst"
    store.put_bytes(key, b"archive")
    store.put_bytes(key + ".manifest.jsonl", b"manifest")
    return [key, key + ".manifest.jsonl"]


def _context(tmp_path: Path) -> JobContext:
    """A host h1 with two local targets, ``local`` (store/) and ``other`` (other/)."""
    ctx = JobContext(Settings(home=tmp_path, host_name="h1",
                              allowed_target_roots=str(tmp_path)))
    upgrade(ctx.db)
    with ctx.db.session() as s:
        catalog.ensure_target(s, "local", (tmp_path / "store").as_uri())
        catalog.ensure_target(s, "other", (tmp_path / "other").as_uri())
    return ctx


def test_uncataloged_archives_of_dead_failed_jobs_are_removed_and_nothing_else(
        tmp_path: Path) -> None:
    ctx = _context(tmp_path)
    store, other = LocalBackend(tmp_path / "store"), LocalBackend(tmp_path / "other")
    killed_backup = _failed_job(ctx, "backup", DEAD, params={"format": "tar.zst"})
    stray_backup = _archive(store, "archives", killed_backup)
    with ctx.db.session() as s:
        source = catalog.add_backup(s, host="h1", volume="vol", target="local",
                                    format="tar.gz", key="k", manifest_key="k.m",
                                    checksum="0" * 64).id
    killed_replace = _failed_job(ctx, "restore", DEAD, backup_id=source,
                                 params={"mode": "replace"})
    stray_safety = _archive(store, "safety", killed_replace)
    cataloged_job = _failed_job(ctx, "backup", DEAD, params={"format": "tar.zst"})
    cataloged = _archive(store, "archives", cataloged_job)
    with ctx.db.session() as s:
        catalog.add_backup(s, host="h1", volume="vol", target="local", format="tar.zst",
                           key=cataloged[0], manifest_key=cataloged[1], checksum="0" * 64)
    # a copy of the cataloged archive to "other", killed before its catalog row: the
    # destination holds the source's keys, which would refuse the next copy
    killed_copy = _failed_job(ctx, "copy", DEAD, backup_id=source,
                              params={"destination": "other", "format": "tar.gz"})
    other.put_bytes("k", b"archive")
    other.put_bytes("k.m", b"manifest")
    other.put_bytes("unrelated", b"x")
    live_job = _failed_job(ctx, "backup", ALIVE, params={"format": "tar.zst"})
    live = _archive(store, "archives", live_job)  # its process may still be uploading

    assert sorted(remove_leftovers(ctx)) == sorted([*stray_backup, *stray_safety, "k", "k.m"])
    keys = {o.key for o in store.list("volkeeper/")}
    assert keys == set(cataloged + live)
    assert {o.key for o in other.list("")} == {"unrelated"}
    with ctx.db.session() as s:
        assert jobs.get_job(s, killed_replace).result["leftovers"] == stray_safety
        assert jobs.get_job(s, cataloged_job).result["leftovers"] == []
        assert jobs.get_job(s, killed_copy).result["leftovers"] == ["k", "k.m"]
        assert "leftovers" not in jobs.get_job(s, live_job).result
    assert remove_leftovers(ctx) == []  # each job is looked at once


def test_a_killed_copy_s_objects_stay_while_another_copy_to_that_target_runs(
        tmp_path: Path) -> None:
    """The next copy keeps the same objects a killed one left (an archive copy is
    idempotent): they are not removed under it, only once no copy there is active."""
    ctx = _context(tmp_path)
    with ctx.db.session() as s:
        source = catalog.add_backup(s, host="h1", volume="vol", target="local",
                                    format="tar.gz", key="k", manifest_key="k.m",
                                    checksum="0" * 64).id
    other = LocalBackend(tmp_path / "other")
    _failed_job(ctx, "copy", DEAD, backup_id=source,
                params={"destination": "other", "format": "tar.gz"})
    other.put_bytes("k", b"archive")
    other.put_bytes("k.m", b"manifest")
    with ctx.db.session() as s:
        running = jobs.create_job(s, kind="copy", host="h1", volume="vol", target="local",
                                  backup_id=source, lock=f"copy/{source}/other",
                                  params={"destination": "other", "format": "tar.gz"}).id
    assert remove_leftovers(ctx) == []
    assert {o.key for o in other.list("")} == {"k", "k.m"}
    with ctx.db.session() as s:
        jobs.finish_job(s, running, JobState.failed, error="stopped")
    assert sorted(remove_leftovers(ctx)) == ["k", "k.m"]


def test_a_killed_group_backup_s_member_archives_are_removed_under_each_member(
        tmp_path: Path) -> None:
    ctx = JobContext(Settings(home=tmp_path, host_name="h1",
                              allowed_target_roots=str(tmp_path)))
    upgrade(ctx.db)
    with ctx.db.session() as s:
        catalog.ensure_target(s, "local", (tmp_path / "store").as_uri())
    store = LocalBackend(tmp_path / "store")
    group = _failed_job(ctx, jobs.GROUP_KIND, DEAD,
                        params={"format": "tar.zst", "volumes": ["vol", "vol2"]})
    first = _archive(store, "archives", group)
    second = f"volkeeper/archives/h1/vol2/20260101T000001Z-{group}.tar.zst"
    store.put_bytes(second, b"archive")  # its manifest never written: killed in between
    outsider = f"volkeeper/archives/h1/vol3/20260101T000000Z-{group}.tar.zst"
    store.put_bytes(outsider, b"not a member's")  # (cannot happen; shows the prefixes)

    assert sorted(remove_leftovers(ctx)) == sorted([*first, second])
    assert {o.key for o in store.list("volkeeper/")} == {outsider}
    with ctx.db.session() as s:
        assert sorted(jobs.get_job(s, group).result["leftovers"]) == sorted([*first, second])


def test_a_target_that_cannot_be_opened_is_warned_about_once_per_job_and_problem(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Every embedded command looks again (for two days): a target this worker refuses
    (outside the allowed roots) or cannot reach is warned about once, not at each one."""
    ctx = JobContext(Settings(home=tmp_path, host_name="h1",
                              allowed_target_roots=str(tmp_path / "roots")))
    upgrade(ctx.db)
    with ctx.db.session() as s:
        catalog.ensure_target(s, "away", (tmp_path / "away").as_uri())
    with ctx.db.session() as s:
        job_id = jobs.create_job(s, kind="backup", host="h1", volume="vol", target="away",
                                 params={"format": "tar.zst"}).id
    with ctx.db.session() as s:
        jobs.start_job(s, job_id, DEAD)
    with ctx.db.session() as s:
        jobs.finish_job(s, job_id, JobState.failed, worker=DEAD, error="refused")

    def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records
                if r.levelname == "WARNING" and "could not look" in r.getMessage()]

    with caplog.at_level("INFO", logger="common.jobs.leftovers"):
        for _ in range(3):
            assert remove_leftovers(ctx) == []
    assert len(warnings()) == 1 and "outside the allowed roots" in warnings()[0]
    with ctx.db.session() as s:
        result = jobs.get_job(s, job_id).result or {}
    assert "outside the allowed roots" in result["leftovers_error"]
    assert "leftovers" not in result  # still looked for: the target may come back

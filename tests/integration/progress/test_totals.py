"""Progress that tells the truth: backups carry totals while they run (a scan beside the
backup, or the parent snapshot's size for an incremental repository backup), and a finished
backup, restore or verify job ends with done == total > 0 in the progress stored on its
job row — through the worker's job runner, against a real dockerd."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from common.config import Settings
from common.db import catalog, jobs
from common.db.migrate import upgrade
from common.docker import DockerHost
from common.engine import sizing
from common.engine.backup import backup_volume
from common.jobs import stored_jobs, volume_jobs
from common.jobs.context import JobContext
from common.jobs.runner import run_job
from common.progress import ProgressTracker, Snapshot
from common.storage.local import LocalBackend
from tests.unit.common.test_progress import RecordingBus

pytestmark = pytest.mark.integration
WORK_PHASES = {"backing up", "backup"}  # archives, the repository


def _fill(root: Path, files: int = 300, size: int = 64 << 10) -> None:
    for i in range(files):
        d = root / f"d{i % 10}"
        d.mkdir(exist_ok=True)
        (d / f"f{i}").write_bytes(os.urandom(size))


@pytest.fixture
def docker(docker_host_a: Any) -> DockerHost:
    return DockerHost(docker_host_a.url)


def _mount(docker: DockerHost, name: str) -> Path:
    path = docker.local_path(name)
    assert path is not None
    return path


def _settings(tmp_path: Path, docker_url: str) -> Settings:
    return Settings(home=tmp_path, host_name="h1", docker_host=docker_url,
                    repository_unencrypted=True)


@pytest.mark.parametrize("fmt", ["tar.zst", "repo"])
def test_snapshots_during_a_backup_carry_totals(
        docker: DockerHost, fresh_volume_name: str, tmp_path: Path, docker_host_a: Any,
        fmt: str) -> None:
    docker.create_volume(fresh_volume_name)
    _fill(_mount(docker, fresh_volume_name))
    backend = LocalBackend(tmp_path / "store")
    bus = RecordingBus()
    with ProgressTracker("j", bus, interval=0.005) as tracker:
        out = backup_volume(docker, backend, host="h1", volume=fresh_volume_name, fmt=fmt,
                            job_id="j1", tracker=tracker,
                            settings=_settings(tmp_path, docker_host_a.url))
        tracker.finish()
    working = [s for s in bus.history if s["phase"] in WORK_PHASES]
    assert working, [s["phase"] for s in bus.history]
    known = [bool(s["bytes_total"] and s["files_total"]) for s in working]
    # the scan beside the backup is done within its first moments; from then on, totals
    assert known[-1] and known == sorted(known), known
    assert sum(known) >= len(known) // 2, known
    assert all(s["bytes_done"] <= s["bytes_total"] for s in working if s["bytes_total"])
    final = bus.history[-1]
    assert final["phase"] == "done" and final["bytes_done"] == final["bytes_total"] > 0
    assert final["files_done"] == final["files_total"] > 0
    assert out.file_count == 300
    # what a user counts, in both formats: the files and their content, the same totals
    # as the result (not the directories, not the root, not tar headers)
    assert (final["files_total"], final["bytes_total"]) == (300, out.logical_bytes)
    assert all((s["files_total"] or 0) <= 300 for s in working), working


def test_an_incremental_repo_backup_estimates_from_its_parent_without_a_scan(
        docker: DockerHost, fresh_volume_name: str, tmp_path: Path, docker_host_a: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    docker.create_volume(fresh_volume_name)
    _fill(_mount(docker, fresh_volume_name), files=50, size=4096)
    backend = LocalBackend(tmp_path / "store")
    settings = _settings(tmp_path, docker_host_a.url)
    first = backup_volume(docker, backend, host="h1", volume=fresh_volume_name, fmt="repo",
                          job_id="j1", tracker=ProgressTracker("j1", None), settings=settings)
    scans: list[Path] = []
    monkeypatch.setattr(sizing, "scan_tree", lambda path, *a: scans.append(path))
    phases: list[Snapshot] = []
    tracker = ProgressTracker("j2", None)
    original = tracker.set_phase

    def spy(phase: str, *args: Any, **kwargs: Any) -> None:
        original(phase, *args, **kwargs)
        phases.append(tracker.snapshot())

    tracker.set_phase = spy  # type: ignore[method-assign]
    backup_volume(docker, backend, host="h1", volume=fresh_volume_name, fmt="repo",
                  job_id="j2", tracker=tracker, settings=settings)
    assert scans == []
    work = next(p for p in phases if p["phase"] == "backup")
    assert (work["bytes_total"], work["files_total"]) == (first.logical_bytes, 50)
    assert work["estimated"] is True


def _run(ctx: JobContext, body: Any, **fields: Any) -> dict[str, Any]:
    with ctx.db.session() as s:
        job_id = jobs.create_job(s, host="h1", target="local", **fields).id
    run_job(ctx, job_id, body)
    with ctx.db.session() as s:
        job = jobs.get_job(s, job_id)
        assert str(job.state) == "succeeded", job.error
        return {"progress": dict(job.progress or {}), "backup_id": job.backup_id}


@pytest.mark.parametrize("fmt", ["tar.gz", "repo"])
def test_finished_backup_restore_and_verify_jobs_keep_their_totals_done(
        docker: DockerHost, fresh_volume_name: str, tmp_path: Path, docker_host_a: Any,
        fmt: str) -> None:
    docker.create_volume(fresh_volume_name)
    _fill(_mount(docker, fresh_volume_name), files=40, size=16 << 10)
    ctx = JobContext(_settings(tmp_path, docker_host_a.url))
    upgrade(ctx.db)
    with ctx.db.session() as s:
        catalog.ensure_target(s, "local", (tmp_path / "store").as_uri())
    backup = _run(ctx, volume_jobs.backup, kind="backup", volume=fresh_volume_name,
                  params={"format": fmt})
    restore = _run(ctx, volume_jobs.restore, kind="restore", volume=fresh_volume_name + "-r",
                   backup_id=backup["backup_id"], params={"mode": "new"})
    verify = _run(ctx, stored_jobs.verify, kind="verify", volume=fresh_volume_name,
                  backup_id=backup["backup_id"], lock="verify/x",
                  params={"read_data": True})
    ctx.db.dispose()
    for what, job in (("backup", backup), ("restore", restore), ("verify", verify)):
        p = job["progress"]
        assert p["phase"] == "done", what
        assert p["bytes_done"] == p["bytes_total"] > 0, (what, p)
        assert p["files_done"] == p["files_total"] > 0, (what, p)
        if what != "verify" or fmt != "repo":  # (a repository's read-data counts packs)
            assert p["files_total"] == 40, (what, p)  # regular files, as the result does
        if what != "verify":  # their content (a verify goes through the stored bytes)
            assert p["bytes_total"] == 40 * (16 << 10), (what, p)

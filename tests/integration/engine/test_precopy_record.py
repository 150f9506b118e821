"""A migration's pre-copy record walked inside the restore (``restore_backup``'s ``then``,
``migration_steps.PrecopyRecord``), against a real dockerd: the same record and report a
separate comparison of the restored volume makes, nothing walked when the restore went
through the Docker API, and a walk that fails undoes the restore."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from common.config import Settings
from common.docker import DockerHost
from common.engine import migrate as engine
from common.engine.backup import backup_volume
from common.engine.repo_verify import Seen
from common.engine.restore import StoredBackup, restore_backup
from common.errors import NotFound
from common.jobs.migration_state import held_path, load_record, state_file, take_held
from common.jobs.migration_steps import PrecopyRecord, keep_record
from common.progress import NullTracker
from common.storage.local import LocalBackend

pytestmark = pytest.mark.integration
PASSWORD = "precopy-record-test"


@pytest.fixture
def docker(docker_host_a: Any) -> DockerHost:
    return DockerHost(docker_host_a.url)


def _source(docker: DockerHost, name: str, tmp_path: Path, **kw: Any
            ) -> tuple[Settings, LocalBackend, StoredBackup]:
    settings = Settings(home=tmp_path, repository_password=PASSWORD, **kw)
    docker.create_volume(name)
    src = docker.local_path(name)
    assert src is not None
    (src / "big.bin").write_bytes(os.urandom(3 << 20))
    (src / "sub" / "deeper").mkdir(parents=True)
    for i in range(30):
        (src / "sub" / f"f{i}.txt").write_text(f"file {i}\n" * (i + 1))
    (src / "sub" / "deeper" / "empty").write_bytes(b"")
    (src / "link").symlink_to("sub/f1.txt")
    os.chmod(src / "sub" / "f2.txt", 0o600)
    backend = LocalBackend(tmp_path / "store")
    out = backup_volume(docker, backend, host="h", volume=name, fmt="repo", job_id="j1",
                        tracker=NullTracker(), settings=settings)
    return settings, backend, StoredBackup(
        id="b1", key=out.key, manifest_key=out.manifest_key, format=out.format,
        checksum=out.checksum, logical_bytes=out.logical_bytes, file_count=out.file_count,
        volume=name, host="h", snapshot_id=out.snapshot_id)


def test_the_record_walked_inside_the_restore_is_the_separate_walks(
        docker: DockerHost, fresh_volume_name: str, tmp_path: Path) -> None:
    settings, backend, backup = _source(docker, fresh_volume_name, tmp_path)
    target = fresh_volume_name + "-pre"
    walk = PrecopyRecord(NullTracker())
    restore_backup(docker, backend, backup, volume=target, tracker=NullTracker(),
                   settings=settings, then=walk.walk)
    assert walk.report is not None and walk.report.ok, walk.report
    root = docker.local_path(target)
    assert root is not None and walk.path == root
    assert walk.snapshot_id == backup.snapshot_id and walk.seconds > 0
    # every regular file recorded with the stat the restore left
    files = {p.relative_to(root).as_posix() for p in root.rglob("*")
             if p.is_file() and not p.is_symlink()}
    assert set(walk.seen) == files and len(files) == 32
    for rel, (ino, size, mtime, ctime, _digest) in walk.seen.items():
        st = os.lstat(root / rel)
        assert (ino, size, mtime, ctime) == (st.st_ino, st.st_size, st.st_mtime_ns,
                                             st.st_ctime_ns)
    # what the job did before (a comparison of its own after the restore) sees the same
    again: Seen = {}
    report = engine.compare(docker, backend, backup, target, settings, NullTracker(),
                            seen=again, written=True)
    assert report.ok and again == walk.seen
    assert report.entries_checked == walk.report.entries_checked

    # kept as the migration's state: the record (this boot) and the snapshot held
    state = state_file(tmp_path, "m1")
    keep_record(state, walk.report, walk.seen, walk.snapshot_id)
    assert load_record(state) == walk.seen
    assert take_held(state) == backup.snapshot_id


def test_a_record_with_differences_holds_no_snapshot(tmp_path: Path) -> None:
    from common.archive import VerifyReport

    state = state_file(tmp_path, "m2")
    held_path(state).parent.mkdir(parents=True)
    held_path(state).write_text("stale")
    report = VerifyReport(ok=False, entries_checked=3, archive_sha256=None,
                          problems=["a.txt: size: volume has 1, backup says 2"],
                          problem_count=1)
    keep_record(state, report, {}, "ab" * 32)
    assert load_record(state) == {} and not held_path(state).exists()
    # only the root's own metadata differing: held all the same
    report = VerifyReport(ok=False, entries_checked=3, archive_sha256=None,
                          problems=["/: mode: volume has 493, backup says 448"],
                          problem_count=1)
    keep_record(state, report, {}, "ab" * 32)
    assert take_held(state) == "ab" * 32


def test_a_restore_through_the_docker_api_walks_nothing_here(
        docker: DockerHost, fresh_volume_name: str, tmp_path: Path) -> None:
    settings, backend, backup = _source(docker, fresh_volume_name, tmp_path,
                                        volume_access="docker-api")
    walk = PrecopyRecord(NullTracker())
    restore_backup(docker, backend, backup, volume=fresh_volume_name + "-api",
                   tracker=NullTracker(), settings=settings, then=walk.walk)
    assert walk.report is None and walk.seen == {}  # ``record_restored`` compares itself


def test_a_walk_that_fails_undoes_the_restore(
        docker: DockerHost, fresh_volume_name: str, tmp_path: Path) -> None:
    settings, backend, backup = _source(docker, fresh_volume_name, tmp_path)
    target = fresh_volume_name + "-undone"

    def broken(*args: Any) -> None:
        raise OSError(5, "Input/output error")

    with pytest.raises(OSError):
        restore_backup(docker, backend, backup, volume=target, tracker=NullTracker(),
                       settings=settings, then=broken)
    with pytest.raises(NotFound):
        docker.volume(target)

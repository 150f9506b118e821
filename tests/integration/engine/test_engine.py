"""The backup/restore engine against a real dockerd: both volume access paths, and the
guarantees around failures (nothing half-restored, nothing half-stored)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from common.config import Settings
from common.docker import DockerHost
from common.engine.backup import backup_volume
from common.engine.restore import StoredBackup, restore_backup
from common.engine.validate import validate_restore
from common.errors import IntegrityError, NotFound, RestoreRefused
from common.progress import NullTracker
from common.storage.local import LocalBackend
from tests.fixtures.dockerd import busybox_image
from tests.treecmp import build_fidelity_tree, compare_trees

pytestmark = pytest.mark.integration


def _stored(out: Any, volume: str) -> StoredBackup:
    return StoredBackup(id="b1", key=out.key, manifest_key=out.manifest_key, format=out.format,
                        checksum=out.checksum, logical_bytes=out.logical_bytes,
                        file_count=out.file_count, volume=volume, host="h",
                        snapshot_id=out.snapshot_id)


def _mount(docker: DockerHost, name: str) -> Path:
    path = docker.local_path(name)
    assert path is not None
    return path


@pytest.fixture
def docker(docker_host_a: Any) -> DockerHost:
    return DockerHost(docker_host_a.url)


def test_a_corrupted_archive_never_leaves_a_restored_volume_behind(
        docker: DockerHost, fresh_volume_name: str, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    docker.create_volume(fresh_volume_name)
    src = _mount(docker, fresh_volume_name)
    (src / "data.bin").write_bytes(os.urandom(2 << 20))
    backend = LocalBackend(tmp_path / "store")
    out = backup_volume(docker, backend, host="h", volume=fresh_volume_name, fmt="tar.zst",
                        job_id="j1", tracker=NullTracker(), settings=settings)
    archive = tmp_path / "store" / out.key
    raw = bytearray(archive.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    archive.write_bytes(bytes(raw))
    target = fresh_volume_name + "-restored"
    with pytest.raises(IntegrityError):
        restore_backup(docker, backend, _stored(out, fresh_volume_name), volume=target,
                       tracker=NullTracker(), settings=settings)
    with pytest.raises(NotFound):
        docker.volume(target)


def test_a_failed_restore_into_an_empty_volume_leaves_it_empty(
        docker: DockerHost, fresh_volume_name: str, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    docker.create_volume(fresh_volume_name)
    (_mount(docker, fresh_volume_name) / "a").write_bytes(os.urandom(1 << 20))
    backend = LocalBackend(tmp_path / "store")
    out = backup_volume(docker, backend, host="h", volume=fresh_volume_name, fmt="tar",
                        job_id="j2", tracker=NullTracker(), settings=settings)
    archive = tmp_path / "store" / out.key
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])  # truncated
    empty = fresh_volume_name + "-empty"
    docker.create_volume(empty)
    with pytest.raises(IntegrityError):
        restore_backup(docker, backend, _stored(out, fresh_volume_name), volume=empty,
                       tracker=NullTracker(), settings=settings)
    assert docker.is_empty(empty)


def test_a_missing_volume_is_reported_by_name_and_nothing_is_stored(
        docker: DockerHost, tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "store")
    with pytest.raises(NotFound, match="no-such-vol"):
        backup_volume(docker, backend, host="h", volume="no-such-vol", fmt="tar.zst",
                      job_id="j3", tracker=NullTracker(), settings=Settings(home=tmp_path))
    assert list(backend.list("")) == []


def test_the_docker_api_path_round_trips_content_owners_and_links(
        docker: DockerHost, fresh_volume_name: str, tmp_path: Path) -> None:
    """The fallback for volumes whose mountpoint the worker cannot see: through a
    never-started helper container. It keeps bytes, modes, owners, links and whole-second
    mtimes (not xattrs or sparseness — see docs/volume-access.md)."""
    settings = Settings(home=tmp_path, volume_access="docker-api", restore_device_nodes=True)
    docker.create_volume(fresh_volume_name)
    src = _mount(docker, fresh_volume_name)
    build_fidelity_tree(src)
    backend = LocalBackend(tmp_path / "store")
    out = backup_volume(docker, backend, host="h", volume=fresh_volume_name, fmt="tar.zst",
                        job_id="j4", tracker=NullTracker(), settings=settings)
    assert out.file_count > 5
    target = fresh_volume_name + "-api"
    restore_backup(docker, backend, _stored(out, fresh_volume_name), volume=target,
                   tracker=NullTracker(), settings=settings)
    diffs = compare_trees(src, _mount(docker, target), mtime_tolerance_ns=1_000_000_000,
                          xattr_prefixes=())
    assert [d for d in diffs if "sparse" not in d] == []


def test_a_restore_into_an_empty_volume_a_running_container_uses_is_refused(
        docker: DockerHost, docker_host_a: Any, fresh_volume_name: str, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    docker.create_volume(fresh_volume_name)
    (_mount(docker, fresh_volume_name) / "a").write_bytes(b"content")
    backend = LocalBackend(tmp_path / "store")
    out = backup_volume(docker, backend, host="h", volume=fresh_volume_name, fmt="tar",
                        job_id="j5", tracker=NullTracker(), settings=settings)
    empty = fresh_volume_name + "-used"
    docker.create_volume(empty)
    client = docker_host_a.client()
    ctr = client.containers.run(busybox_image(docker_host_a),
                                ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"],
                                detach=True, network_mode="none", name=f"{empty}-app",
                                volumes={empty: {"bind": "/data", "mode": "rw"}})
    try:
        check = validate_restore(docker, backend, _stored(out, fresh_volume_name), host="h",
                                 volume=empty, settings=settings)
        assert not check.ok and f"{empty}-app" in check.plan and "--into" in check.plan
        with pytest.raises(RestoreRefused) as err:
            restore_backup(docker, backend, _stored(out, fresh_volume_name), volume=empty,
                           tracker=NullTracker(), settings=settings)
        assert f"{empty}-app" in err.value.message and "stop them" in err.value.message
        assert docker.is_empty(empty)
    finally:
        ctr.remove(force=True)
    restore_backup(docker, backend, _stored(out, fresh_volume_name), volume=empty,
                   tracker=NullTracker(), settings=settings)  # once stopped, it restores
    assert (_mount(docker, empty) / "a").read_bytes() == b"content"

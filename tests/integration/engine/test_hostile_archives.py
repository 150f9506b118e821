"""Hostile archives: a restore never writes outside the target volume.

The archives are crafted here and recorded in the catalog *with their true checksum*,
beside a manifest forged to match — the worst case, as if whoever planted them could also
write the catalog (a manifest that does not match refuses the restore before tar runs at
all). GNU tar (which does the extraction) refuses ``..`` members and ``..`` hard-link
targets, strips leading ``/``, and never writes through a symlink the same archive just
created; each refusal fails the restore, which then removes the volume it created.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import stat
import tarfile
from pathlib import Path
from typing import Any

import pytest

from common.config import Settings
from common.docker import DockerHost
from common.engine.replace import replace_volume
from common.engine.restore import StoredBackup, restore_backup
from common.errors import IntegrityError, NotFound, Refused, RolledBack, VolkeeperError
from common.progress import NullTracker
from common.storage.local import LocalBackend
from tests.tarcraft import END, hiding
from tests.tarcraft import member as raw_member

pytestmark = pytest.mark.integration


def member(name: str, data: bytes = b"evil", **attrs: Any) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    for k, v in attrs.items():
        setattr(info, k, v)
    if info.type == tarfile.REGTYPE:
        info.size = len(data)
    return info, data


def plant(backend: LocalBackend, members: list[tuple[tarfile.TarInfo, bytes]]) -> StoredBackup:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for info, data in members:
            t.addfile(info, io.BytesIO(data) if info.type == tarfile.REGTYPE else None)
    raw = buf.getvalue()
    backend.put_bytes("evil.tar", raw)
    return forge_manifest(backend, StoredBackup(
        id="evil", key="evil.tar", manifest_key="evil.tar.manifest.jsonl", format="tar",
        checksum=hashlib.sha256(raw).hexdigest(), logical_bytes=len(raw),
        file_count=len(members), volume="v", host="h"))


def forge_manifest(backend: LocalBackend, backup: StoredBackup) -> StoredBackup:
    """A manifest that passes the restore's check of it (intact, this archive's)."""
    header = json.dumps({"kind": "volkeeper-manifest", "version": 1, "archive_key": backup.key,
                         "format": backup.format}, separators=(",", ":")) + "\n"
    summary = {"kind": "summary", "entries": backup.file_count, "files": backup.file_count,
               "bytes": backup.logical_bytes, "archive_sha256": backup.checksum,
               "archive_size": 0, "lines_sha256": hashlib.sha256(header.encode()).hexdigest()}
    backend.put_bytes(backup.manifest_key,
                      (header + json.dumps(summary, separators=(",", ":")) + "\n").encode())
    return backup


@pytest.fixture
def setup(docker_host_a: Any, fresh_volume_name: str, tmp_path: Path
          ) -> tuple[DockerHost, LocalBackend, Path, str, Settings]:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "target").write_text("original")
    return (DockerHost(docker_host_a.url), LocalBackend(tmp_path / "store"), outside,
            fresh_volume_name, Settings(home=tmp_path))


def volume_dir(docker: DockerHost, name: str) -> Path:
    """Where the volume's data would be (its mountpoint), whether or not it exists now."""
    root = docker.root_dir()
    assert root is not None
    return root / "volumes" / name / "_data"


def untouched(outside: Path) -> bool:
    return sorted(p.name for p in outside.iterdir()) == ["target"] and \
        (outside / "target").read_text() == "original"


@pytest.mark.parametrize("case", ["dotdot", "symlink-escape", "relative-symlink-escape",
                                  "hardlink-dotdot", "hardlink-absolute"])
def test_escaping_members_are_refused_and_nothing_lands_outside(setup: Any, case: str) -> None:
    docker, backend, outside, name, settings = setup
    cases = {
        "dotdot": [member("../escaped"), member("../../escaped-too")],
        "symlink-escape": [member("link", type=tarfile.SYMTYPE, linkname=str(outside)),
                           member("link/owned")],
        "relative-symlink-escape": [
            member("rel", type=tarfile.SYMTYPE, linkname="../../../../../../../../" +
                   str(outside).lstrip("/")),
            member("rel/owned")],
        "hardlink-dotdot": [member("hl", type=tarfile.LNKTYPE,
                                   linkname="../../../../../../../../" +
                                   str(outside / "target").lstrip("/"))],
        "hardlink-absolute": [member("hl", type=tarfile.LNKTYPE,
                                     linkname=str(outside / "target"))],
    }
    backup = plant(backend, cases[case])
    with pytest.raises(VolkeeperError) as err:
        restore_backup(docker, backend, backup, volume=name, tracker=NullTracker(),
                       settings=settings)
    assert "tar" in str(err.value).lower()
    assert untouched(outside)
    assert not (volume_dir(docker, name).parent / "escaped").exists()
    with pytest.raises(NotFound):
        docker.volume(name)  # the half-restored volume was removed again


def test_absolute_member_names_land_inside_the_volume(setup: Any) -> None:
    docker, backend, outside, name, settings = setup
    backup = plant(backend, [member(str(outside / "abs-escaped"))])
    restore_backup(docker, backend, backup, volume=name, tracker=NullTracker(),
                   settings=settings)
    assert untouched(outside)
    inside = volume_dir(docker, name) / str(outside / "abs-escaped").lstrip("/")
    assert inside.read_bytes() == b"evil"


def test_a_member_claiming_more_data_than_the_archive_holds_fails_cleanly(setup: Any) -> None:
    docker, backend, _outside, name, settings = setup
    info, _ = member("huge")
    info.size = 10 << 40  # 10 TiB declared, a few bytes present
    buf = io.BytesIO()
    buf.write(info.tobuf(format=tarfile.PAX_FORMAT))
    buf.write(b"only this")
    raw = buf.getvalue()
    backend.put_bytes("evil.tar", raw)
    backup = StoredBackup(id="evil", key="evil.tar", manifest_key="evil.tar.manifest.jsonl",
                          format="tar", checksum=hashlib.sha256(raw).hexdigest(),
                          logical_bytes=len(raw), file_count=1, volume="v", host="h")
    forge_manifest(backend, backup)
    with pytest.raises(VolkeeperError):
        restore_backup(docker, backend, backup, volume=name, tracker=NullTracker(),
                       settings=settings)
    with pytest.raises(NotFound):
        docker.volume(name)


def test_device_nodes_are_refused_by_name_and_fifos_are_restored(setup: Any) -> None:
    docker, backend, _outside, name, settings = setup
    backup = plant(backend, [member("ok.txt", b"fine"),
                             member("pipe", type=tarfile.FIFOTYPE),
                             member("disk", type=tarfile.BLKTYPE, devmajor=8, devminor=0),
                             member("zero", type=tarfile.CHRTYPE, devmajor=1, devminor=5)])
    with pytest.raises(Refused) as err:
        restore_backup(docker, backend, backup, volume=name, tracker=NullTracker(),
                       settings=settings)
    assert "'disk'" in err.value.message and "block device node (8:0)" in err.value.message
    assert "VOLKEEPER_RESTORE_DEVICE_NODES" in str(err.value.hint)
    with pytest.raises(NotFound):
        docker.volume(name)  # nothing kept

    fifo_only = plant(backend, [member("ok.txt", b"fine"),
                                member("pipe", type=tarfile.FIFOTYPE)])
    restore_backup(docker, backend, fifo_only, volume=name, tracker=NullTracker(),
                   settings=settings)
    assert stat.S_ISFIFO(os.lstat(volume_dir(docker, name) / "pipe").st_mode)


def test_device_nodes_are_restored_when_the_setting_allows_them(setup: Any) -> None:
    docker, backend, _outside, name, settings = setup
    backup = plant(backend, [member("zero", type=tarfile.CHRTYPE, devmajor=1, devminor=5)])
    restore_backup(docker, backend, backup, volume=name, tracker=NullTracker(),
                   settings=settings.model_copy(update={"restore_device_nodes": True}))
    st = os.lstat(volume_dir(docker, name) / "zero")
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 5


def _oversized(backend: LocalBackend) -> StoredBackup:
    """An archive whose files hold 12 MiB while its catalog entry records 1 MiB."""
    planted = plant(backend, [member("small", os.urandom(1 << 20)),
                              member("large", os.urandom(11 << 20))])
    return forge_manifest(backend, dataclasses.replace(planted, logical_bytes=1 << 20,
                                                       file_count=1))


def test_an_archive_holding_more_than_its_catalog_size_fails_early_and_leaves_nothing(
        setup: Any) -> None:
    docker, backend, _outside, name, settings = setup
    with pytest.raises(Refused) as err:
        restore_backup(docker, backend, _oversized(backend), volume=name,
                       tracker=NullTracker(), settings=settings)
    assert "'./large'" in err.value.message or "'large'" in err.value.message
    assert str(1 << 20) in err.value.message
    with pytest.raises(NotFound):
        docker.volume(name)


def test_a_replace_with_an_oversized_archive_is_rolled_back_byte_for_byte(
        setup: Any, tmp_path: Path) -> None:
    docker, backend, _outside, name, settings = setup
    docker.create_volume(name)
    data = volume_dir(docker, name)
    (data / "keep.bin").write_bytes(os.urandom(300_000))
    (data / "sub").mkdir()
    (data / "sub" / "note.txt").write_text("precious")
    before = {str(p.relative_to(data)): p.read_bytes() for p in data.rglob("*") if p.is_file()}
    with pytest.raises(RolledBack) as err:
        replace_volume(docker, backend, _oversized(backend), volume=name, host="h",
                       job_id="jr", stop_containers=False, tracker=NullTracker(),
                       settings=settings)
    assert "put back" in err.value.message and "catalog" in err.value.message
    after = {str(p.relative_to(data)): p.read_bytes() for p in data.rglob("*") if p.is_file()}
    assert after == before


@pytest.mark.parametrize("cover", [b"5", b"2"], ids=["directory", "symlink"])
def test_a_device_hidden_in_a_members_ignored_data_is_refused_and_nothing_is_created(
        setup: Any, cover: bytes) -> None:
    """GNU tar ignores the size of a directory or symlink member and would extract the
    device node "inside" it; the policy scanner refuses the member instead."""
    docker, backend, _outside, name, settings = setup
    device = raw_member("zero", b"3", devmajor=1, devminor=5)
    raw = (raw_member("ok.txt", data=b"fine") + hiding(cover, device, name="innocent",
                                                       link="ok.txt")
           + raw_member("after.txt", data=b"more") + END)
    backend.put_bytes("evil.tar", raw)
    backup = StoredBackup(id="evil", key="evil.tar", manifest_key="evil.tar.manifest.jsonl",
                          format="tar", checksum=hashlib.sha256(raw).hexdigest(),
                          logical_bytes=len(raw), file_count=2, volume="v", host="h")
    forge_manifest(backend, backup)
    with pytest.raises(Refused) as err:
        restore_backup(docker, backend, backup, volume=name, tracker=NullTracker(),
                       settings=settings)
    assert "'innocent'" in err.value.message and "512 bytes of data" in err.value.message
    assert "tar -tvf" in str(err.value.hint)
    with pytest.raises(NotFound):
        docker.volume(name)  # nothing kept


def test_an_archive_whose_file_data_was_altered_restores_nothing(setup: Any) -> None:
    """The tar stream stays well-formed (only file data changed), so tar extracts it all;
    the archive's sha256, checked at the end of the stream, fails the restore, and the
    volume it created is removed: a tampered archive never ends as a good restore."""
    docker, backend, _outside, name, settings = setup
    planted = plant(backend, [member("a.txt", b"genuine content " * 100)])
    raw = backend.get_bytes(planted.key)
    at = raw.index(b"genuine")
    backend.put_bytes(planted.key, raw[:at] + b"G" + raw[at + 1 :])
    with pytest.raises(IntegrityError, match="does not match its checksum"):
        restore_backup(docker, backend, planted, volume=name, tracker=NullTracker(),
                       settings=settings)
    with pytest.raises(NotFound):
        docker.volume(name)

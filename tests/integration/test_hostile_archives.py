"""Hostile archives: a restore never writes outside the target volume.

The archives are crafted here and recorded in the catalog *with their true checksum* — the
worst case, as if whoever planted them could also write the catalog. GNU tar (which does the
extraction) refuses ``..`` members and ``..`` hard-link targets, strips leading ``/``, and
never writes through a symlink the same archive just created; each refusal fails the restore,
which then removes the volume it created.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path
from typing import Any

import pytest

from common.config import Settings
from common.docker import DockerHost
from common.engine.restore import StoredBackup, restore_backup
from common.errors import NotFound, VolkeeperError
from common.progress import NullTracker
from common.storage.local import LocalBackend

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
    backend.put_bytes("evil.tar.manifest.jsonl", b'{"kind":"volkeeper-manifest","version":1}\n')
    return StoredBackup(id="evil", key="evil.tar", manifest_key="evil.tar.manifest.jsonl",
                        format="tar", checksum=hashlib.sha256(raw).hexdigest(),
                        logical_bytes=len(raw), file_count=len(members), volume="v", host="h")


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
    backend.put_bytes("evil.tar.manifest.jsonl", b"{}\n")
    backup = StoredBackup(id="evil", key="evil.tar", manifest_key="evil.tar.manifest.jsonl",
                          format="tar", checksum=hashlib.sha256(raw).hexdigest(),
                          logical_bytes=len(raw), file_count=1, volume="v", host="h")
    with pytest.raises(VolkeeperError):
        restore_backup(docker, backend, backup, volume=name, tracker=NullTracker(),
                       settings=settings)
    with pytest.raises(NotFound):
        docker.volume(name)

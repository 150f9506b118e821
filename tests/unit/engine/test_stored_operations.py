"""The engine's operations on one stored backup (common.engine.stored) against local
directories: labels reach the snapshot, forget refuses a pinned snapshot and deletes what
it should, an archive copy checks the archive's checksum, is idempotent and never
overwrites another object."""

from __future__ import annotations

import hashlib
from pathlib import Path

import blake3
import pytest
from pydantic import SecretStr

from common.config import Settings
from common.engine import stored
from common.engine.records import StoredBackup
from common.engine.repo import open_repo
from common.errors import Conflict, IntegrityError, InvalidInput
from common.progress import NullTracker
from common.repository import ids
from common.repository.backup.archiver import backup_directory
from common.repository.core.snapshot import load_snapshot, snapshot_ids
from common.storage.local import LocalBackend

KEY = "volkeeper/archives/h/v/20260101T000000Z-j.tar"


def _settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path, repository_password=SecretStr("pw long enough"),
                    repository_kdf_n=2**14)


def _archive(backend: LocalBackend, data: bytes = b"archive bytes" * 1000,
             algorithm: str = "sha256") -> StoredBackup:
    """An archive recorded with an older sha256 checksum, or a ``blake3:`` one."""
    backend.put_bytes(KEY, data)
    backend.put_bytes(KEY + ".manifest.jsonl", b'{"manifest": 1}\n')
    checksum = hashlib.sha256(data).hexdigest() if algorithm == "sha256" else \
        "blake3:" + blake3.blake3(data).hexdigest()
    return StoredBackup(id="b1", key=KEY, manifest_key=KEY + ".manifest.jsonl", format="tar",
                        checksum=checksum, logical_bytes=1,
                        file_count=1, volume="v", host="h")


def _repo_backup(tmp_path: Path, backend: LocalBackend) -> StoredBackup:
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "a.txt").write_text("hello")
    repo = open_repo(backend, _settings(tmp_path), create=True)
    snap = backup_directory(repo, vol, host="h", volume="v", tags=["job:j1"])
    return StoredBackup(id="b2", key=ids.snapshot_key(snap.id), manifest_key="", format="repo",
                        checksum="", logical_bytes=5, file_count=1, volume="v",
                        host="h", snapshot_id=snap.id.hex())


def test_labels_reach_the_snapshot_and_volkeepers_own_tags_stay(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "t")
    b = _repo_backup(tmp_path, backend)
    settings = _settings(tmp_path)
    assert stored.apply_labels(backend, b, settings, tags=["keep"], pinned=True) is True
    assert stored.apply_labels(backend, b, settings, tags=["keep"], pinned=True) is False
    snap = load_snapshot(open_repo(backend, settings), bytes.fromhex(b.snapshot_id))
    assert snap.tags == ["job:j1", "keep"] and snap.pinned is True
    assert stored.user_tags(snap.tags) == ["keep"]


def test_forget_refuses_a_snapshot_pinned_in_the_repository(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "t")
    b = _repo_backup(tmp_path, backend)
    settings = _settings(tmp_path)
    stored.apply_labels(backend, b, settings, tags=[], pinned=True)
    with pytest.raises(Conflict, match="pinned") as e:
        stored.forget(backend, b, settings)
    assert "volkeeper unpin b2" in str(e.value.hint)
    repo = open_repo(backend, settings)
    assert snapshot_ids(repo) == [bytes.fromhex(b.snapshot_id)]
    stored.apply_labels(backend, b, settings, tags=[], pinned=False)
    out = stored.forget(backend, b, settings)
    assert out["deleted_objects"] == [b.key] and snapshot_ids(repo) == []
    assert stored.forget(backend, b, settings)["deleted_objects"] == []  # gone: not an error


def test_forget_of_an_archive_deletes_it_and_its_manifest(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "t")
    b = _archive(backend)
    stored.forget(backend, b, _settings(tmp_path))
    assert list(backend.list("volkeeper/")) == []


@pytest.mark.parametrize("algorithm", ["sha256", "blake3"])
def test_an_archive_copy_checks_its_checksum_and_never_overwrites(
        tmp_path: Path, algorithm: str) -> None:
    src, dst = LocalBackend(tmp_path / "src"), LocalBackend(tmp_path / "dst")
    b = _archive(src, algorithm=algorithm)
    s = _settings(tmp_path)
    out = stored.copy_backup(src, dst, b, src_settings=s, dst_settings=s, tracker=NullTracker())
    assert out.checksum == b.checksum and dst.get_bytes(KEY) == src.get_bytes(KEY)
    assert dst.get_bytes(b.manifest_key) == src.get_bytes(b.manifest_key)

    tampered = LocalBackend(tmp_path / "other")
    _archive(tampered, b"archive bytes" * 999 + b"X")
    with pytest.raises(IntegrityError, match="does not match its checksum"):
        stored.copy_backup(tampered, LocalBackend(tmp_path / "dst2"), b, src_settings=s,
                           dst_settings=s, tracker=NullTracker())
    assert list(LocalBackend(tmp_path / "dst2").list("")) == []


def test_copying_an_archive_again_keeps_the_identical_objects_already_there(
        tmp_path: Path) -> None:
    src, dst = LocalBackend(tmp_path / "src"), LocalBackend(tmp_path / "dst")
    b = _archive(src, algorithm="blake3")
    s = _settings(tmp_path)
    first = stored.copy_backup(src, dst, b, src_settings=s, dst_settings=s,
                               tracker=NullTracker())
    again = stored.copy_backup(src, dst, b, src_settings=s, dst_settings=s,
                               tracker=NullTracker())
    assert again == first
    dst.delete(b.manifest_key)  # an interrupted copy: the archive only
    assert stored.copy_backup(src, dst, b, src_settings=s, dst_settings=s,
                              tracker=NullTracker()) == first
    assert dst.get_bytes(b.manifest_key) == src.get_bytes(b.manifest_key)


@pytest.mark.parametrize("which", ["archive", "manifest"])
def test_an_archive_copy_never_overwrites_a_different_object_under_the_same_key(
        tmp_path: Path, which: str) -> None:
    src, dst = LocalBackend(tmp_path / "src"), LocalBackend(tmp_path / "dst")
    b = _archive(src)
    s = _settings(tmp_path)
    key = KEY if which == "archive" else b.manifest_key
    dst.put_bytes(key, b"someone else's object")
    with pytest.raises(Conflict, match="different object") as e:
        stored.copy_backup(src, dst, b, src_settings=s, dst_settings=s, tracker=NullTracker())
    assert "not overwritten" in e.value.message
    assert dst.get_bytes(key) == b"someone else's object"
    assert [o.key for o in dst.list("")] == [key]  # nothing else written either


def test_a_repo_copy_needs_a_passphrase_for_the_destination(tmp_path: Path) -> None:
    src, dst = LocalBackend(tmp_path / "src"), LocalBackend(tmp_path / "dst")
    b = _repo_backup(tmp_path, src)
    nopass = Settings(home=tmp_path, database_url="postgresql://x/y")  # fleet: no generated key
    with pytest.raises(InvalidInput, match="no passphrase"):
        stored.copy_backup(src, dst, b, src_settings=_settings(tmp_path),
                           dst_settings=nopass, tracker=NullTracker())
    assert list(dst.list("")) == []
    out = stored.copy_backup(src, dst, b, src_settings=_settings(tmp_path),
                             dst_settings=_settings(tmp_path), tracker=NullTracker())
    copied = load_snapshot(open_repo(dst, _settings(tmp_path)), bytes.fromhex(out.snapshot_id))
    assert copied.host == "h" and copied.volume == "v" and out.stored_bytes > 0

"""The engine's sync of a volume to a repo backup (the cut-over of a migration), against
local directories and a local target: the volume ends equal to the backup, other backups
and inaccessible volumes are refused before anything is touched."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import cast

import pytest
from pydantic import SecretStr

from common.config import Settings
from common.docker import DockerHost
from common.engine.records import StoredBackup
from common.engine.repo import open_repo
from common.engine.sync import sync_volume
from common.engine.tree_compare import Seen, compare_tree
from common.errors import DockerError, InvalidInput
from common.progress import NullTracker
from common.repository import ids
from common.repository.backup.archiver import backup_directory
from common.repository.core.locks import list_locks
from common.repository.restore.restorer import restore_snapshot
from common.storage.local import LocalBackend
from tests.treecmp import compare_trees


class _Docker:
    """The one thing a sync asks of Docker: where a volume's mountpoint is."""

    def __init__(self, paths: dict[str, Path]) -> None:
        self.paths = paths

    def local_path(self, name: str) -> Path | None:
        return self.paths.get(name)


def _settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path, repository_password=SecretStr("pw long enough"),
                    repository_kdf_n=2**14)


def _stored(snap_id: bytes, n: str) -> StoredBackup:
    return StoredBackup(id=n, key=ids.snapshot_key(snap_id), manifest_key="", format="repo",
                        checksum="", logical_bytes=0, file_count=0, volume="v", host="h",
                        snapshot_id=snap_id.hex())


def test_a_volume_holding_a_restore_of_s1_is_synced_to_s2(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "keep").mkdir(parents=True)
    (src / "keep" / "same.txt").write_text("same")
    (src / "changed.txt").write_text("before")
    (src / "gone.txt").write_text("gone")
    backend = LocalBackend(tmp_path / "target")
    settings = _settings(tmp_path)
    repo = open_repo(backend, settings, create=True)
    s1 = backup_directory(repo, src, host="h", volume="v")
    (src / "changed.txt").write_text("after, longer")
    (src / "gone.txt").unlink()
    (src / "new.txt").write_text("new")
    s2 = backup_directory(repo, src, host="h", volume="v", parent=s1)
    vol = tmp_path / "volume"
    restore_snapshot(repo, s1, vol)
    docker = cast(DockerHost, _Docker({"dest": vol}))
    out = sync_volume(docker, backend, _stored(s2.id, "b2"), "dest", settings, NullTracker())
    assert compare_trees(src, vol) == []
    # written: changed.txt, new.txt; deleted: gone.txt; unchanged: keep/, keep/same.txt;
    # metadata fixed: the root (its mtime)
    assert (out.files_written, out.deleted, out.unchanged, out.metadata_fixed) == (2, 1, 2, 1)
    assert out.as_result()["volume"] == "dest"
    assert list_locks(open_repo(backend, settings)) == []  # the shared lock is released


@pytest.mark.parametrize("held", [True, False, "gone"], ids=["held", "not-held", "gone"])
def test_a_volume_trusted_to_hold_s1_skips_what_s1_has(tmp_path: Path,
                                                       held: bool | str) -> None:
    """``held`` (a migration's own state: the volume holds exactly S1): keep/ is not
    entered, same.txt not looked at; without it every entry is walked."""
    src = tmp_path / "src"
    (src / "keep").mkdir(parents=True)
    (src / "keep" / "k.txt").write_text("kept")
    (src / "same.txt").write_text("same")
    (src / "changed.txt").write_text("before")
    backend = LocalBackend(tmp_path / "target")
    settings = _settings(tmp_path)
    repo = open_repo(backend, settings, create=True)
    s1 = backup_directory(repo, src, host="h", volume="v")
    (src / "changed.txt").write_text("after, longer")
    s2 = backup_directory(repo, src, host="h", volume="v", parent=s1)
    vol = tmp_path / "volume"
    restore_snapshot(repo, s1, vol)
    record: Seen = {}
    assert compare_tree(repo, s1, vol, NullTracker(), seen=record, written=True).ok
    docker = cast(DockerHost, _Docker({"dest": vol}))
    out = sync_volume(docker, backend, _stored(s2.id, "b2"), "dest", settings, NullTracker(),
                      record=record, held=("ee" * 32 if held == "gone" else
                                           s1.id.hex() if held else None))
    assert compare_trees(src, vol) == []
    assert out.files_written == 1 and out.files_recorded == 1
    # a held snapshot that cannot be read (pruned) is no trust: everything is walked
    assert (out.trusted, out.subtrees_skipped, out.files_held) == (
        (True, 1, 1) if held is True else (False, 0, 0))


def test_an_archive_backup_or_an_inaccessible_volume_is_refused_untouched(
        tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "target")
    settings = _settings(tmp_path)
    vol = tmp_path / "volume"
    vol.mkdir()
    (vol / "mine").write_text("untouched")
    docker = cast(DockerHost, _Docker({"dest": vol}))
    archive = StoredBackup(id="b1", key="k.tar", manifest_key="k.m", format="tar",
                           checksum="0", logical_bytes=0, file_count=0, volume="v", host="h")
    with pytest.raises(InvalidInput, match="archive"):
        sync_volume(docker, backend, archive, "dest", settings, NullTracker())
    with pytest.raises(DockerError, match="not directly accessible"):
        sync_volume(docker, backend, _stored(b"\x01" * 32, "b2"), "other", settings,
                    NullTracker())
    assert [p.name for p in vol.iterdir()] == ["mine"]
    shutil.rmtree(vol)

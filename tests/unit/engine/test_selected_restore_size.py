"""A restore of chosen paths (``restore --path``, the console wizard's selected files) is
validated against what those paths hold — the free-space check and the plan count and
size only the selection, not the whole backup (which stays the safe side when the
selection cannot be sized)."""

from __future__ import annotations

import shutil
from collections import namedtuple
from pathlib import Path
from typing import Any

import pytest

from common.engine import validate
from common.engine.records import StoredBackup
from common.errors import NotFound
from common.storage.local import LocalBackend
from tests.unit.engine.test_archive_paths import _archive
from tests.unit.engine.test_browse import _repo
from tests.unit.engine.test_stored_operations import _settings

Usage = namedtuple("Usage", "total used free")


class _NoVolume:
    def volume(self, name: str) -> Any:
        raise NotFound("volume", name)


def _validate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, backend: LocalBackend,
              backup: StoredBackup, paths: list[str] | None) -> validate.Validation:
    monkeypatch.setattr(validate, "_space_probe", lambda *a: tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: Usage(0, 0, 1 << 40))
    return validate.validate_restore(_NoVolume(), backend, backup,  # type: ignore[arg-type]
                                     host="h", volume="new", settings=_settings(tmp_path),
                                     paths=paths)


def test_an_archive_selection_is_sized_from_its_manifest(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    backend, backup = _archive(tmp_path)  # 2 files, 106 bytes; sub/ holds 1 of 100
    whole = _validate(monkeypatch, tmp_path, backend, backup, None)
    assert whole.restore_bytes == 106 and "restore 2 files" in whole.plan
    v = _validate(monkeypatch, tmp_path, backend, backup, ["sub"])
    assert v.ok, v.checks
    assert v.restore_bytes == 100
    assert "restore 1 files" in v.plan
    assert v.checks[-1].detail.endswith(", 100 B needed")


def test_a_repository_selection_is_sized_from_its_trees(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "t")
    backup = _repo(tmp_path, backend)  # top.txt (3 B) and a/b/c.txt (5 B)
    v = _validate(monkeypatch, tmp_path, backend, backup, ["a"])
    assert v.ok, v.checks
    assert v.restore_bytes == 5 and "restore 1 files" in v.plan
    both = _validate(monkeypatch, tmp_path, backend, backup, ["/top.txt", "a/b/c.txt"])
    assert both.restore_bytes == 8 and "restore 2 files" in both.plan


def test_an_unreadable_selection_keeps_the_whole_backup_size(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    backend, backup = _archive(tmp_path)
    backend.delete(backup.manifest_key)
    v = _validate(monkeypatch, tmp_path, backend, backup, ["sub"])
    assert not v.ok  # the manifest check says why
    assert v.restore_bytes == 106

"""Forgetting a repository backup while another forget holds the repository's exclusive
lock (a policy's retention forgets the old backups of many volumes at once, each its own
job): it waits for the lock, a short while, instead of failing at once."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from common.engine import stored
from common.engine.records import StoredBackup
from common.engine.repo import open_repo
from common.repository import ids
from common.repository.backup.archiver import backup_directory
from common.repository.core.locks import acquire_lock
from common.repository.core.snapshot import snapshot_ids
from common.storage.local import LocalBackend
from tests.unit.engine.test_stored_operations import _settings


def test_a_forget_waits_for_another_forgets_exclusive_lock(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "t")
    settings = _settings(tmp_path)
    repo = open_repo(backend, settings, create=True)
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "a.txt").write_text("old")
    snap = backup_directory(repo, vol, host="h", volume="v")
    backup = StoredBackup(id="b1", key=ids.snapshot_key(snap.id), manifest_key="",
                          format="repo", checksum="", logical_bytes=3, file_count=1,
                          volume="v", host="h", snapshot_id=snap.id.hex())
    held = acquire_lock(open_repo(backend, settings), exclusive=True,
                        owner="forget of backup b0", refresh_every=0)
    releaser = threading.Timer(1.0, held.release)
    releaser.start()
    started = time.monotonic()
    try:
        out = stored.forget(backend, backup, settings)  # was: Conflict "is locked" at once
    finally:
        releaser.join()
    assert out["deleted_objects"] == [ids.snapshot_key(snap.id)]
    assert time.monotonic() - started >= 0.9
    assert snapshot_ids(open_repo(backend, settings)) == []

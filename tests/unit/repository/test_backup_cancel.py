"""A repository backup whose job is cancelled after its data went out stops at the last
safe point before the snapshot is written: no snapshot, and the next backup works."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.errors import JobCancelled
from common.jobs.runner import FencedTracker
from common.repository.backup.archiver import backup_directory
from common.repository.core.snapshot import list_snapshots
from tests.unit.repository.test_backup import make_volume, new_repo


def test_a_cancel_after_the_data_is_out_leaves_no_snapshot(tmp_path: Path) -> None:
    repo = new_repo()
    src = make_volume(tmp_path / "vol")
    tracker = FencedTracker("job1", None, interval=3600)
    committed: list[bool] = []

    def before_commit() -> None:
        committed.append(True)

    original = tracker.checkpoint

    def checkpoint() -> None:
        tracker.cancel("alice")  # the request lands while the pipeline drains
        original()

    tracker.checkpoint = checkpoint  # type: ignore[method-assign]
    with pytest.raises(JobCancelled, match="cancelled by alice"):
        backup_directory(repo, src, host="h", volume="v", progress=tracker,
                         before_commit=before_commit)
    assert committed == [] and list_snapshots(repo) == []
    snap = backup_directory(repo, src, host="h", volume="v")
    assert [s.id for s in list_snapshots(repo)] == [snap.id]

"""Copying snapshots into a repository on S3 (moto over HTTP), forgetting and pruning there,
and copying back; the other copy cases are unit tests (``tests/unit/repository/test_copy.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.repository.backup.archiver import backup_directory
from common.repository.check.checker import check_repository
from common.repository.core.locks import list_locks
from common.repository.core.repository import open_or_init_repository
from common.repository.core.snapshot import load_snapshot
from common.repository.maintenance.copy import copy_snapshot
from common.repository.maintenance.prune import forget_snapshots, prune
from common.storage.local import LocalBackend
from common.storage.memory import MemoryBackend
from common.storage.s3 import S3Backend
from tests.fixtures.s3 import S3Server
from tests.unit.repository.test_backup import FAST, SMALL, make_volume
from tests.unit.repository.test_copy import make_repo, packs, restores

pytestmark = pytest.mark.integration


def test_copy_to_s3_then_forget_and_prune_there_and_copy_back(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    local = make_repo(LocalBackend(tmp_path / "local"), "one")
    s3 = S3Backend(**s3_server.backend_kwargs(s3_bucket), prefix="fleet")
    remote = open_or_init_repository(s3, "two", kdf=FAST, chunker=SMALL,
                                     pack_size=256 * 1024)
    keep_vol, drop_vol = make_volume(tmp_path / "keep", seed=1), make_volume(tmp_path / "drop",
                                                                              seed=2)
    keep = copy_snapshot(local, remote, backup_directory(local, keep_vol, host="h", volume="k"))
    drop = copy_snapshot(local, remote, backup_directory(local, drop_vol, host="h", volume="d"))
    before = packs(remote)
    forget_snapshots(remote, [drop.id])
    report = prune(remote, max_repack_ratio=0.0)
    assert report.bytes_reclaimed > 0 and sum(packs(remote).values()) < sum(before.values())
    assert check_repository(remote, read_data=True).ok
    home = make_repo(MemoryBackend("home"), "three")
    restores(home, copy_snapshot(remote, home, load_snapshot(remote, keep.id)), keep_vol,
             tmp_path / "restored")
    assert list_locks(remote) == []
    s3.close()


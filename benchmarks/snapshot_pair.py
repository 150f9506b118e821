"""A benchmark's repository with two snapshots of a dataset: as it is, and with
``fraction`` of its data changed in place (``dataset.mutate``; the dataset is reverted
after), the second a child of the first — what a sync or a migration's cut-over applies.
Used by ``sync_bench``, ``syncfast_bench`` and ``writeback_bench``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dataset import mutate, revert
from procs import Deleter, fresh_dir


def snapshot_pair(data: Path, work: Path, fraction: float, password: str
                  ) -> tuple[Any, Any, Any, int]:
    """A fresh repository under ``work`` (cheap key derivation) with the snapshots s1 and
    s2 of ``data``; returns (repository, s1, s2, bytes changed). The index is flushed, so
    the first timed step does not merge the second backup's new entries."""
    from common.repository import init_repository, open_repository
    from common.repository.backup.archiver import backup_directory
    from common.repository.core.keys import KdfParams
    from common.storage.local import LocalBackend

    store = fresh_dir(work / "repo")
    init_repository(LocalBackend(str(store)), password, kdf=KdfParams(2**14, 8, 1))
    repo = open_repository(LocalBackend(str(store)), password)
    s1 = backup_directory(repo, data, host="bench", volume="vol")
    save = work / "mutation"
    Deleter.remove([save])
    try:
        changed = mutate(data, save, fraction)
        s2 = backup_directory(repo, data, host="bench", volume="vol", parent=s1)
    finally:
        revert(data, save)
    repo.load_index()
    repo.index.flush()
    return repo, s1, s2, changed

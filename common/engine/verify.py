"""Verify a backup.

Archives: the stored object's checksum, full decompression, and a walk of the tar compared
member by member with the manifest (type, size, mode, owner, mtime, sha256 …) — always the
whole archive: ``read_data`` changes nothing (the data is always read), and a ``subset``
is refused (an archive is one compressed stream; a sample of it proves nothing about the
rest). Repository snapshots: see ``repo_verify.verify`` (structure by default, all data
with ``read_data``, a random share of the snapshot's packs with ``subset_percent``).

Damage is reported, never raised: the outcome lists exactly which objects and which files
are affected. Only failures to *reach* the storage raise (they say nothing about the data).
"""

from __future__ import annotations

from common.config import Settings
from common.engine.formats import format_of
from common.engine.formats.archive import SUBSET_ARCHIVE, SUBSET_HINT
from common.engine.records import StoredBackup, VerifyOutcome
from common.progress import ProgressTracker
from common.storage.base import Backend

__all__ = ["SUBSET_ARCHIVE", "SUBSET_HINT", "verify_backup"]


def verify_backup(backend: Backend, backup: StoredBackup, tracker: ProgressTracker,
                  settings: Settings, *, read_data: bool = False,
                  subset_percent: float | None = None,
                  seed: int | None = None) -> VerifyOutcome:
    """Verify one backup; damage is reported in the outcome, not raised."""
    return format_of(backup).verify(backend, backup, tracker, settings, read_data=read_data,
                                    subset_percent=subset_percent, seed=seed)

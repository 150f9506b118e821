"""Operations on one stored backup, any format: write its tags and pin into the repository
snapshot, forget (delete) it, copy it to another target.

Archives are two objects (the archive and its manifest); a ``repo`` backup is one snapshot
of the target's repository. Nothing here touches the catalog: the worker task records the
outcome there only after the storage side succeeded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from common.config import Settings
from common.engine import browse
from common.engine.formats import format_of
from common.engine.formats.repository import SYSTEM_TAG_PREFIXES, user_tags
from common.engine.records import CopyOutcome, StoredBackup
from common.progress import ProgressTracker
from common.storage.base import Backend

__all__ = ["SYSTEM_TAG_PREFIXES", "CopyOutcome", "apply_labels", "copy_backup", "forget",
           "list_dir", "user_tags"]


def apply_labels(backend: Backend, backup: StoredBackup, settings: Settings, *,
                 tags: Sequence[str], pinned: bool) -> bool:
    """Make the backup carry ``tags`` (plus volkeeper's own ``job:`` tags) and ``pinned``
    where its format keeps them in storage (a repository snapshot). Returns whether
    anything had to be rewritten."""
    return format_of(backup).apply_labels(backend, backup, settings, tags=tags,
                                          pinned=pinned)


def forget(backend: Backend, backup: StoredBackup, settings: Settings) -> dict[str, Any]:
    """Delete the backup's stored objects. Objects already gone are not an error (a
    forget interrupted after the storage side finished can simply be run again). A pinned
    snapshot is refused (Conflict) — the repository's own pin wins over the catalog."""
    return format_of(backup).forget(backend, backup, settings)


def copy_backup(src: Backend, dst: Backend, backup: StoredBackup, *, src_settings: Settings,
                dst_settings: Settings, tracker: ProgressTracker) -> CopyOutcome:
    """Copy the backup from ``src`` to ``dst``: a repository snapshot with its blobs (not
    re-chunked; the destination repository is created on first use like a backup's), an
    archive and its manifest object by object (the archive's sha256 checked on the way)."""
    return format_of(backup).copy(src, dst, backup, src_settings=src_settings,
                                  dst_settings=dst_settings, tracker=tracker)


def list_dir(backend: Backend, backup: StoredBackup, settings: Settings,
             path: str) -> dict[str, Any]:
    """One directory level of the backup (``common.engine.browse``)."""
    return format_of(backup).list_dir(backend, backup, settings, browse.clean_path(path))

"""Compare a volume's current content with a backup, member by member: type, size, mode,
owner, mtime, link target, xattrs, sparseness and content. Archives are compared with
their manifest (the volume read back as a tar stream; content by sha256); repository
snapshots with their tree (``repo_verify.compare_tree``; content by chunk ids)."""

from __future__ import annotations

from common.archive import VerifyReport
from common.config import Settings
from common.docker import DockerHost
from common.engine.formats import format_of
from common.engine.records import StoredBackup
from common.progress import ProgressTracker
from common.storage.base import Backend


def compare_volume(docker: DockerHost, backend: Backend, backup: StoredBackup, volume: str,
                   settings: Settings, tracker: ProgressTracker) -> VerifyReport:
    return format_of(backup).compare(docker, backend, backup, volume, settings, tracker)
